"""How often a random policy reaches a terminal state, by how long it holds each action.

    python -m dreamer.random_play Acrobot-v1 --repeats 1 2 4 --episodes 100

Before its first reward an agent knows nothing, and its policy is close to uniform; whether
that finds the reward at all is a property of the env. Each episode here draws a uniform random
action and holds it for `repeat` env steps before drawing the next (an action repeat of
`repeat`), until the episode ends. Printed as JSON, per repeat: the share of episodes that
terminated (on Acrobot: reached the goal) rather than hit the time limit, their mean return and
mean length in env steps. Episode k resets with seed `--seed` + k, the same for every repeat.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import gymnasium as gym
import numpy as np


def random_episode(env: Any, repeat: int, seed: int) -> dict:
    """One episode of uniform random actions, each held for `repeat` env steps."""
    env.reset(seed=seed)
    env.action_space.seed(seed)
    total, steps = 0.0, 0
    while True:
        if steps % repeat == 0:
            action = env.action_space.sample()
        _, reward, terminated, truncated, _ = env.step(action)
        total += float(reward)
        steps += 1
        if terminated or truncated:
            return {"return": total, "length": steps, "terminated": bool(terminated)}


def random_play(env_id: str, repeats: list[int], episodes: int, seed: int = 0) -> dict:
    """`episodes` random episodes per repeat -> {repeat: terminal share, mean return, length}."""
    env = gym.make(env_id)
    try:
        report = {}
        for repeat in repeats:
            runs = [random_episode(env, repeat, seed + k) for k in range(episodes)]
            report[str(repeat)] = {
                "terminated_share": float(np.mean([r["terminated"] for r in runs])),
                "mean_return": float(np.mean([r["return"] for r in runs])),
                "mean_length": float(np.mean([r["length"] for r in runs])),
            }
        return {"env": env_id, "episodes": episodes, "seed": seed, "by_repeat": report}
    finally:
        env.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("env", help="gymnasium env id, e.g. Acrobot-v1")
    parser.add_argument("--repeats", type=int, nargs="+", default=[1, 2, 4], metavar="N")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0, help="episode k resets with seed + k")
    args = parser.parse_args(argv)
    if args.episodes < 1 or min(args.repeats) < 1:
        print("error: --episodes and every --repeats value must be at least 1", file=sys.stderr)
        return 2
    try:
        report = random_play(args.env, args.repeats, args.episodes, args.seed)
    except gym.error.Error as exc:  # an unknown env id, a missing extra
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
