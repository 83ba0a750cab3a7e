"""Run logging: metrics.csv (one row per log interval), optional TensorBoard, a progress bar.

Every metric a run writes is one column of metrics.csv; `docs/walkthrough.md` explains them.
"""

from __future__ import annotations

import csv
import math
import os
from typing import Any

import numpy as np

from .plotting import read_metrics


class MetricsLogger:
    """Appends rows to `<logdir>/metrics.csv`, widening the header when new keys appear."""

    def __init__(self, logdir: str):
        self.path = os.path.join(logdir, "metrics.csv")
        self.tensorboard = _maybe_tensorboard(logdir)

    def write(self, counters: dict[str, Any], pending: list[dict[str, float]]) -> None:
        """One row: the counters, then the mean of every metric over the pending updates."""
        row = dict(counters)
        keys = dict.fromkeys(key for metrics in pending for key in metrics)
        for key in keys:  # a skipped (non-finite) update reports world-model keys only
            row[key] = float(np.mean([m[key] for m in pending if key in m]))
        header = self._header()
        if header is None:
            header = list(row)
            self._rewrite(header, [])
        elif set(row) - set(header):
            # the first row after prefill brings the loss columns: rewrite with a wider header
            header = list(dict.fromkeys([*header, *row]))
            self._rewrite(header, read_metrics(self.path))
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, header, extrasaction="ignore").writerow(row)
        self._tensorboard(row, int(row["env_step"]))

    def _header(self) -> list[str] | None:
        if not os.path.exists(self.path):
            return None
        with open(self.path, newline="") as f:
            return next(csv.reader(f), None)

    def _rewrite(self, header: list[str], rows: list[dict[str, float]]) -> None:
        with open(self.path, "w", newline="") as f:
            writer = csv.DictWriter(f, header)
            writer.writeheader()
            for r in rows:
                writer.writerow({k: _csv_value(v) for k, v in r.items() if k in header})

    def _tensorboard(self, row: dict[str, Any], step: int) -> None:
        if self.tensorboard is None:
            return
        for key, value in row.items():
            if isinstance(value, int | float) and math.isfinite(value):
                self.tensorboard.add_scalar(key, value, step)

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()


def _csv_value(value: float) -> float | int | str:
    """Re-written rows: NaN as an empty cell, whole numbers (counters) as ints."""
    if math.isnan(value):
        return ""
    return int(value) if value.is_integer() else value


def _maybe_tensorboard(logdir: str) -> Any:
    """A SummaryWriter if tensorboard is installed; it is not a requirement."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(logdir)


def progress_bar(total: int, initial: int, enabled: bool) -> Any:
    """A tqdm bar over env steps (steps/s visible), disabled with --no-progress."""
    from tqdm import tqdm

    return tqdm(
        total=total, initial=initial, disable=not enabled, unit="step", dynamic_ncols=True,
        mininterval=1.0,
    )  # fmt: skip
