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


@pytest.mark.parametrize("size, branching", [(37, 16), (37, 2), (256, 16), (1, 16)])
def test_sum_tree_finds_the_leaf_that_searchsorted_finds(size, branching):
    from dreamer.replay_buffer import SumTree

    rng = np.random.default_rng(size)
    values = rng.integers(0, 4, size=(size, 2)).astype(float)  # integers: exact sums; zeros
    values[0] = 1.0  # so neither column is all zero
    tree = SumTree(size, width=2, branching=branching)
    tree.set(np.arange(size), values)
    for column in (0, 1):
        total, cumsum = values[:, column].sum(), np.cumsum(values[:, column])
        assert tree.total(column) == total
        for mass in np.concatenate([np.arange(total), rng.random(100) * total]):
            expected = np.searchsorted(cumsum, mass, side="right")
            assert tree.find(mass, column) == expected and values[expected, column] > 0
    tree.set(np.array([size - 1, 0]), np.array([[5.0, 0.0], [2.0, 3.0]]))  # ancestors follow
    values[size - 1], values[0] = [5.0, 0.0], [2.0, 3.0]
    assert tree.total(0) == values[:, 0].sum() and tree.total(1) == values[:, 1].sum()
    tree.set(np.zeros(0, int), np.zeros((0, 2)))  # nothing to set is fine


def test_sum_tree_never_lands_on_an_empty_leaf_at_the_total():
    # sums of fractions round: a mass at (or a hair past) the total still finds a positive leaf
    from dreamer.replay_buffer import SumTree

    values = np.zeros((50, 1))
    values[[3, 17, 29], 0] = [0.1, 0.2, 0.7]
    tree = SumTree(50, branching=4)
    tree.set(np.arange(50), values)
    for mass in (tree.total(), np.nextafter(tree.total(), 0.0), tree.total() * (1 + 1e-15)):
        assert tree.find(mass) == 29


def _tree_leaves(buf: SequenceReplayBuffer) -> np.ndarray:
    """The sampler tree's leaves by window start (oldest first), (num_starts, 2); every leaf
    outside the stored windows must be 0."""
    leaves = buf._tree.sums[-1]
    windows = buf._physical(np.arange(len(buf) - buf.seq_len + 1))
    outside = np.ones(len(leaves), bool)
    outside[windows] = False
    assert not leaves[outside].any()
    return leaves[windows]


def _expected_leaves(buf: SequenceReplayBuffer, exponent: float, maxfrac: float) -> np.ndarray:
    """The same from scratch by the plain maths: [1, 0] for a window with an untrained step,
    else [0, score]."""
    from dreamer.replay_buffer import window_scores

    stored = buf._priority[buf._physical(np.arange(len(buf)))]
    steps = np.where(np.isinf(stored), np.inf, stored**exponent)
    score = window_scores(steps, buf.seq_len, maxfrac)
    return np.stack([np.isinf(score), np.where(np.isinf(score), 0.0, score)], -1)


@pytest.mark.parametrize("exponent, maxfrac", [(0.8, 0.5), (1.0, 0.0), (0.0, 1.0)])
def test_the_sum_tree_keeps_the_plain_window_scores(exponent, maxfrac):
    # adds across the ring's wrap, partial prioritizes, draws that zero windows: after each,
    # the tree's incremental leaves equal the plain scores computed from scratch, and its
    # next-draw probabilities equal the plain version's (window_probs)
    from dreamer.replay_buffer import window_probs

    rng = np.random.default_rng(1)
    config = _prio_config(frac=1.0, exponent=exponent, maxfrac=maxfrac)
    buf = _vector_buffer(150, capacity=200, seq_len=4)
    buf.sample(1, rng, config)  # builds the tree
    incremental = 0
    for round_ in range(40):
        tree = buf._tree
        for _ in range(int(rng.integers(0, 6))):
            buf.add(np.zeros(1, np.float32), np.zeros(1, np.float32), 0.0, False, False)
        ids = buf._oldest_id() + rng.choice(len(buf), size=6, replace=False)
        buf.prioritize(ids, rng.exponential(size=6) * (rng.random(6) < 0.8))  # some zeros
        if round_ % 10 == 0:
            buf.prioritize(np.arange(buf.total_added), np.ones(buf.total_added))  # all trained
        buf.sample(2, rng, config)
        incremental += buf._tree is tree  # rescored in place, not rebuilt
        leaves = _tree_leaves(buf)
        np.testing.assert_allclose(leaves, _expected_leaves(buf, exponent, maxfrac), rtol=1e-12)
        column = 0 if leaves[:, 0].any() else 1
        stored = buf._priority[buf._physical(np.arange(len(buf)))]
        np.testing.assert_allclose(
            leaves[:, column] / leaves[:, column].sum(),
            window_probs(stored, 4, exponent, maxfrac),
            rtol=1e-9,
            atol=1e-12,
        )
    assert buf.total_added > buf.capacity and incremental >= 36  # wrapped; mostly in place


def test_the_sum_tree_is_rebuilt_after_a_state_dict_roundtrip():
    config = _prio_config(frac=1.0)
    buf = _vector_buffer(40, capacity=30)
    buf.prioritize(np.arange(40), np.arange(40.0) % 7)
    buf.sample(3, np.random.default_rng(0), config)
    other = _vector_buffer(30, capacity=30)  # its own tree, from other priorities
    other.sample(3, np.random.default_rng(0), config)
    other.load_state_dict(buf.state_dict())
    other.sample(0, np.random.default_rng(0), config)  # no draw: only the refresh
    np.testing.assert_allclose(_tree_leaves(other), _expected_leaves(other, 1.0, 0.5))


def test_negative_priorities_are_refused():
    buf = _vector_buffer(10)
    with pytest.raises(ValueError, match=">= 0"):
        buf.prioritize(np.arange(3), np.array([1.0, -0.5, 2.0]))


def test_recency_draws_by_age_as_the_official_selector_by_hand():
    # capacity 4, windows of 2, 3 steps stored: 2 windows. Ages 0-3 weigh 1, 1/2, 1/3, 1/4
    # (sum 25/12); squeezed onto 2 windows as floor(a * 2 / 4): ages 0, 1 -> the newest window
    # (start 1), ages 2, 3 -> start 0. So P(newest) = (3/2) / (25/12) = 18/25
    from dreamer.config import ReplayConfig

    buf = _vector_buffer(3, capacity=4, seq_len=2)
    config = ReplayConfig(recency_frac=1.0, recency_exponent=1.0)
    rng = np.random.default_rng(0)
    starts = np.concatenate([buf.sample(50, rng, config)["step_id"][:, 0] for _ in range(400)])
    assert np.mean(starts == 1) == pytest.approx(18 / 25, abs=0.01)
    config.recency_exponent = 0.0  # every age alike: each window gets 2 of the 4 ages
    starts = np.concatenate([buf.sample(50, rng, config)["step_id"][:, 0] for _ in range(400)])
    assert np.mean(starts == 1) == pytest.approx(0.5, abs=0.01)


def test_recency_favours_the_newest_windows_across_the_wrap():
    from dreamer.config import ReplayConfig

    buf = _vector_buffer(130, capacity=100, seq_len=4)  # wrapped: steps 30-129 kept
    batch = buf.sample(2000, np.random.default_rng(0), ReplayConfig(recency_frac=1.0))
    ids = batch["step_id"][:, 0]
    assert ids.min() >= 30 and ids.max() == 126  # the newest window starts at step 126
    # weights 1/(a+1) over 100 ages squeezed onto 97 windows: the newest 10 windows take most
    assert np.mean(ids >= 117) > 0.5
    np.testing.assert_array_equal(batch["obs"][:, 0, 0], ids)  # the windows are those steps


def test_priority_and_recency_shares_must_leave_room_for_each_other():
    from dreamer.config import ConfigError, DreamerConfig, validate

    config = DreamerConfig()
    config.replay.priority_frac, config.replay.recency_frac = 0.6, 0.5
    with pytest.raises(ConfigError, match="must be <= 1"):
        validate(config)
