"""SequenceReplayBuffer: FIFO ring, contiguous windows, episode boundaries, flags."""

from __future__ import annotations

import numpy as np
import pytest

from dreamer.replay_buffer import SequenceReplayBuffer


def _fill_episodes(buf: SequenceReplayBuffer, steps: int, seed: int = 0) -> None:
    """Episodes of 2..12 steps; obs = [episode id, step in episode, global index].

    The action stored with global index g is [g + 1, -(g + 1)], so a_{t-1} is recognisable.
    """
    rng = np.random.default_rng(seed)
    g, ep = 0, 0
    while g < steps:
        length = int(rng.integers(2, 13))
        for t in range(length):
            if g >= steps:
                break
            last = t == length - 1
            terminal = last and ep % 2 == 0
            buf.add(
                np.array([ep, t, g], np.float32),
                np.array([g + 1.0, -(g + 1.0)], np.float32),
                reward=float(t),
                is_first=t == 0,
                is_terminal=terminal,
                is_last=last,
            )
            g += 1
        ep += 1


def test_fifo_eviction_and_ring_does_not_grow():
    cap, k = 50, 23
    buf = SequenceReplayBuffer(capacity=cap, seq_len=5)
    for g in range(cap + k):
        buf.add(np.array([g], np.float32), np.zeros(1, np.float32), 0.0, g == 0, False)
        assert buf._data["obs"].shape[0] == cap  # preallocated ring, never grows
    assert len(buf) == cap
    assert buf.total_added == cap + k
    batch = buf.sample(512, np.random.default_rng(0))
    obs = batch["obs"][..., 0]
    assert obs.min() == k  # the oldest k steps are gone...
    assert obs.max() == cap + k - 1  # ...and the newest is there
    assert np.isin(np.arange(k, cap + k), obs).all()  # every kept step can be sampled


def test_windows_are_contiguous_in_insertion_order_across_the_wrap():
    buf = SequenceReplayBuffer(capacity=40, seq_len=8)
    for g in range(97):  # wraps the ring more than twice; write pointer mid-array
        buf.add(np.array([g], np.float32), np.zeros(1, np.float32), 0.0, False, False)
    batch = buf.sample(300, np.random.default_rng(1))
    obs = batch["obs"][..., 0]
    assert batch["obs"].shape == (300, 8, 1)
    assert (np.diff(obs, axis=1) == 1).all()
    assert obs.min() == 97 - 40 and obs.max() == 96


def test_episode_boundaries_set_is_first_and_prev_action():
    cap = 300
    buf = SequenceReplayBuffer(capacity=cap, seq_len=10)
    _fill_episodes(buf, 437)  # wrapped: the oldest kept step is mid-episode
    batch = buf.sample(256, np.random.default_rng(2))
    ep, g = batch["obs"][..., 0], batch["obs"][..., 2]
    first = batch["is_first"]
    assert (np.diff(g, axis=1) == 1).all()
    changed = ep[:, 1:] != ep[:, :-1]
    assert changed.any()
    # Whenever the episode changes inside a window, the RSSM is told to reset (and only then).
    assert np.array_equal(changed, first[:, 1:])
    # prev_action = a_{t-1} (stored with step g - 1, i.e. [g, -g]); zero where is_first.
    prev = batch["prev_action"]
    assert prev.shape == batch["action"].shape == (256, 10, 2)
    assert np.array_equal(prev[:, 1:][~first[:, 1:]], batch["action"][:, :-1][~first[:, 1:]])
    oldest = 437 - cap
    valid = ~first & (g > oldest)
    assert np.array_equal(prev[valid][:, 0], g[valid])
    assert np.array_equal(prev[valid][:, 1], -g[valid])
    assert (prev[first] == 0).all()
    assert (prev[g == oldest] == 0).all()  # nothing older is kept
    assert first.any() and valid.any()


def test_terminated_and_truncated_are_kept_apart():
    buf = SequenceReplayBuffer(capacity=7, seq_len=7)
    a = np.zeros(1, np.float32)
    for t in range(3):  # episode ended by termination
        buf.add(np.full(2, t, np.float32), a, 1.0, t == 0, is_terminal=t == 2)
    for t in range(4):  # episode ended by a time limit
        buf.add(np.full(2, t, np.float32), a, 1.0, t == 0, False, is_last=t == 3)
    batch = buf.sample(3)
    assert np.array_equal(batch["is_first"][0], [1, 0, 0, 1, 0, 0, 0])
    assert np.array_equal(batch["is_terminal"][0], [0, 0, 1, 0, 0, 0, 0])
    assert np.array_equal(batch["is_last"][0], [0, 0, 1, 0, 0, 0, 1])
    assert batch["is_terminal"].dtype == bool and batch["reward"].dtype == np.float32


def test_sample_before_seq_len_steps_raises():
    buf = SequenceReplayBuffer(capacity=100, seq_len=10)
    with pytest.raises(ValueError):
        buf.sample(2)
    for g in range(9):
        buf.add(np.zeros(3), np.zeros(1), 0.0, g == 0, False)
    with pytest.raises(ValueError, match="seq_len"):
        buf.sample(2)
    buf.add(np.zeros(3), np.zeros(1), 0.0, False, False)
    assert buf.sample(2)["obs"].shape == (2, 10, 3)
    with pytest.raises(ValueError):
        SequenceReplayBuffer(capacity=5, seq_len=10)


def test_actions_stay_with_their_step_and_state_dict_roundtrip():
    buf = SequenceReplayBuffer(capacity=20, seq_len=4)
    for g in range(25):
        buf.add(np.array([g], np.float32), np.array([g, 2 * g], np.float32), 0.0, g % 6 == 0, False)
    batch = buf.sample(64, np.random.default_rng(3))
    g = batch["obs"][..., 0]
    assert np.array_equal(batch["action"][..., 0], g)
    assert np.array_equal(batch["action"][..., 1], 2 * g)
    other = SequenceReplayBuffer(capacity=20, seq_len=4)
    other.load_state_dict(buf.state_dict())
    again = other.sample(64, np.random.default_rng(3))
    assert all(np.array_equal(batch[key], again[key]) for key in batch)
    assert len(other) == 20 and other.total_added == 25
