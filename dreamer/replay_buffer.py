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

Parallel envs (`train.envs` > 1) write to `StreamReplay`: one ring per env, so a window never
mixes the steps of two envs that ran at the same time.
"""

from __future__ import annotations

import numpy as np

from .envs import obs_arrays


class SequenceReplayBuffer:
    """Ring buffer with O(1) insertion; `sample(B)` returns (B, T, ...) numpy arrays."""

    def __init__(self, capacity: int, seq_len: int):
        if capacity < seq_len:
            raise ValueError(f"replay capacity {capacity} is smaller than seq_len {seq_len}")
        self.capacity, self.seq_len = int(capacity), int(seq_len)
        self._data: dict[str, np.ndarray] | None = None
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
        self._ptr = (i + 1) % self.capacity
        self._size = min(self._size + 1, self.capacity)
        self.total_added += 1

    def _physical(self, logical: np.ndarray) -> np.ndarray:
        """Insertion-order index (0 = oldest kept) -> array index."""
        oldest = self._ptr if self._size == self.capacity else 0
        return (oldest + logical) % self.capacity

    def sample(self, batch_size: int, rng: np.random.Generator | None = None) -> dict:
        """B windows of T consecutive steps: dict of (B, T, ...) arrays, plus `prev_action`."""
        if self._size < self.seq_len:
            raise ValueError(f"replay holds {self._size} steps, fewer than seq_len {self.seq_len}")
        rng = rng if rng is not None else np.random.default_rng()
        starts = rng.integers(0, self._size - self.seq_len + 1, size=batch_size)
        logical = starts[:, None] + np.arange(self.seq_len)[None]  # (B, T)
        index = self._physical(logical)
        batch = {key: value[index] for key, value in self._data.items()}
        # a_{t-1}: the stored action one step back; zero at episode starts and at the oldest step.
        prev_index = self._physical(np.maximum(logical - 1, 0))
        prev = self._data["action"][prev_index]
        valid = (logical > 0) & ~batch["is_first"]
        batch["prev_action"] = prev * valid[..., None]
        return batch

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

    def sample(self, batch_size: int, rng: np.random.Generator | None = None) -> dict:
        """B windows of T steps, each from one stream: dict of (B, T, ...) arrays."""
        starts = self.window_starts()
        if starts.sum() == 0:
            raise ValueError(f"no replay stream holds seq_len {self.seq_len} steps yet")
        rng = rng if rng is not None else np.random.default_rng()
        stream = rng.choice(len(self.streams), size=batch_size, p=starts / starts.sum())  # (B,)
        batch: dict[str, np.ndarray] = {}
        for k in np.unique(stream):
            rows = np.flatnonzero(stream == k)
            part = self.streams[k].sample(len(rows), rng)
            for key, value in part.items():
                if key not in batch:
                    batch[key] = np.empty((batch_size, *value.shape[1:]), value.dtype)
                batch[key][rows] = value
        return batch

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
