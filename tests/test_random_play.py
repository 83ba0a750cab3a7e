"""`python -m dreamer.random_play`: actions held for `repeat` steps, and the shares it reports."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
from conftest import one_line_error

from dreamer.random_play import main, random_episode, random_play


class Recorder(gym.Env):
    """Ends (terminated) after 7 steps; remembers every action it was given."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (1,))
    action_space = gym.spaces.Discrete(10_000)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.actions = []
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.actions.append(int(action))
        return np.zeros(1, np.float32), 1.0, len(self.actions) == 7, False, {}


def test_each_action_is_held_for_repeat_steps():
    env = Recorder()
    out = random_episode(env, 3, seed=0)
    assert out == {"return": 7.0, "length": 7, "terminated": True}
    a = env.actions  # blocks [0:3], [3:6], [6:7]
    assert a[0] == a[1] == a[2] and a[3] == a[4] == a[5]
    assert len(set(a)) == 3  # three draws from 10,000 actions differ


def test_random_cartpole_always_falls(capsys):
    # a random policy never balances 500 steps; CartPole pays 1 per step, so return = length
    report = random_play("CartPole-v1", [1, 2], episodes=20)["by_repeat"]
    for repeat in ("1", "2"):
        assert report[repeat]["terminated_share"] == 1.0
        assert report[repeat]["mean_return"] == pytest.approx(report[repeat]["mean_length"])
        assert report[repeat]["mean_length"] < 100
    assert main(["CartPole-v1", "--repeats", "1", "--episodes", "3"]) == 0
    assert json.loads(capsys.readouterr().out)["episodes"] == 3
    status = main(["CartPole-v1", "--episodes", "0"])
    assert "every --repeats value must be at least 1" in one_line_error(capsys, status)
    assert "NoSuchEnv" in one_line_error(capsys, main(["NoSuchEnv-v0"]))


# -- the trainer's prefill: `train.prefill_hold` ------------------------------------------------


def _prefill_actions(tmp_path, hold: int, envs: int = 1) -> np.ndarray:
    """The actions the first 24 prefill steps of each Pendulum env stored: (envs, 24, 1)."""
    from conftest import tiny_config

    from dreamer.train import Trainer

    config = tiny_config()
    t = config.train
    t.prefill, t.prefill_hold, t.envs = 24 * envs, hold, envs
    trainer = Trainer("Pendulum-v1", config, str(tmp_path / f"h{hold}e{envs}"), seed=3,
                      device="cpu", progress=False)  # fmt: skip
    trainer.start_episodes()
    try:
        while trainer.env_step < 24 * envs:
            trainer.collect()
    finally:
        trainer.close_envs()
    rings = [trainer.replay] if envs == 1 else trainer.replay.streams
    return np.stack([ring._data["action"][:24] for ring in rings])


def test_prefill_holds_each_random_action_for_prefill_hold_steps(tmp_path):
    """Continuous draws never repeat by chance: with hold 3 the stored actions come in runs of
    exactly 3 (each env its own), with hold 1 every step is a fresh draw."""
    for envs in (1, 2):
        held = _prefill_actions(tmp_path, 3, envs)[..., 0]  # (envs, 24)
        blocks = held.reshape(envs, 8, 3)
        assert (blocks == blocks[..., :1]).all()  # the same action within a block
        assert (np.diff(blocks[..., 0], axis=1) != 0).all()  # a new one at each block's start
        if envs == 2:
            assert (held[0] != held[1]).all()
    fresh = _prefill_actions(tmp_path, 1)[0, :, 0]
    assert (np.diff(fresh) != 0).all()


def test_prefill_waits_for_prefill_episodes_then_the_policy_acts(tmp_path):
    """With `prefill_episodes` = 3 on CartPole (random episodes of 8-60 steps, far more than
    the 10 prefill steps): every step until the third episode ends is random, training starts
    right then, and from the next step on the policy acts."""
    from conftest import tiny_config

    from dreamer.train import Trainer

    config = tiny_config()
    config.train.prefill, config.train.prefill_episodes = 10, 3
    trainer = Trainer("CartPole-v1", config, str(tmp_path), seed=1, device="cpu", progress=False)
    trainer.start_episodes()
    while not trainer._ready_to_train():
        assert trainer.episodes < 3
        trainer.collect()
    assert trainer.episodes == 3 and trainer.env_step >= 3 * 8 > config.train.prefill
    assert trainer.prefill_held == trainer.env_step  # every step so far was a random action
    trainer.collect()
    assert trainer.prefill_held == trainer.env_step - 1  # the policy chose this one


def test_random_episodes_act_at_random_while_updates_already_run(tmp_path):
    """With `random_episodes` = 3 and 10 prefill steps on CartPole (random episodes of 8-60
    steps): training may start at step 10, inside the first episode, yet every step until the
    third episode ends is random; from the next step on the policy acts."""
    from conftest import tiny_config

    from dreamer.train import Trainer

    config = tiny_config()
    config.train.prefill, config.train.random_episodes = 10, 3
    trainer = Trainer("CartPole-v1", config, str(tmp_path), seed=1, device="cpu", progress=False)
    trainer.start_episodes()
    while not trainer._ready_to_train():
        trainer.collect()
    assert trainer.env_step <= config.train.prefill and trainer.episodes < 3  # replay is filled
    while trainer.episodes < 3:
        trainer.collect()
    assert trainer.env_step >= 3 * 8 > config.train.prefill
    assert trainer.prefill_held == trainer.env_step  # every step so far was a random action
    trainer.collect()
    assert trainer.prefill_held == trainer.env_step - 1  # the policy chose this one
