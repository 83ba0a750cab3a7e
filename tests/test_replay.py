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


# -- prioritized replay (official `Prioritized` selector, off by default) -----------------------


def _prio_config(frac: float = 1.0, exponent: float = 1.0, maxfrac: float = 0.5):
    from dreamer.config import ReplayConfig

    return ReplayConfig(priority_frac=frac, priority_exponent=exponent, priority_maxfrac=maxfrac)


def _vector_buffer(steps: int, capacity: int = 100, seq_len: int = 4) -> SequenceReplayBuffer:
    buf = SequenceReplayBuffer(capacity, seq_len)
    for g in range(steps):
        buf.add(np.array([g], np.float32), np.zeros(1, np.float32), 0.0, g == 0, False)
    return buf


@pytest.mark.parametrize("length", [1, 2, 3, 4, 5, 7, 8, 9, 16, 31, 64])
def test_window_max_equals_the_sliding_window_max(length):
    from numpy.lib.stride_tricks import sliding_window_view

    from dreamer.replay_buffer import window_max

    values = np.random.default_rng(length).normal(size=100)
    expected = sliding_window_view(values, length).max(-1)
    np.testing.assert_array_equal(window_max(values, length), expected)


def test_window_scores_by_hand():
    from dreamer.replay_buffer import window_scores

    steps = np.array([1.0, 3.0, 2.0, 0.0, np.inf, 4.0])
    # windows of 2: maxfrac 0.25 -> 0.25 max + 0.75 mean
    # [1,3]: 0.75 + 1.5 = 2.25; [3,2]: 0.75 + 1.875 = 2.625; [2,0]: 0.5 + 0.75 = 1.25; inf; inf
    scores = window_scores(steps, 2, 0.25)
    np.testing.assert_allclose(scores, [2.25, 2.625, 1.25, np.inf, np.inf])


def test_uniform_sampling_is_unchanged_by_the_priority_machinery():
    # priority_frac 0 draws the starts exactly as before: one rng.integers call
    buf = _vector_buffer(50)
    batch = buf.sample(8, np.random.default_rng(3), _prio_config(frac=0.0))
    starts = np.random.default_rng(3).integers(0, 47, size=8)
    np.testing.assert_array_equal(batch["obs"][:, 0, 0], starts)
    np.testing.assert_array_equal(batch["step_id"], batch["obs"][..., 0])  # ids = insertion count


def test_untrained_steps_are_drawn_first_then_zeroed():
    buf = _vector_buffer(20, seq_len=4)
    buf.prioritize(np.arange(16), np.ones(16))  # steps 16-19 never trained: inf
    batch = buf.sample(1, np.random.default_rng(0), _prio_config())
    assert batch["step_id"][0, -1] >= 16  # the window holds an untrained step
    # zero on sample: the window's steps are at 0 until their losses come back
    ids = batch["step_id"][0]
    np.testing.assert_array_equal(buf._priority[ids % buf.capacity], 0.0)


def test_windows_are_drawn_in_proportion_to_their_scores():
    # 10 steps, windows of 2 (9 starts); only step 5 has priority 3, the rest 1
    buf = _vector_buffer(10, seq_len=2)
    prio = np.ones(10)
    prio[5] = 3.0
    config = _prio_config(maxfrac=0.5)
    counts = np.zeros(9)
    rng = np.random.default_rng(0)
    for _ in range(20_000):
        buf.prioritize(np.arange(10), prio)  # undo the zeroing of the last draw
        counts[buf.sample(1, rng, config)["step_id"][0, 0]] += 1
    # windows [4,5] and [5,6]: 0.5 * 3 + 0.5 * 2 = 2.5; the other 7: 1
    expected = np.where(np.isin(np.arange(9), [4, 5]), 2.5, 1.0)
    np.testing.assert_allclose(counts / counts.sum(), expected / expected.sum(), atol=0.01)


def test_prioritize_ignores_overwritten_steps_and_non_finite_losses():
    buf = _vector_buffer(10, capacity=8, seq_len=2)  # steps 0, 1 overwritten by 8, 9
    buf.prioritize(np.array([0, 1, 2, 9]), np.array([5.0, 5.0, np.nan, 7.0]))
    assert buf._priority[8 % 8] == np.inf and buf._priority[9 % 8] == 7.0  # step 8 untouched
    assert buf._priority[2] == np.inf  # NaN kept out


def test_priorities_survive_a_state_dict_roundtrip():
    buf = _vector_buffer(30, capacity=20)
    buf.prioritize(np.arange(10, 30), np.arange(20.0))
    copy = SequenceReplayBuffer(20, 4)
    copy.load_state_dict(buf.state_dict())
    np.testing.assert_array_equal(copy._priority, buf._priority)
    old = buf.state_dict()
    del old["priority"]  # a checkpoint from before prioritized replay: all untrained
    copy.load_state_dict(old)
    assert np.isinf(copy._priority).all()


def test_one_batch_never_takes_a_window_twice_by_priority():
    # 300 trained steps and 2 new ones: only windows 297 and 298 hold an untrained step. Drawn
    # one at a time with zeroing in between (official), the first draw takes one of them, and no
    # later draw repeats a window
    buf = _vector_buffer(302, capacity=400, seq_len=4)
    buf.prioritize(np.arange(300), np.ones(300))
    starts = buf.sample(8, np.random.default_rng(0), _prio_config(frac=1.0))["step_id"][:, 0]
    assert starts[0] in (297, 298)
    assert len(set(starts)) == 8  # a drawn window's steps are at 0: its score is 0


def test_untrained_steps_come_first_at_any_exponent_and_maxfrac_zero_is_a_mean():
    buf = _vector_buffer(12, seq_len=4)
    buf.prioritize(np.arange(10), np.ones(10))  # steps 10, 11 untrained
    config = _prio_config(frac=1.0, exponent=0.0, maxfrac=0.0)
    assert buf.sample(1, np.random.default_rng(0), config)["step_id"][0, -1] >= 10

    from dreamer.replay_buffer import window_scores

    np.testing.assert_allclose(window_scores(np.array([1.0, 3.0, 2.0]), 2, 0.0), [2.0, 2.5])


def test_sum_tree_finds_the_leaf_that_searchsorted_finds():
    from dreamer.replay_buffer import SumTree

    rng = np.random.default_rng(0)
    values = rng.integers(0, 4, size=37).astype(float)  # integers: sums are exact, zeros common
    tree = SumTree(37)
    tree.set(np.arange(37), values)
    assert tree.leaves == 64 and tree.total() == values.sum()
    cumsum = np.cumsum(values)
    for mass in np.concatenate([np.arange(values.sum()), rng.random(200) * values.sum()]):
        expected = np.searchsorted(cumsum, mass, side="right")
        assert tree.find(mass) == expected and values[expected] > 0
    tree.set(np.array([3, 36]), np.array([5.0, 0.0]))  # ancestors follow a change
    values[3], values[36] = 5.0, 0.0
    assert tree.total() == values.sum()
    assert tree.find(values.sum() - 1e-9) == np.flatnonzero(values)[-1]


def _tree_probs(buf: SequenceReplayBuffer) -> np.ndarray:
    """The sampler's next-draw probabilities by window start (oldest first), read off its trees;
    every leaf outside the stored windows must be 0."""
    unseen, scores = buf._tree
    tree = unseen if unseen.total() > 0 else scores
    leaves = tree.node[tree.leaves : tree.leaves + buf.capacity]
    windows = buf._physical(np.arange(len(buf) - buf.seq_len + 1))
    assert leaves.sum() == pytest.approx(leaves[windows].sum())  # nothing outside them
    return leaves[windows] / leaves[windows].sum()


@pytest.mark.parametrize("exponent, maxfrac", [(0.8, 0.5), (1.0, 0.0), (0.0, 1.0)])
def test_the_sum_trees_keep_the_plain_window_probabilities(exponent, maxfrac):
    # adds across the ring's wrap, partial prioritizes, draws that zero windows: after each,
    # the trees' incremental scores give what the O(replay) plain version gives from scratch
    from dreamer.replay_buffer import window_probs

    rng = np.random.default_rng(1)
    config = _prio_config(frac=1.0, exponent=exponent, maxfrac=maxfrac)
    buf = _vector_buffer(150, capacity=200, seq_len=4)
    buf.sample(1, rng, config)  # builds the trees
    incremental = 0
    for round_ in range(40):
        trees = buf._tree
        for _ in range(int(rng.integers(0, 6))):
            buf.add(np.zeros(1, np.float32), np.zeros(1, np.float32), 0.0, False, False)
        ids = buf._oldest_id() + rng.choice(len(buf), size=6, replace=False)
        buf.prioritize(ids, rng.exponential(size=6) * (rng.random(6) < 0.8))  # some zeros
        if round_ % 10 == 0:
            buf.prioritize(np.arange(buf.total_added), np.ones(buf.total_added))  # all trained
        buf.sample(2, rng, config)
        incremental += buf._tree is trees  # rescored in place, not rebuilt
        stored = buf._priority[buf._physical(np.arange(len(buf)))]
        np.testing.assert_allclose(
            _tree_probs(buf), window_probs(stored, 4, exponent, maxfrac), rtol=1e-9, atol=1e-12
        )
    assert buf.total_added > buf.capacity and incremental >= 30  # wrapped; mostly in place


def test_the_sum_trees_are_rebuilt_after_a_state_dict_roundtrip():
    from dreamer.replay_buffer import window_probs

    config = _prio_config(frac=1.0)
    buf = _vector_buffer(40, capacity=30)
    buf.prioritize(np.arange(40), np.arange(40.0) % 7)
    buf.sample(3, np.random.default_rng(0), config)
    copy = SequenceReplayBuffer(30, 4)
    copy.load_state_dict(buf.state_dict())
    copy._refresh_tree(config)
    stored = copy._priority[copy._physical(np.arange(30))]
    np.testing.assert_allclose(_tree_probs(copy), window_probs(stored, 4, 1.0, 0.5))
