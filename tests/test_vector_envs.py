"""Parallel envs (issue #17, `--envs N`): replay streams that never mix envs, the vector loop's
episode bookkeeping, resume, pixels in subprocesses, the N = 1 path unchanged, the flag."""

import numpy as np
import pytest

from dreamer.replay_buffer import SequenceReplayBuffer, StreamReplay

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
