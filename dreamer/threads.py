"""Torch CPU threads that survive contention: `--threads auto`, the default of every script.

No fixed thread count is right everywhere. On the 2-core machine behind the README, one update of
the cartpole preset took 415 ms with 2 threads and 566 ms with 1 when the machine was idle; with
one other busy process, 1,210 ms with 2 threads (each parallel region waits for the thread that
shares its core) and 571 ms with 1. So `ThreadTuner` times updates itself and keeps the faster:

    probe    run `probe_updates` updates at 1 thread and as many at all cores, interleaved
             (1, N, 1, N) so both see the same load; keep the count with the lower median
             (the fewest threads within 3% of the fastest: less CPU for the same speed)
    exploit  run at that count; if the median of the last 5 updates is 1.5x the probe's
             figure (other work just started) probe again at once
    repeat   probe every `min_interval` s, doubling up to `max_interval` s while the choice
             holds, back to `min_interval` when it flips

A probe at the slow count costs probe_updates x (slow - fast) ms: with the figures above, 2 x 640
ms under contention, at most once per 15 s and once per 120 s when the load is steady (about 1%).
Changing the thread count can change floating-point results in the last bits, so a run with
`--threads auto` is not bit-for-bit repeatable; use a fixed `--threads 1` for that.
`python -m dreamer.bench --contention` measures every setting idle and beside a busy process.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

import torch


def parse_threads(text: str) -> int | str:
    """'auto' or a positive thread count; ValueError (one line) otherwise."""
    if text == "auto":
        return text
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise ValueError(f"threads must be 'auto' or an integer >= 1, got {text!r}")
    return count


class ThreadTuner:
    """Runs `fn` (one update) at whichever of 1 thread and all cores is faster right now."""

    def __init__(
        self,
        max_threads: int | None = None,
        probe_updates: int = 2,
        min_interval: float = 15.0,
        max_interval: float = 120.0,
        slowdown: float = 1.5,
        clock: Callable[[], float] = time.perf_counter,
    ):
        self.candidates = sorted({1, max_threads or torch.get_num_threads()})
        self.probe_updates, self.slowdown, self.clock = probe_updates, slowdown, clock
        self.min_interval, self.max_interval = min_interval, max_interval
        self.interval = min_interval
        self.threads = self.candidates[-1]  # torch's default until the first probe
        self.expected: float | None = None  # seconds per update at `threads`, from the probe
        self.next_probe = -float("inf")
        self.warmup = 1  # the first update pays one-off costs (allocator, lazy init): untimed
        self.probes = 0
        self.updates_at: Counter[int] = Counter()
        self._plan: list[int] = []  # thread counts of the probe updates still to run
        self._samples: dict[int, list[float]] = {}
        self._recent: deque[float] = deque(maxlen=5)

    @property
    def settle_updates(self) -> int:
        """Updates until the first choice is made (a benchmark's warm-up)."""
        return 1 + self.probe_updates * len(self.candidates)

    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """fn(*args, **kwargs) at the thread count the tuner picks; timed to pick the next."""
        if len(self.candidates) == 1:
            return fn(*args, **kwargs)
        if self.warmup:
            self.warmup -= 1
            self._set(self.threads)
            return fn(*args, **kwargs)
        if not self._plan and self.clock() >= self.next_probe:
            self._plan = self.candidates * self.probe_updates  # interleaved: 1, N, 1, N
            self._samples = {n: [] for n in self.candidates}
        threads = self._plan[0] if self._plan else self.threads
        self._set(threads)
        start = self.clock()
        out = fn(*args, **kwargs)
        seconds = self.clock() - start
        self.updates_at[threads] += 1
        if self._plan:
            self._samples[self._plan.pop(0)].append(seconds)
            if not self._plan:
                self._choose()
        else:
            self._recent.append(seconds)
            slow = statistics.median(self._recent) > self.slowdown * (self.expected or 0)
            if len(self._recent) == self._recent.maxlen and slow:
                self.interval, self.next_probe = self.min_interval, -float("inf")
        return out

    def _choose(self) -> None:
        medians = {n: statistics.median(s) for n, s in self._samples.items()}
        fastest = min(medians.values())
        best = min(n for n, m in medians.items() if m <= 1.03 * fastest)
        same = best == self.threads
        self.interval = min(2 * self.interval, self.max_interval) if same else self.min_interval
        self.threads, self.expected = best, medians[best]
        self.probes += 1
        self._recent.clear()
        self.next_probe = self.clock() + self.interval
        self._set(best)

    @staticmethod
    def _set(threads: int) -> None:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)

    def summary(self) -> dict:
        """For result.json: how many updates ran at each count, and how often it probed."""
        return {
            "threads": "auto",
            "updates_at": {str(n): c for n, c in sorted(self.updates_at.items())},
            "probes": self.probes,
        }
