"""`python -m dreamer.diagnose`: its sums by hand, and the command on a real (tiny) run."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import tiny_config

from dreamer.agent import WorldModel
from dreamer.diagnose import (
    _open_loop_x_errors,
    _what_happened_next,
    advantages_by_action,
    discounted_returns,
    main,
    priority_report,
    replay_report,
)
from dreamer.train import Trainer


def test_discounted_returns_by_hand():
    # G_2 = 1, G_1 = 1 + 0.5 * 1, G_0 = 1 + 0.5 * 1.5
    assert discounted_returns(np.ones(3), 0.5).tolist() == [1.75, 1.5, 1.0]


def test_replay_report_counts_terminals_and_the_edge():
    n = 10
    obs = np.zeros((n, 4), np.float32)
    obs[[3, 8], 0] = [2.5, -0.1]  # an off-track end and a pole-fall end
    obs[5, 0] = 1.9
    terminal = np.zeros(n, bool)
    terminal[[3, 8]] = True
    replay = {"data": {"obs": obs, "is_terminal": terminal}, "size": n, "ptr": n, "capacity": 20}
    report = replay_report(replay, edge=1.6, recent=5)
    assert report["terminal_share"] == pytest.approx(0.2)
    assert report["terminal_share_last_5"] == pytest.approx(0.2)  # step 8 of steps 5-9
    assert report["terminals"] == 2 and report["terminals_cart_off_track"] == 1
    assert report["terminals_cart_off_track_last_5"] == 0
    assert report["share_abs_x_over_1.6"] == pytest.approx(0.2)  # steps 3 and 5
    assert report["states_abs_x_from_2.2"] == 1 and report["end_share_abs_x_from_2.2"] == 1.0


def test_priority_report_by_hand():
    # 10 steps, windows of 2, an episode end at step 4 with loss 9, step 9 never trained on, the
    # rest 1. Trained windows: starts 0-7 (8); score = mean (maxfrac 0, exponent 1): [3,4] and
    # [4,5] score 5, the other 6 score 1, so a draw by score takes an end with 10 / 16
    from dreamer.config import ReplayConfig

    n = 10
    terminal = np.zeros(n, bool)
    terminal[4] = True
    priority = np.ones(n)
    priority[4], priority[9] = 9.0, np.inf
    replay = {"data": {"is_terminal": terminal}, "priority": priority, "size": n, "ptr": n,
              "capacity": 20}  # fmt: skip
    config = ReplayConfig(seq_len=2, priority_exponent=1.0, priority_maxfrac=0.0)
    report = priority_report(replay, config)
    assert report["windows_with_an_end_uniform"] == pytest.approx(2 / 8)
    assert report["windows_with_an_end_by_priority"] == pytest.approx(10 / 16)
    assert report["priority_terminal_steps"] == 9.0 and report["priority_other_steps"] == 1.0
    assert report["untrained_steps"] == 1
    # ages n - T - s = 8..1 for starts 0..7: uniform 4.5; by score (25 + 20 + 27) / 16, also 4.5
    assert report["mean_window_age_uniform"] == pytest.approx(4.5)
    assert report["mean_window_age_by_priority"] == pytest.approx(4.5)


def test_priority_report_ages_by_hand():
    # 6 steps, windows of 2, priorities [1, 1, 1, 1, 4, inf]: trained starts 0-3 score 1, 1, 1,
    # 2.5 (mean), ages 4 - s = 4, 3, 2, 1: uniform 2.5, by score (4 + 3 + 2 + 2.5) / 5.5
    from dreamer.config import ReplayConfig

    priority = np.array([1.0, 1.0, 1.0, 1.0, 4.0, np.inf])
    replay = {"data": {"is_terminal": np.zeros(6, bool)}, "priority": priority, "size": 6,
              "ptr": 6, "capacity": 6}  # fmt: skip
    config = ReplayConfig(seq_len=2, priority_exponent=1.0, priority_maxfrac=0.0)
    report = priority_report(replay, config)
    assert report["mean_window_age_uniform"] == pytest.approx(2.5)
    assert report["mean_window_age_by_priority"] == pytest.approx(11.5 / 5.5)
    # the ring wrapped (ptr 2): the same steps stored from array index 2 on give the same ages
    replay.update(priority=np.roll(priority, 2), ptr=2)
    assert priority_report(replay, config)["mean_window_age_by_priority"] == pytest.approx(
        11.5 / 5.5
    )


def test_priority_report_obs_by_hand():
    # 5 steps of a 1-d observation [0, -2, 4, 0, 6], windows of 2, priorities [1, 1, 3, 1, 1]:
    # window means of |obs| 1, 3, 2, 3; scores (mean) 1, 2, 2, 1: by score (1 + 6 + 4 + 3) / 6
    from dreamer.config import ReplayConfig

    obs = np.array([[0.0], [-2.0], [4.0], [0.0], [6.0]], np.float32)
    replay = {"data": {"is_terminal": np.zeros(5, bool), "obs": obs},
              "priority": np.array([1.0, 1.0, 3.0, 1.0, 1.0]), "size": 5, "ptr": 5,
              "capacity": 5}  # fmt: skip
    config = ReplayConfig(seq_len=2, priority_exponent=1.0, priority_maxfrac=0.0)
    report = priority_report(replay, config)
    assert report["mean_abs_obs_uniform"] == pytest.approx([9 / 4])
    assert report["mean_abs_obs_by_priority"] == pytest.approx([14 / 6])


def test_command_on_a_run_checkpoint(tmp_path, capsys):
    config = tiny_config()
    config.train.eval_episodes = 1
    config.actor_critic.horizon = 10  # two points of the every-5-steps series
    result = Trainer("CartPole-v1", config, str(tmp_path), progress=False).run()
    assert result.env_steps == 100
    path = str(tmp_path / "latest.pt")
    assert main([path, "--episodes", "2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["returns"]) == 2 and report["env"] == "CartPole-v1"
    assert set(report["ends"]) <= {"cart off track", "pole fell", "time limit"}
    # a random-ish agent ends by the pole; replay holds the 100 steps and their ends
    # replay holds the 100 steps plus one stored final step per finished episode
    assert report["replay"]["steps"] >= 100 and report["replay"]["terminals"] >= 1
    ends = report["replay"]["continue_at_terminals"]
    assert sum(v["count"] for v in ends.values()) == report["replay"]["terminals"]
    dreams = report["replay"]["dreams_from_the_edge"]
    assert dreams["horizon"] == config.actor_critic.horizon
    centre = dreams["centre, |x| < 0.5"]
    assert centre["starts"] > 0 and 0.0 <= centre["survival_at_H"] <= 1.0
    for key in (
        "decoded_abs_x_every_5_steps",
        "open_loop_x_error_every_5_steps",
        "posterior_x_error_every_5_steps",
    ):  # |x| and errors at steps 5 and 10
        assert len(centre[key]) == 2 and all(0.0 <= x < math.inf for x in centre[key]), key
    assert main([path, "--refit", "2", "--set", "world_model.con_scale=2"]) == 0
    refit = json.loads(capsys.readouterr().out)
    assert refit["updates"] == 2 and refit["changes"] == {"world_model.con_scale": 2}
    assert main([path, "--advantages", "1", "--seed", "0"]) == 0
    adv = json.loads(capsys.readouterr().out)
    H = config.actor_critic.horizon
    every = max(1, H // 6)
    assert adv["return_scale"] >= 1.0
    assert len(adv[f"adv_mean_every_{every}_steps"]) == len(range(0, H, every))
    shares = [adv["by_action"][a]["share"] for a in ("0", "1")]  # CartPole's two actions
    assert sum(shares) == pytest.approx(1.0)
    assert main([str(tmp_path / "missing.pt")]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_a_parallel_env_run_gets_one_line(tmp_path, capsys):
    import torch

    from dreamer.diagnose import main

    path = tmp_path / "latest.pt"
    torch.save({"replay": {"streams": [{}, {}]}, "agent": {}}, path)
    assert main([str(path)]) == 2
    assert "--envs 2" in capsys.readouterr().err


def test_refit_refuses_new_bias_shapes_without_fresh(tmp_path):
    from dreamer.diagnose import refit_world_model

    config = tiny_config()
    config.train.steps, config.train.eval_episodes = 20, 1
    trainer = Trainer("CartPole-v1", config, str(tmp_path), progress=False)
    trainer.save_latest()
    with pytest.raises(ValueError, match="--fresh"):
        refit_world_model(trainer.latest_path, 1, {"hidden_bias": True})


def test_what_happened_next_follows_one_episode_by_hand():
    """Replay: episode A (steps 0-5) ends terminal at 5, episode B starts at 6 and is cut at 9.
    From step 2 with H = 5: |x| at 3, 4, 5, then the end; from step 7: 8, 9, then replay ends."""
    x = np.array([0.0, 0.5, -1.0, 1.5, -2.0, 2.5, 0.1, 0.2, -0.3, 0.4])
    data = {
        "obs": np.stack([x, np.zeros(10)], 1),
        "is_first": np.array([1, 0, 0, 0, 0, 0, 1, 0, 0, 0], bool),
        "is_terminal": np.array([0, 0, 0, 0, 0, 1, 0, 0, 0, 0], bool),
    }
    out = _what_happened_next(data, 10, np.array([2, 7]), 5)
    # step k = 5 (the only one reported): neither start has a state left there
    assert out["real_share_ended_within_H"] == 0.5
    assert out["real_abs_x_every_5_steps"] == [None]
    out = _what_happened_next(data, 10, np.array([2, 7]), 2)
    # H = 2 reports nothing (every 5th step); the end lies 3 steps on, beyond H
    assert out["real_share_ended_within_H"] == 0.0
    out = _what_happened_next(data, 10, np.array([0]), 5)
    assert out["real_abs_x_every_5_steps"] == [2.5] and out["real_share_ended_within_H"] == 1.0


def test_open_loop_errors_leave_out_steps_past_the_episode_end():
    """A start at an episode's last step has no real future: adding it leaves the posterior
    errors unchanged, and alone it reports no error at all."""
    config = tiny_config()
    wm = WorldModel(4, 2, config.world_model)
    rng = np.random.default_rng(0)
    size = 40  # episode A: steps 0-19, episode B: 20-39
    data = {
        "obs": rng.normal(size=(size, 4)).astype(np.float32),
        "action": np.eye(2, dtype=np.float32)[rng.integers(0, 2, size)],
        "is_first": np.isin(np.arange(size), [0, 20]),
    }
    T, H = 4, 10
    with torch.no_grad():
        torch.manual_seed(0)
        alone = _open_loop_x_errors(wm, data, size, np.array([8]), T, H)
        torch.manual_seed(0)
        both = _open_loop_x_errors(wm, data, size, np.array([8, 19]), T, H)
        last = _open_loop_x_errors(wm, data, size, np.array([19]), T, H)
    assert all(v is not None for v in alone["open_loop_x_error_every_5_steps"])
    # the posterior's noise is drawn per row up front, the dream's per step: compare the former
    key = "posterior_x_error_every_5_steps"
    assert both[key] == alone[key]
    assert set(last["open_loop_x_error_every_5_steps"]) == {None}
    assert set(last["posterior_x_error_every_5_steps"]) == {None}


def test_advantages_by_action_by_hand():
    """Two dreams of H = 2. Step 0: actions 0, 1 with A = 1, 3 (step mean 2); step 1: actions
    1, 1 with A = 0, 2 (mean 1). Centred: action 0 gets -1; action 1 gets 1, -1, 1 (mean 1/3)."""
    adv = torch.tensor([[1.0, 3.0], [0.0, 2.0]])  # (H, N)
    actions = torch.tensor([[0, 1], [1, 1]])
    values = torch.tensor([[10.0, 10.0], [12.0, 9.0], [12.0, 5.0]])  # (H + 1, N)
    rewards = torch.tensor([[-1.0, 0.0], [-1.0, -1.0]])
    out = advantages_by_action(adv, values, rewards, actions, 3)
    assert out["0"] == {"share": 0.25, "adv_centred": -1.0, "reward": -1.0, "value_step": 2.0}
    one = out["1"]
    assert one["share"] == 0.75 and one["adv_centred"] == pytest.approx(1 / 3)
    assert one["reward"] == pytest.approx(-2 / 3)
    # value steps after action 1: 9 - 10, 12 - 12, 5 - 9
    assert one["value_step"] == pytest.approx(-5 / 3)
    assert out["2"] == {"share": 0.0, "adv_centred": None, "reward": None, "value_step": None}
