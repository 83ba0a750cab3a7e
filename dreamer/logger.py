"""Run logging: metrics.csv (one row per log interval), optional TensorBoard, a progress bar.

Every metric a run writes is one column of metrics.csv; `docs/walkthrough.md` explains them.
Each row goes to the file in one write call, so a run killed with SIGKILL leaves whole rows
(a full disk can still leave a partial last line); a resumed run calls `truncate_after` to drop
that line and the rows logged after its checkpoint, which it logs again.
"""

from __future__ import annotations

import csv
import errno
import io
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
        line = io.StringIO()
        csv.DictWriter(line, header, extrasaction="ignore").writerow(row)
        _append(self.path, line.getvalue().encode())
        self._tensorboard(row, int(row["env_step"]))

    def truncate_after(self, env_step: int) -> None:
        """Keep the header and the whole rows with env_step <= `env_step`; drop the rest (rows
        a killed run logged after its last checkpoint, and a partial last line)."""
        if not os.path.exists(self.path):
            return
        with open(self.path, "rb") as f:
            lines = f.read().split(b"\n")
        lines = [line + b"\n" for line in lines[:-1]]  # the piece after the last newline is torn
        if not lines:
            os.remove(self.path)
            return
        header = next(csv.reader([lines[0].decode()]))
        step_col = header.index("env_step")
        keep = [lines[0]]
        for line in lines[1:]:
            cells = next(csv.reader([line.decode(errors="replace")]), [])
            if len(cells) == len(header) and _number(cells[step_col]) <= env_step:
                keep.append(line)
        _replace(self.path, b"".join(keep))

    def _header(self) -> list[str] | None:
        if not os.path.exists(self.path):
            return None
        with open(self.path, newline="") as f:
            return next(csv.reader(f), None)

    def _rewrite(self, header: list[str], rows: list[dict[str, float]]) -> None:
        text = io.StringIO()
        writer = csv.DictWriter(text, header)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: _csv_value(v) for k, v in r.items() if k in header})
        _replace(self.path, text.getvalue().encode())  # a kill mid-rewrite keeps the old file

    def _tensorboard(self, row: dict[str, Any], step: int) -> None:
        if self.tensorboard is None:
            return
        for key, value in row.items():
            if isinstance(value, int | float) and math.isfinite(value):
                self.tensorboard.add_scalar(key, value, step)

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()


def _append(path: str, data: bytes) -> None:
    """One write call (O_APPEND): a process killed around it leaves the row whole or absent."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = os.write(fd, data)
    except OSError as exc:  # name the file: os.write's error does not
        raise OSError(exc.errno, exc.strerror, path) from None
    finally:
        os.close(fd)
    if written != len(data):  # a short write: the disk is full
        raise OSError(errno.ENOSPC, "No space left on device (short write)", path)


def _replace(path: str, data: bytes) -> None:
    """Write `path.tmp`, then rename it over `path`: readers see the old or the new file."""
    tmp = path + ".tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    os.replace(tmp, path)


def _number(cell: str) -> float:
    """A cell as a number; a garbled one as +inf, so `truncate_after` drops its row."""
    try:
        return float(cell)
    except ValueError:
        return math.inf


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
