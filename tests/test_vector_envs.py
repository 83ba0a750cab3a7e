"""Parallel envs (issue #17, `--envs N`): replay streams that never mix envs, the vector loop's
episode bookkeeping, resume, pixels in subprocesses, the N = 1 path unchanged, the flag."""

import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import one_line_error, tiny_config
from gymnasium import spaces

from dreamer import cli
from dreamer.config import override
from dreamer.replay_buffer import SequenceReplayBuffer, StreamReplay
from dreamer.train import Trainer, make_vector_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# -- replay streams -----------------------------------------------------------------------------


def _fill(replay: StreamReplay, lengths: list[int], seed: int = 0) -> None:
    """Stream k gets lengths[k] steps in episodes of 2..7 steps; obs = [k, step of stream, t in
    episode], action = [k, step of stream] so a_{t-1} is recognisable."""
    rng = np.random.default_rng(seed)
    for k, steps in enumerate(lengths):
        t, length = 0, int(rng.integers(2, 8))
        for g in range(steps):
            last = t == length - 1
            obs = np.array([k, g, t], np.float32)
            replay.add(obs, np.array([k, g + 1.0], np.float32), float(t), t == 0, False, last,
                       stream=k)  # fmt: skip
            t += 1
            if last:
                t, length = 0, int(rng.integers(2, 8))


def test_streams_split_the_capacity_and_count_all_steps():
    replay = StreamReplay(capacity=90, seq_len=4, streams=3)
    assert [s.capacity for s in replay.streams] == [30, 30, 30]
    _fill(replay, [10, 50, 20])
    assert len(replay) == 10 + 30 + 20  # stream 1 is full: its oldest 20 steps are gone
    assert replay.total_added == 80
    assert list(replay.window_starts()) == [7, 27, 17]


def test_windows_never_cross_streams_and_keep_each_streams_episodes():
    replay = StreamReplay(capacity=300, seq_len=6, streams=3)
    _fill(replay, [40, 100, 25])
    batch = replay.sample(2000, np.random.default_rng(0))
    obs = batch["obs"]  # (B, T, 3)
    assert obs.shape == (2000, 6, 3)
    stream, step, t = obs[..., 0], obs[..., 1], obs[..., 2]
    assert (stream == stream[:, :1]).all()  # one env per window
    assert (np.diff(step, axis=1) == 1).all()  # consecutive steps of that env
    np.testing.assert_array_equal(batch["is_first"], t == 0)  # each stream's episode starts
    # a_{t-1} is the same stream's previous action, zero at episode starts
    expected = np.stack([stream, step], -1) * (t > 0)[..., None]
    np.testing.assert_array_equal(batch["prev_action"], expected)


def test_streams_are_drawn_in_proportion_to_their_window_starts():
    replay = StreamReplay(capacity=300, seq_len=5, streams=3)
    _fill(replay, [5, 25, 85])  # 1, 21, 81 window starts: every start equally likely
    stream = replay.sample(20_000, np.random.default_rng(1))["obs"][:, 0, 0]
    share = np.bincount(stream.astype(int), minlength=3) / stream.size
    np.testing.assert_allclose(share, np.array([1, 21, 81]) / 103, atol=0.01)


def test_a_short_stream_is_never_drawn_and_an_empty_replay_says_so():
    replay = StreamReplay(capacity=100, seq_len=8, streams=2)
    with pytest.raises(ValueError, match="no replay stream holds seq_len 8"):
        replay.sample(4)
    _fill(replay, [5, 20])
    assert (replay.sample(200, np.random.default_rng(0))["obs"][..., 0] == 1).all()


def test_priorities_reach_the_stream_each_step_id_names():
    from dreamer.config import ReplayConfig

    replay = StreamReplay(capacity=300, seq_len=4, streams=3)
    _fill(replay, [20, 40, 30])
    batch = replay.sample(64, np.random.default_rng(0), ReplayConfig(priority_frac=0.5))
    stream, step = batch["obs"][..., 0], batch["obs"][..., 1]  # the env and its step count
    ids = batch["step_id"]
    np.testing.assert_array_equal(ids % 3, stream)  # the id names the stream ...
    np.testing.assert_array_equal(ids // 3, step)  # ... and the step within it
    replay.prioritize(ids, np.full(ids.shape, 5.0))
    for k, part in enumerate(replay.streams):
        touched = np.unique(step[stream == k]).astype(int)
        np.testing.assert_array_equal(part._priority[touched], 5.0)
        untouched = np.setdiff1d(np.arange(len(part)), touched)
        assert not (part._priority[untouched] == 5.0).any()


def test_stream_state_dict_round_trip():
    replay = StreamReplay(capacity=60, seq_len=4, streams=2)
    _fill(replay, [45, 12])  # stream 0 wrapped around its ring of 30
    copy = StreamReplay(capacity=60, seq_len=4, streams=2)
    copy.load_state_dict(replay.state_dict())
    assert len(copy) == len(replay) and copy.total_added == replay.total_added
    a = replay.sample(64, np.random.default_rng(3))
    b = copy.sample(64, np.random.default_rng(3))
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="2 stream"):
        StreamReplay(capacity=60, seq_len=4, streams=3).load_state_dict(replay.state_dict())
    single = SequenceReplayBuffer(60, 4).state_dict()
    with pytest.raises(ValueError, match="1 stream"):
        copy.load_state_dict(single)


# -- the vector loop ----------------------------------------------------------------------------


class Counter(gym.Env):
    """obs = [t, L]: episodes of L in 3..11 steps drawn at reset, reward t on arriving at step t;
    odd L terminates, even L is truncated. Envs with different seeds end at different times."""

    metadata = {"render_modes": []}
    observation_space = spaces.Box(-np.inf, np.inf, (2,), np.float32)
    action_space = spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.length = 0, int(self.np_random.integers(3, 12))
        return self._obs(), {}

    def _obs(self):
        return np.array([self.t, self.length], np.float32)

    def step(self, action):
        self.t += 1
        end = self.t >= self.length
        odd = self.length % 2 == 1
        return self._obs(), float(self.t), end and odd, end and not odd, {}


def vector_config(envs: int, steps: int):
    config = tiny_config()
    t = config.train
    t.envs, t.steps, t.prefill, t.eval_every, t.eval_episodes = envs, steps, 30, 50, 1
    t.log_every, t.checkpoint_every, t.train_ratio = 25, 10_000, 8
    return config


def stream_rows(replay: SequenceReplayBuffer) -> dict:
    """A stream's steps in insertion order (it has not wrapped)."""
    assert len(replay) < replay.capacity
    return {key: value[: len(replay)] for key, value in replay._data.items()}


def episodes_of(rows: dict) -> list[slice]:
    """Each stream must be whole episodes one after another: is_first exactly after is_last."""
    first, last = rows["is_first"], rows["is_last"]
    assert first[0]
    np.testing.assert_array_equal(first[1:], last[:-1])
    starts = np.flatnonzero(first)
    return [slice(a, b) for a, b in zip(starts, [*starts[1:], len(first)], strict=True)]


def test_each_env_keeps_its_own_episodes_in_replay(tmp_path):
    """3 envs ending episodes at different times: every stream holds its env's episodes whole,
    final observations stored as one env stores them (SAME_STEP autoreset's info)."""
    trainer = Trainer(Counter, vector_config(3, 150), str(tmp_path), seed=2, device="cpu",
                      progress=False)  # fmt: skip
    result = trainer.run()
    assert result.env_steps == trainer.env_step == 150 and trainer.agent.updates > 0
    assert isinstance(trainer.replay, StreamReplay)
    done, lengths, firsts = 0, [], set()
    for stream in trainer.replay.streams:
        rows = stream_rows(stream)
        episodes = episodes_of(rows)
        complete = int(rows["is_last"].sum())
        assert complete > 3
        for ep in episodes[:complete]:  # t = 0..L, rewards 0, 1, ..., L
            obs, reward = rows["obs"][ep], rows["reward"][ep]
            length = int(obs[0, 1])
            np.testing.assert_array_equal(obs[:, 0], np.arange(length + 1))
            np.testing.assert_array_equal(reward, np.arange(length + 1))
            assert rows["is_last"][ep].sum() == 1 and rows["is_last"][ep][-1]
            assert rows["is_terminal"][ep][-1] == (length % 2 == 1)  # truncation: not terminal
            assert not rows["action"][ep][-1].any()  # no action after the final observation
            lengths.append(length)
        for ep in episodes[complete:]:  # the running episode, cut by the end of the run
            np.testing.assert_array_equal(rows["obs"][ep, 0], np.arange(ep.stop - ep.start))
        done += complete
        # 150 env steps: 50 per env, plus one final observation per finished episode
        assert len(stream) == 50 + complete
        firsts.add(tuple(rows["obs"][:40, 1]))
    assert trainer.episodes == done
    assert trainer.last_return in {length * (length + 1) / 2 for length in lengths}
    assert len(firsts) == 3  # distinct seeds: the envs' episode lengths differ
    # 150 steps by 3: evaluation (every 50) fires when the step count passes a multiple
    with open(tmp_path / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["env_step"]) for r in rows if r["eval_mean"]] == [51, 102, 150]
    assert [int(r["env_step"]) for r in rows] == [27, 51, 75, 102, 126, 150]


def test_vector_run_resumes(tmp_path):
    """--envs 2 stopped at 60 steps and resumed to 120: the counters and replay continue, and
    each env starts a new episode (subprocess envs are not checkpointed)."""
    Trainer(Counter, vector_config(2, 60), str(tmp_path), seed=1, device="cpu",
            progress=False).run()  # fmt: skip
    resumed = Trainer(Counter, vector_config(2, 120), str(tmp_path), seed=1, device="cpu",
                      resume=True, progress=False)  # fmt: skip
    assert resumed.env_step == 60
    before = [len(s) for s in resumed.replay.streams]
    updates = resumed.agent.updates
    resumed.run()
    assert resumed.env_step == 120 and resumed.agent.updates > updates
    for stream, kept in zip(resumed.replay.streams, before, strict=True):
        rows = stream_rows(stream)
        assert rows["is_first"][kept]  # the restart
        assert rows["obs"][kept, 0] == 0
        assert len(stream) >= kept + 30


def test_pixels_in_subprocesses_with_final_frames():
    """--pixels inside the vector env: each subprocess renders its frames, and the final frame
    of an episode arrives in info['final_obs']."""
    config = tiny_config()
    override(config, **{"env.obs": "pixels", "env.color": "gray", "env.image_size": 16})
    envs = make_vector_env("CartPole-v1", 2, config)
    try:
        obs, _ = envs.reset(seed=[0, 1])
        assert obs.shape == (2, 16, 16, 1) and obs.dtype == np.uint8
        for _ in range(100):  # always push left: CartPole falls within 100 steps
            obs, _, term, trunc, info = envs.step(np.zeros(2, np.int64))
            if (term | trunc).any():
                break
        i = int(np.flatnonzero(term | trunc)[0])
        assert info["final_obs"][i].shape == (16, 16, 1)
        assert not np.array_equal(info["final_obs"][i], obs[i])  # the reset frame differs
    finally:
        envs.close()


def test_pixel_run_with_two_envs(tmp_path):
    config = vector_config(2, 40)
    config.train.prefill = 20
    override(config, **{"env.obs": "pixels", "env.color": "gray", "env.image_size": 16,
                        "world_model.cnn.depth": 4})  # fmt: skip
    trainer = Trainer("CartPole-v1", config, str(tmp_path), device="cpu", progress=False)
    trainer.run()
    assert trainer.agent.updates > 0
    assert trainer.replay.streams[0]._data["obs"].shape[1:] == (16, 16, 1)


# -- the single env path is the one it always was -----------------------------------------------


def test_one_env_gives_the_results_it_gave_before_parallel_envs():
    """--envs 1 (the default) is the plain single-env loop and ring: a tiny CartPole run lands
    on the counts and numbers measured with the code before parallel envs existed."""
    config = tiny_config()
    t = config.train
    t.steps, t.prefill, t.eval_every, t.eval_episodes = 90, 40, 50, 1
    t.log_every, t.checkpoint_every, t.train_ratio = 25, 10_000, 16
    torch.manual_seed(0)
    np.random.seed(0)
    with tempfile.TemporaryDirectory() as logdir:
        trainer = Trainer("CartPole-v1", config, logdir, seed=5, device="cpu", progress=False)
        result = trainer.run()
        with open(os.path.join(logdir, "metrics.csv")) as f:
            last = list(csv.DictReader(f))[-1]
    assert type(trainer.replay) is SequenceReplayBuffer
    assert (len(trainer.replay), trainer.episodes, trainer.agent.updates) == (93, 3, 26)
    assert result.final_eval == 13.0 and trainer.last_return == 12.0
    params = sum(p.detach().abs().sum().item() for p in trainer.agent.parameters())
    assert params == pytest.approx(2947.8382, rel=1e-5)
    assert float(last["loss/dec"]) == pytest.approx(1.93765, rel=1e-4)


# -- command line -------------------------------------------------------------------------------


def test_envs_zero_is_a_one_line_error(capsys):
    assert cli.main(["--env", "CartPole-v1", "--envs", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: --envs 0: train.envs must be an integer >= 1, got 0"


def test_each_stream_must_hold_a_window(capsys):
    argv = ["--env", "CartPole-v1", "--envs", "8", "--set", "replay.capacity=100"]
    err = one_line_error(capsys, cli.main(argv))
    assert "replay.capacity (100) split over train.envs (8) streams must leave each >=" in err


def test_envs_with_torchrun_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")  # as torchrun sets it
    argv = ["--env", "CartPole-v1", "--envs", "2", "--logdir", str(tmp_path)]
    assert "--envs > 1 is not supported with torchrun" in one_line_error(capsys, cli.main(argv))


def test_quick_run_with_two_envs(tmp_path):
    """`python -m dreamer --envs 2 --quick` end to end, as a user runs it."""
    logdir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": ROOT}
    start = time.time()
    out = subprocess.run(
        [sys.executable, "-m", "dreamer", "--env", "CartPole-v1", "--quick", "--envs", "2",
         "--steps", "600", "--threads", "1", "--no-progress", "--logdir", str(logdir)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    with open(logdir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows[-1]["env_step"] == "600" and any(r["eval_mean"] for r in rows)
    assert any(r["loss/dec"] for r in rows)
    assert (logdir / "latest.pt").exists()
    print(f"--envs 2 --quick --steps 600: {time.time() - start:.0f} s")


def test_ctrl_c_stops_a_vector_run_and_saves_it(tmp_path):
    """Ctrl-C reaches the env subprocesses too (the terminal signals the process group): they
    ignore it, and the run finishes its step, saves latest.pt and says how to resume."""
    logdir = tmp_path / "run"
    cmd = [sys.executable, "-m", "dreamer", "--env", "CartPole-v1", "--quick", "--envs", "2",
           "--steps", "100000", "--threads", "1", "--no-progress", "--logdir",
           str(logdir)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": ROOT}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    deadline = time.time() + 120
    while not (logdir / "metrics.csv").exists() and time.time() < deadline:
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: every process of the group
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    assert "SIGINT" in out and "--resume" in out
    assert (logdir / "latest.pt").exists()


def test_bench_collect_times_env_steps(capsys):
    """`python -m dreamer.bench --collect --envs N`: the loop's own collection step, timed."""
    from dreamer import bench

    assert bench.main(["--collect", "--preset", "cartpole", "--envs", "2", "--collect-steps",
                       "40", "--threads", "1"]) == 0  # fmt: skip
    line = json.loads(capsys.readouterr().out)
    assert line["envs"] == 2 and line["env_steps"] == 40 and line["env_steps_per_s"] > 0
    # --parts: the policy, the wait for the envs and the rest add up to a vector step's time
    assert bench.main(["--collect", "--preset", "cartpole", "--envs", "2", "--parts",
                       "--collect-steps", "40", "--threads", "1"]) == 0  # fmt: skip
    line = json.loads(capsys.readouterr().out)
    parts = [line["policy_ms"], line["env_wait_ms"], line["rest_ms"]]
    assert min(parts) >= 0
    ms_per_step = 1e3 * line["seconds"] / line["env_steps"] * line["envs"]
    assert sum(parts) == pytest.approx(ms_per_step, abs=0.3)  # "seconds" keeps 2 decimals
    status = bench.main(["--collect", "--preset", "xs"])
    assert "--collect needs a script preset" in one_line_error(capsys, status)
