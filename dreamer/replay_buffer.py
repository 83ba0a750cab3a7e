"""Sequence replay: a FIFO ring buffer of per-step arrays (paper: batches of 16 x 64 steps).

Each stored step t holds
    obs          x_t, the observation: a vector as float32; images stay uint8 (a 64x64x3 frame
                 is 12,288 bytes, 4x less than float32); a Dict observation is stored key by
                 key as 'obs/<name>' (`envs.obs_arrays`)
    action       a_t, the action taken *after* seeing x_t (zeros on the last step)
    reward       r_t, the reward received on arriving at x_t (0 on the first step)
    is_first     x_t starts an episode
    is_terminal  the episode ended by termination at x_t (continue target c_t = 0)
    is_last      the episode ended at x_t, by termination or truncation

Samples are contiguous windows of `seq_len` steps in insertion order; a window may span episode
boundaries, and there `is_first` is set, so the RSSM resets its state and the previous action.
Short episodes (CartPole's first ones last 10-30 steps) are therefore used whole, with no padding
and no mask. `prev_action` is returned for convenience: a_{t-1}, zero where is_first.

Prioritized replay (off by default, as in every official preset): each step keeps a priority,
the training loss it last had (infinite until first trained on, so new steps are drawn first);
a window's score mixes the max and the mean of its steps' priorities, and a `priority_frac`
share of each batch is drawn in proportion to those scores, the rest uniformly. A drawn window's
priorities drop to 0 until its training loss comes back through `prioritize`. Every sample
carries `step_id`, each step's insertion count, which names it for `prioritize`. A
`recency_frac` share (also off by default, also official) is drawn by age, newest most often.

Parallel envs (`train.envs` > 1) write to `StreamReplay`: one ring per env, so a window never
mixes the steps of two envs that ran at the same time.
"""

from __future__ import annotations

import numpy as np

from .config import ReplayConfig
from .envs import obs_arrays


class SequenceReplayBuffer:
    """Ring buffer with O(1) insertion; `sample(B)` returns (B, T, ...) numpy arrays."""

    def __init__(self, capacity: int, seq_len: int):
        if capacity < seq_len:
            raise ValueError(f"replay capacity {capacity} is smaller than seq_len {seq_len}")
        self.capacity, self.seq_len = int(capacity), int(seq_len)
        self._data: dict[str, np.ndarray] | None = None
        self._priority = np.full(self.capacity, np.inf)  # per step, by array index
        # window scores for prioritized draws, built on first use: per window start (array
        # index), column 0 = 1 if it holds an untrained step, column 1 = else its score
        self._tree: SumTree | None = None
        self._tree_settings: tuple[float, float] | None = None
        self._dirty: list[np.ndarray] = []  # steps whose priority changed since the last refresh
        self._pending = 0  # how many (with repeats)
        self._recency_cdf: tuple[float, np.ndarray] | None = None  # (exponent, cumulative weights)
        self._ptr = 0  # next write position
        self._size = 0  # steps stored
        self.total_added = 0  # steps ever added

    def _allocate(self, obs: dict[str, np.ndarray], action: np.ndarray) -> None:
        # np.zeros reserves the ring without touching it: memory is used as steps arrive
        cap = self.capacity
        self._data = {key: np.zeros((cap, *x.shape), _storage_dtype(x)) for key, x in obs.items()}
        self._data |= {
            "action": np.zeros((cap, *np.shape(action)), np.float32),
            "reward": np.zeros(cap, np.float32),
            "is_first": np.zeros(cap, bool),
            "is_terminal": np.zeros(cap, bool),
            "is_last": np.zeros(cap, bool),
        }

    def __len__(self) -> int:
        return self._size

    def add(
        self,
        obs: np.ndarray | dict[str, np.ndarray],
        action: np.ndarray,
        reward: float,
        is_first: bool,
        is_terminal: bool,
        is_last: bool = False,
    ) -> None:
        """Append one step, overwriting the oldest when full (O(1)). `obs` is the env's
        observation: an array, or a dict for Dict observations."""
        obs = obs_arrays(obs)
        if self._data is None:
            self._allocate(obs, np.asarray(action))
        i = self._ptr
        d = self._data
        for key, value in obs.items():
            d[key][i] = value
        d["action"][i] = action
        d["reward"][i] = reward
        d["is_first"][i] = is_first
        d["is_terminal"][i] = is_terminal
        d["is_last"][i] = is_last or is_terminal
        self._set_priority(i, np.inf)  # not trained on yet
        self._ptr = (i + 1) % self.capacity
        self._size = min(self._size + 1, self.capacity)
        self.total_added += 1

    def _physical(self, logical: np.ndarray) -> np.ndarray:
        """Insertion-order index (0 = oldest kept) -> array index."""
        return (self._oldest_index() + logical) % self.capacity

    def sample(
        self,
        batch_size: int,
        rng: np.random.Generator | None = None,
        priority: ReplayConfig | None = None,
    ) -> dict:
        """B windows of T consecutive steps: dict of (B, T, ...) arrays, plus `prev_action` and
        `step_id`. With `priority` (the replay config), its `priority_frac` share of them is
        drawn by priority and its `recency_frac` share by age, the rest uniformly."""
        if self._size < self.seq_len:
            raise ValueError(f"replay holds {self._size} steps, fewer than seq_len {self.seq_len}")
        rng = rng if rng is not None else np.random.default_rng()
        num_starts = self._size - self.seq_len + 1
        starts = rng.integers(0, num_starts, size=batch_size)
        p_frac = priority.priority_frac if priority is not None else 0.0
        r_frac = priority.recency_frac if priority is not None else 0.0
        if p_frac > 0 or r_frac > 0:
            # each window picks its selector with these probabilities (official: a mixture)
            u = rng.random(batch_size)
            by_priority, by_age = u < p_frac, (u >= p_frac) & (u < p_frac + r_frac)
            if p_frac > 0:
                starts[by_priority] = self._priority_starts(int(by_priority.sum()), rng, priority)
            if r_frac > 0:
                starts[by_age] = self._recency_starts(int(by_age.sum()), rng, priority)
        logical = starts[:, None] + np.arange(self.seq_len)[None]  # (B, T)
        index = self._physical(logical)
        batch = {key: value[index] for key, value in self._data.items()}
        # a_{t-1}: the stored action one step back; zero at episode starts and at the oldest step.
        prev_index = self._physical(np.maximum(logical - 1, 0))
        prev = self._data["action"][prev_index]
        valid = (logical > 0) & ~batch["is_first"]
        batch["prev_action"] = prev * valid[..., None]
        batch["step_id"] = self._oldest_id() + logical  # (B, T) insertion counts
        return batch

    def _oldest_id(self) -> int:
        return self.total_added - self._size

    def _priority_starts(
        self, count: int, rng: np.random.Generator, priority: ReplayConfig
    ) -> np.ndarray:
        """`count` window starts, one at a time as the official selector draws them: windows
        holding an untrained step first, uniformly among them; else each window in proportion
        to its score (`window_probs`, the plain O(replay) version, says the same). A drawn
        window's steps then drop to 0 (official `zero_on_sample`), so one batch does not take
        the same new window twice. The scores live in a sum tree: O(T^2 + T log capacity) per
        draw, not O(replay size)."""
        self._refresh_tree(priority)
        starts = np.zeros(count, int)
        for i in range(count):
            unseen, scores = self._tree.total(0), self._tree.total(1)
            if unseen > 0:
                start = self._tree.find(rng.random() * unseen, column=0)
            elif scores > 0:
                start = self._tree.find(rng.random() * scores, column=1)
            else:  # every score is 0: uniform
                start = int(self._physical(rng.integers(0, self._size - self.seq_len + 1)))
            starts[i] = self._logical(start)
            self._set_priority(self._physical(starts[i] + np.arange(self.seq_len)), 0.0)
            self._refresh_tree(priority)
        return starts

    def _recency_starts(
        self, count: int, rng: np.random.Generator, priority: ReplayConfig
    ) -> np.ndarray:
        """`count` window starts by age, as the official `Recency` selector draws them: an age a
        in [0, capacity) with probability proportional to 1 / (a + 1) ** recency_exponent,
        squeezed onto the n stored windows as floor(a n / capacity), 0 the newest window."""
        e = priority.recency_exponent
        if self._recency_cdf is None or self._recency_cdf[0] != e:
            weights = 1.0 / np.arange(1, self.capacity + 1) ** e  # (capacity,)
            self._recency_cdf = (e, np.cumsum(weights))
        cdf = self._recency_cdf[1]
        age = np.searchsorted(cdf, rng.random(count) * cdf[-1], side="right")  # (count,)
        num_starts = self._size - self.seq_len + 1
        return num_starts - 1 - age * num_starts // self.capacity

    def _logical(self, physical: np.ndarray) -> np.ndarray:
        """Array index -> insertion-order index (0 = oldest kept); inverse of `_physical`."""
        return (physical - self._oldest_index()) % self.capacity

    def _oldest_index(self) -> int:
        """Array index of the oldest kept step: the write position once the ring is full."""
        return self._ptr if self._size == self.capacity else 0

    def _set_priority(self, index: np.ndarray, value: float | np.ndarray) -> None:
        """Write step priorities (array indices), noting the steps whose windows need rescoring."""
        self._priority[index] = value
        if self._tree is not None:
            self._dirty.append(np.atleast_1d(index))
            self._pending += self._dirty[-1].size
            if self._pending > self.capacity:  # no draws for a while: rebuild when one comes
                self._tree, self._dirty, self._pending = None, [], 0

    def _refresh_tree(self, priority: ReplayConfig) -> None:
        """Bring the tree's window scores up to date: all of them on first use (or when the
        exponent or maxfrac change), else only the windows that hold a changed step. A window
        not (or no longer) wholly stored is 0 in both columns."""
        settings = (priority.priority_exponent, priority.priority_maxfrac)
        T, e, maxfrac = self.seq_len, *settings
        if self._tree is None or settings != self._tree_settings:
            self._tree_settings, self._dirty, self._pending = settings, [], 0
            stored = self._priority[self._physical(np.arange(self._size))]  # oldest first
            score = window_scores(exponentiate(stored, e), T, maxfrac)  # (num_starts,)
            self._tree = SumTree(self.capacity, width=2)
            self._tree.set(self._physical(np.arange(len(score))), _columns(score))
            return
        if not self._dirty:
            return
        steps = np.unique(np.concatenate(self._dirty))
        self._dirty, self._pending = [], 0
        # window p holds steps p .. p + T - 1: a changed step s touches starts s - T + 1 .. s
        windows = np.unique((steps[:, None] - np.arange(T)) % self.capacity)  # (n,)
        rows = exponentiate(self._priority[(windows[:, None] + np.arange(T)) % self.capacity], e)
        infinite = np.isinf(rows)
        finite = np.where(infinite, 0.0, rows)  # (n, T)
        score = (1 - maxfrac) * finite.mean(-1)
        if maxfrac > 0:  # the official selector skips the max term at 0
            score = score + maxfrac * finite.max(-1)
        score[infinite.any(-1)] = np.inf
        valid = self._logical(windows) <= self._size - T  # wholly stored
        self._tree.set(windows, _columns(score) * valid[:, None])

    def prioritize(self, step_ids: np.ndarray, priorities: np.ndarray) -> None:
        """Set the priorities of stored steps (by `step_id`) to their latest losses; steps
        overwritten since they were sampled, and non-finite losses, are ignored."""
        step_ids, priorities = np.ravel(step_ids), np.ravel(priorities)
        if (priorities < 0).any():  # a draw's probability is its score: never below 0
            raise ValueError(f"replay priorities must be >= 0, got {priorities.min()}")
        keep = (step_ids >= self._oldest_id()) & np.isfinite(priorities)
        self._set_priority(step_ids[keep] % self.capacity, priorities[keep])

    def bytes_per_step(self) -> int:
        """Bytes one stored step takes (all keys), once allocated."""
        return sum(value[0].nbytes for value in self._data.values()) if self._data else 0

    def state_dict(self) -> dict:
        """The stored steps only, not the empty rest of the ring: a checkpoint of 10k frames in
        a 1M-step buffer holds 10k frames. (Until full, the steps fill slots 0..size-1.)"""
        data = self._data and {key: value[: self._size] for key, value in self._data.items()}
        return {
            "data": data,
            "ptr": self._ptr,
            "size": self._size,
            "total_added": self.total_added,
            "priority": self._priority[: self._size].copy(),
            "capacity": self.capacity,
            "seq_len": self.seq_len,
        }

    def load_state_dict(self, state: dict) -> None:
        if state["capacity"] != self.capacity:
            raise ValueError("replay capacity differs from the checkpoint's")
        self._ptr, self._size = state["ptr"], state["size"]
        self._data = None
        if state["data"] is not None:  # back into a full-capacity ring (older files hold one)
            self._data = {}
            for key, value in state["data"].items():
                self._data[key] = np.zeros((self.capacity, *value.shape[1:]), value.dtype)
                self._data[key][: self._size] = value[: self._size]
        self.total_added = state["total_added"]
        self._priority = np.full(self.capacity, np.inf)  # older checkpoints: all untrained
        self._tree, self._dirty, self._pending = None, [], 0  # rebuilt on the next draw
        if "priority" in state:
            self._priority[: self._size] = state["priority"]


def window_max(values: np.ndarray, length: int) -> np.ndarray:
    """max(values[i : i + length]) for every i, in O(n log length): maxima over windows of
    1, 2, 4, ... steps, then two overlapping power-of-two windows cover any length.
    (The plain version, `sliding_window_view(values, length).max(-1)`, is pinned equal in
    tests/test_replay.py; it costs n * length.)"""
    span, maxima = 1, values
    while 2 * span <= length:
        maxima = np.maximum(maxima[:-span], maxima[span:])  # windows of 2 * span
        span *= 2
    return np.maximum(maxima[: len(values) - length + 1], maxima[length - span :])


def window_scores(steps: np.ndarray, length: int, maxfrac: float) -> np.ndarray:
    """Score of each window of `length` steps: maxfrac * max + (1 - maxfrac) * mean of the
    steps' (exponentiated) priorities; inf where a step is untrained (inf)."""
    infinite = np.isinf(steps)
    finite = np.where(infinite, 0.0, steps)
    cumsum = np.concatenate([[0.0], np.cumsum(finite)])
    mean = (cumsum[length:] - cumsum[:-length]) / length
    score = (1 - maxfrac) * mean
    if maxfrac > 0:  # the official selector skips the max term at 0
        score = score + maxfrac * window_max(finite, length)
    count = np.concatenate([[0], np.cumsum(infinite)])
    return np.where(count[length:] - count[:-length] > 0, np.inf, score)


def exponentiate(priorities: np.ndarray, exponent: float) -> np.ndarray:
    """p ** exponent, with untrained steps kept inf whatever the exponent (0 ** 0 would be 1)."""
    return np.where(np.isinf(priorities), np.inf, priorities**exponent)


def _columns(score: np.ndarray) -> np.ndarray:
    """Window scores -> the sampler tree's leaves, (n, 2): [1, 0] where a window holds an
    untrained step (inf), else [0, score]."""
    unseen = np.isinf(score)
    return np.stack([unseen.astype(float), np.where(unseen, 0.0, score)], -1)


def window_probs(
    priorities: np.ndarray, length: int, exponent: float, maxfrac: float
) -> np.ndarray:
    """The plain maths of one prioritized draw, O(replay size): the probability of each window
    start given the stored steps' priorities, oldest first. Windows holding an untrained (inf)
    step come first, uniformly among them; else in proportion to their scores; uniform if all
    are 0. The sampler's sum trees are pinned to this in tests/test_replay.py."""
    score = window_scores(exponentiate(priorities, exponent), length, maxfrac)
    unseen = np.isinf(score)
    if unseen.any():
        return unseen / unseen.sum()
    if score.sum() > 0:
        return score / score.sum()
    return np.full(len(score), 1.0 / len(score))


class SumTree:
    """Non-negative values on the leaves of a tree whose every node holds its subtree's sums:
    set k leaves in O(k log n), draw a leaf in proportion to its value in O(log n). Each leaf
    holds `width` values (the sampler keeps two: a count and a score), summed side by side.

    `branching` children per node, as the official selector's tree (16): five levels above a
    million leaves, so a draw is five small steps. `sums[d]` holds level d, (branching^d, width);
    `sums[0]` is the root, `sums[-1]` the leaves.
    """

    def __init__(self, size: int, width: int = 1, branching: int = 16):
        self.branching, depth = branching, 0
        while branching**depth < size:
            depth += 1
        self.sums = [np.zeros((branching**d, width)) for d in range(depth + 1)]

    def total(self, column: int = 0) -> float:
        return float(self.sums[0][0, column])

    def set(self, index: np.ndarray, values: np.ndarray) -> None:
        """leaves[index] = values, (k,) distinct indices and (k, width) values; then each
        ancestor recomputed from its children (rebuilt, never patched with differences, so
        rounding cannot drift)."""
        index = np.atleast_1d(index)
        if index.size == 0:
            return
        order = np.argsort(index)
        node, b = index[order], self.branching
        self.sums[-1][node] = np.asarray(values, float)[order]
        for d in range(len(self.sums) - 2, -1, -1):
            node = node // b
            node = node[np.concatenate(([True], node[1:] != node[:-1]))]  # sorted: unique
            children = self.sums[d + 1].reshape(-1, b, self.sums[d].shape[1])  # (nodes, b, w)
            self.sums[d][node] = children[node].sum(1)

    def find(self, mass: float, column: int = 0) -> int:
        """The leaf j where the running sum of column `column` over leaves 0..j first exceeds
        `mass` (in [0, total)): `np.searchsorted(np.cumsum(leaves), mass, side='right')`,
        walking down from the root."""
        i, b = 0, self.branching
        for level in self.sums[1:]:
            children = level[i * b : (i + 1) * b, column]
            running = np.cumsum(children)
            j = int(np.searchsorted(running, mass, side="right"))
            if j == b:  # rounding left `mass` at or past the sum: the last child holding any
                j = int(np.flatnonzero(children)[-1])
            mass -= running[j - 1] if j > 0 else 0.0
            i = i * b + j
        return i


class StreamReplay:
    """N `SequenceReplayBuffer` streams, one per parallel env, the capacity split evenly.

    `add(..., stream=k)` appends to env k's stream; `sample(B)` draws each window from a stream
    chosen in proportion to its number of valid window starts, so every window start of every
    stream is equally likely, as in one buffer, and no window crosses from one env to another.
    """

    def __init__(self, capacity: int, seq_len: int, streams: int):
        if streams < 1:
            raise ValueError(f"replay needs at least one stream, got {streams}")
        self.capacity, self.seq_len = int(capacity), int(seq_len)
        self.streams = [SequenceReplayBuffer(capacity // streams, seq_len) for _ in range(streams)]

    def __len__(self) -> int:
        return sum(len(s) for s in self.streams)

    @property
    def total_added(self) -> int:
        return sum(s.total_added for s in self.streams)

    def add(
        self,
        obs: np.ndarray | dict[str, np.ndarray],
        action: np.ndarray,
        reward: float,
        is_first: bool,
        is_terminal: bool,
        is_last: bool = False,
        stream: int = 0,
    ) -> None:
        """Append one step of env `stream` (`SequenceReplayBuffer.add`)."""
        self.streams[stream].add(obs, action, reward, is_first, is_terminal, is_last)

    def window_starts(self) -> np.ndarray:
        """Valid window starts per stream, (N,): a stream shorter than seq_len has none."""
        return np.array([max(len(s) - self.seq_len + 1, 0) for s in self.streams])

    def sample(
        self,
        batch_size: int,
        rng: np.random.Generator | None = None,
        priority: ReplayConfig | None = None,
    ) -> dict:
        """B windows of T steps, each from one stream: dict of (B, T, ...) arrays. With
        `priority`, each stream draws its share by priority (the stream itself is still chosen
        by its window starts); `step_id` = a stream's own id * N + the stream's index."""
        starts = self.window_starts()
        if starts.sum() == 0:
            raise ValueError(f"no replay stream holds seq_len {self.seq_len} steps yet")
        rng = rng if rng is not None else np.random.default_rng()
        stream = rng.choice(len(self.streams), size=batch_size, p=starts / starts.sum())  # (B,)
        batch: dict[str, np.ndarray] = {}
        for k in np.unique(stream):
            rows = np.flatnonzero(stream == k)
            part = self.streams[k].sample(len(rows), rng, priority)
            part["step_id"] = part["step_id"] * len(self.streams) + k
            for key, value in part.items():
                if key not in batch:
                    batch[key] = np.empty((batch_size, *value.shape[1:]), value.dtype)
                batch[key][rows] = value
        return batch

    def prioritize(self, step_ids: np.ndarray, priorities: np.ndarray) -> None:
        """`SequenceReplayBuffer.prioritize`, each step sent to the stream its id names."""
        step_ids, priorities = np.ravel(step_ids), np.ravel(priorities)
        n = len(self.streams)
        for k, stream in enumerate(self.streams):
            mine = step_ids % n == k
            stream.prioritize(step_ids[mine] // n, priorities[mine])

    def bytes_per_step(self) -> int:
        return max(s.bytes_per_step() for s in self.streams)

    def state_dict(self) -> dict:
        return {
            "streams": [s.state_dict() for s in self.streams],
            "capacity": self.capacity,
            "seq_len": self.seq_len,
        }

    def load_state_dict(self, state: dict) -> None:
        if "streams" not in state or len(state["streams"]) != len(self.streams):
            found = len(state["streams"]) if "streams" in state else 1
            raise ValueError(
                f"replay has {found} stream(s) in the checkpoint, not {len(self.streams)}"
            )
        for stream, part in zip(self.streams, state["streams"], strict=True):
            stream.load_state_dict(part)


def _storage_dtype(value: np.ndarray) -> type:
    """uint8 for images (H, W, C), float32 for everything else (vectors of any dtype)."""
    return np.uint8 if value.dtype == np.uint8 and value.ndim == 3 else np.float32
