"""Your own environment: define a gymnasium Env, train DreamerV3 on it from your code, then load
the checkpoint and act with it.

    python examples/custom_env.py            # 5,000 env steps
    python examples/custom_env.py --quick    # a smoke run of every part, in seconds

The same env from the command line (importing this file registers 'Corridor-v0'), run from the
repository's folder:

    python -m dreamer --env examples.custom_env:Corridor-v0 --quick
"""

import argparse
import os
import sys

# From a checkout without `pip install -e .`: find the dreamer package next to this folder.
sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402

from dreamer import DreamerAgent, DreamerConfig  # noqa: E402
from dreamer.cli import quick  # noqa: E402
from dreamer.config import RSSMConfig  # noqa: E402
from dreamer.train import Trainer  # noqa: E402


class Corridor(gym.Env):
    """Walk from cell 0 to cell `length`: +1 on arrival (the episode ends), -0.01 per step.

    Observation: the position as a fraction of the corridor, a 1-D Box (dreamer needs vector
    observations). Actions: Discrete(2), 0 = left, 1 = right. Episodes end after `max_steps`.
    """

    def __init__(self, length: int = 8, max_steps: int = 50):
        self.length, self.max_steps = length, max_steps
        self.observation_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
        self.action_space = gym.spaces.Discrete(2)

    def _obs(self) -> np.ndarray:
        return np.array([self.pos / self.length], np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.pos, self.steps = 0, 0
        return self._obs(), {}

    def step(self, action: int):
        self.pos = max(self.pos + (1 if action == 1 else -1), 0)
        self.steps += 1
        terminated = self.pos == self.length
        reward = 1.0 if terminated else -0.01
        truncated = self.steps >= self.max_steps and not terminated
        return self._obs(), reward, terminated, truncated, {}


# `dreamer --env examples.custom_env:Corridor-v0` imports this module, which registers the id.
gym.register("Corridor-v0", entry_point=Corridor)


def corridor_config(smoke: bool) -> DreamerConfig:
    if smoke:  # a tiny model and a few hundred steps: checks the plumbing, learns nothing
        config = quick(DreamerConfig())
        config.train.steps, config.train.prefill = 300, 100
        config.train.eval_every = config.train.checkpoint_every = 150
        return config
    config = DreamerConfig()
    # A 1-D state needs far less than the XS model (as 02_dreamer_cartpole.py does for CartPole).
    config.world_model.rssm = RSSMConfig(deter=128, stoch=16, classes=16, units=128)
    config.world_model.units = config.actor_critic.units = 128
    config.replay.seq_len = 32  # episodes last 8-50 steps
    config.train.steps, config.train.prefill, config.train.train_ratio = 5_000, 500, 128
    config.train.eval_every = 1_000
    return config


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a smoke run in seconds")
    p.add_argument("--logdir", help="run directory (default runs/Corridor-v0/<name>-seed0)")
    args = p.parse_args()
    logdir = (
        args.logdir
        or os.path.join("runs", "Corridor-v0", "quick" if args.quick else "default") + "-seed0"
    )

    # 1. Train: Trainer takes an id or a zero-argument factory; the class is one.
    config = corridor_config(args.quick)
    trainer = Trainer(Corridor, config, logdir, seed=0, progress=not args.quick)
    result = trainer.run()
    print(
        f"trained {result.env_steps} env steps, {result.updates} updates: "
        f"best eval return {result.best_eval:.2f}; checkpoints in {result.logdir}"
    )

    # 2. Act from the checkpoint: load, reset the recurrent state (is_first), act step by step.
    agent = DreamerAgent.from_checkpoint(os.path.join(logdir, "best.pt"))
    env = Corridor()
    obs, _ = env.reset(seed=1)
    is_first, done, total = True, False, 0.0
    while not done:
        action = agent.act(obs, is_first, explore=False)  # the policy's mode
        obs, reward, terminated, truncated, _ = env.step(action)
        done, is_first, total = terminated or truncated, False, total + reward
    print(f"reloaded {logdir}/best.pt: one episode, return {total:.2f}, {env.steps} steps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
