"""Sequence replay: a FIFO ring buffer of per-step arrays (paper: batches of 16 x 64 steps).

Each stored step t holds
    obs          x_t, the observation
    action       a_t, the action taken *after* seeing x_t (zeros on the last step)
    reward       r_t, the reward received on arriving at x_t (0 on the first step)
    is_first     x_t starts an episode
    is_terminal  the episode ended by termination at x_t (continue target c_t = 0)
    is_last      the episode ended at x_t, by termination or truncation

Samples are contiguous windows of `seq_len` steps in insertion order; a window may span episode
boundaries, and there `is_first` is set, so the RSSM resets its state and the previous action.
Short episodes (CartPole's first ones last 10-30 steps) are therefore used whole, with no padding
and no mask. `prev_action` is returned for convenience: a_{t-1}, zero where is_first.
"""

from __future__ import annotations

import numpy as np


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

    def _allocate(self, obs: np.ndarray, action: np.ndarray) -> None:
        cap = self.capacity
        self._data = {
            "obs": np.zeros((cap, *np.shape(obs)), np.float32),
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
        obs: np.ndarray,
        action: np.ndarray,
        reward: float,
        is_first: bool,
        is_terminal: bool,
        is_last: bool = False,
    ) -> None:
        """Append one step, overwriting the oldest when full (O(1))."""
        if self._data is None:
            self._allocate(np.asarray(obs), np.asarray(action))
        i = self._ptr
        d = self._data
        d["obs"][i] = obs
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

    def state_dict(self) -> dict:
        return {
            "data": self._data,
            "ptr": self._ptr,
            "size": self._size,
            "total_added": self.total_added,
            "capacity": self.capacity,
            "seq_len": self.seq_len,
        }

    def load_state_dict(self, state: dict) -> None:
        if state["capacity"] != self.capacity:
            raise ValueError("replay capacity differs from the checkpoint's")
        self._data, self._ptr, self._size = state["data"], state["ptr"], state["size"]
        self.total_added = state["total_added"]
