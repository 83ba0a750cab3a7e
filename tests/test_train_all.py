"""train_all.py is resumable: a finished seed is skipped, an interrupted one resumed."""

from __future__ import annotations

import json
import os
import sys

from conftest import load_top_level

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _train_all():
    return load_top_level("train_all.py")


def _result(logdir, env_steps, budget, interrupted):
    os.makedirs(logdir, exist_ok=True)
    result = {"env_steps": env_steps, "interrupted": interrupted,
              "config": {"train": {"steps": budget}}}  # fmt: skip
    with open(os.path.join(logdir, "result.json"), "w") as f:
        json.dump(result, f)
    open(os.path.join(logdir, "latest.pt"), "w").close()


def test_finished_seeds_are_skipped_and_interrupted_ones_resumed(tmp_path, monkeypatch):
    train_all = _train_all()
    runs = tmp_path / "runs"
    cartpole = runs / "CartPole-v1"
    _result(cartpole / "preset-seed0", 20_000, 20_000, False)  # done
    _result(cartpole / "preset-seed1", 7_000, 20_000, True)  # stopped by Ctrl-C
    os.makedirs(cartpole / "preset-seed2")  # started, killed before its first checkpoint
    _result(cartpole / "preset-seed3", 9_000, 20_000, False)  # result of a shorter --steps?
    commands = []
    monkeypatch.setattr(train_all, "run", commands.append)
    argv = ["--only", "02", "--seeds", "0", "1", "2", "3", "4", "--runs", str(runs),
            "--threads", "1"]  # fmt: skip
    assert train_all.main(argv) == 0
    seeds = {cmd[cmd.index("--seed") + 1]: cmd for cmd in commands if "--seed" in cmd}
    assert "0" not in seeds  # finished: skipped
    assert seeds["1"][-1] == "--resume" and seeds["3"][-1] == "--resume"
    assert "--resume" not in seeds["2"] and "--resume" not in seeds["4"]
    assert seeds["1"][seeds["1"].index("--logdir") + 1] == str(cartpole / "preset-seed1")
    assert all(cmd[cmd.index("--threads") + 1] == "1" for cmd in seeds.values())
    summary = commands[-1]  # then the summary, into the README's table of the current preset
    assert summary[:3] == [sys.executable, "-m", "dreamer.results"]
    assert summary[summary.index("--name") + 1] == "preset"
