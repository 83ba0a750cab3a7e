"""`python -m dreamer.random_play`: actions held for `repeat` steps, and the shares it reports."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

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
    assert main(["CartPole-v1", "--episodes", "0"]) == 2
    assert main(["NoSuchEnv-v0"]) == 2
    assert capsys.readouterr().err.count("error: ") == 2
