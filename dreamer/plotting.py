"""Learning-curve plots from metrics.csv (matplotlib, headless)."""

from __future__ import annotations

import csv
import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_metrics(path: str | os.PathLike) -> list[dict[str, float]]:
    """metrics.csv -> list of rows of floats (empty cells become NaN)."""
    with open(path, newline="") as f:
        return [
            {k: float(v) if v not in ("", None) else math.nan for k, v in row.items()}
            for row in csv.DictReader(f)
        ]


def plot_learning_curve(
    rows: list[dict[str, float]], path: str | os.PathLike, title: str, threshold: float | None
) -> None:
    """Eval return (mean +- std) and training episode return against env steps."""
    fig, (ax, ax_loss) = plt.subplots(1, 2, figsize=(11, 4))
    train = [
        (r["env_step"], r["episode_return"]) for r in rows if not math.isnan(r["episode_return"])
    ]
    if train:
        ax.plot(*zip(*train, strict=True), color="0.7", lw=1, label="train episode return")
    evals = [r for r in rows if not math.isnan(r.get("eval_mean", math.nan))]
    if evals:
        steps = [r["env_step"] for r in evals]
        mean = [r["eval_mean"] for r in evals]
        std = [r["eval_std"] for r in evals]
        ax.plot(steps, mean, color="C0", marker="o", ms=3, label="eval mean (10 ep, mode)")
        lo = [m - s for m, s in zip(mean, std, strict=True)]
        hi = [m + s for m, s in zip(mean, std, strict=True)]
        ax.fill_between(steps, lo, hi, color="C0", alpha=0.2)
    if threshold is not None:
        ax.axhline(threshold, color="C3", ls="--", lw=1, label=f"threshold {threshold:g}")
    ax.set_xlabel("env steps")
    ax.set_ylabel("return")
    ax.set_title(title)
    ax.legend(loc="best", fontsize=8)
    for i, key in enumerate(["loss/dec", "loss/rew", "loss/con", "kl", "loss/critic"]):
        points = [(r["env_step"], r[key]) for r in rows if not math.isnan(r.get(key, math.nan))]
        if points:
            ax_loss.plot(*zip(*points, strict=True), color=f"C{i}", lw=1, label=key)
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("env steps")
    ax_loss.set_title("world-model and critic losses")
    if ax_loss.lines:  # a run stopped before its first finite loss has nothing to label
        ax_loss.legend(loc="best", fontsize=8)
    fig.tight_layout()
    tmp = os.fspath(path) + ".tmp.png"
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, path)
