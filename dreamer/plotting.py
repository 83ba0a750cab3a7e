"""Learning-curve plots from metrics.csv, and the open-loop video of an image world model
(`analysis.open_loop_images`) as a strip and a GIF (matplotlib and PIL, headless)."""

from __future__ import annotations

import csv
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402


def read_metrics(path: str | os.PathLike) -> list[dict[str, float]]:
    """metrics.csv -> list of rows of floats (empty cells become NaN)."""
    with open(path, newline="") as f:
        return [
            {k: float(v) if v not in ("", None) else math.nan for k, v in row.items()}
            for row in csv.DictReader(f)
        ]


def plot_learning_curve(
    rows: list[dict[str, float]],
    path: str | os.PathLike,
    title: str,
    threshold: float | None,
    eval_policy: str = "sample",
) -> None:
    """Eval return (mean +- std) and training episode return against env steps; `eval_policy`
    names how the eval episodes acted (`train.eval_policy`: the policy sampled or its mode)."""
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
        label = f"eval mean (10 ep, {eval_policy})"
        ax.plot(steps, mean, color="C0", marker="o", ms=3, label=label)
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


def displayable(frames: np.ndarray) -> np.ndarray:
    """uint8 (T, H, W, C) -> (T, H, W) gray for one channel, (T, H, W, 3) for RGB; other channel
    counts (several image keys stacked) are shown as their mean, gray."""
    if frames.shape[-1] == 3:
        return frames
    if frames.shape[-1] == 1:
        return frames[..., 0]
    return frames.mean(-1).round().astype(np.uint8)


def plot_video_strip(video: dict, path: str, title: str, columns: int = 10) -> None:
    """Rows true | dreamed | |error|, one column every k-th dreamed step (k so that at most
    `columns` columns)."""
    context = video["context"]
    horizon = len(video["true"]) - context
    every = max(1, -(-horizon // columns))  # ceil
    steps = np.arange(every - 1, horizon, every)  # dreamed steps 1..horizon, 0-based
    rows = [("true", video["true"]), ("dreamed", video["dreamed"]), ("|error|", video["error"])]
    fig, axes = plt.subplots(3, len(steps), figsize=(1.3 * len(steps) + 0.6, 4.2), squeeze=False)
    for r, (name, frames) in enumerate(rows):
        shown = displayable(frames[context + steps])
        for c, step in enumerate(steps):
            ax = axes[r, c]
            ax.imshow(shown[c], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"t+{step + 1}", fontsize=8)
            if c == 0:
                ax.set_ylabel(name, fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def write_video_gif(video: dict, path: str, fps: int = 10, side: int = 128) -> None:
    """true | dreamed | |error| side by side, one GIF frame per step, a label on top: the
    context frames (reconstructions) first, then the open-loop dream."""
    context = video["context"]
    panels = [displayable(video[k]) for k in ("true", "dreamed", "error")]
    scale = max(1, side // panels[0].shape[1])
    gap, header = 4, 16
    height, width = panels[0].shape[1] * scale, panels[0].shape[2] * scale
    images = []
    for t in range(len(panels[0])):
        canvas = Image.new("RGB", (3 * width + 2 * gap, height + header), "white")
        draw = ImageDraw.Draw(canvas)
        for i, (frames, name) in enumerate(
            zip(panels, ("true", "dreamed", "|error|"), strict=True)
        ):
            frame = Image.fromarray(frames[t]).convert("RGB")
            frame = frame.resize((width, height), Image.NEAREST)
            x = i * (width + gap)
            canvas.paste(frame, (x, header))
            step = f"context {t + 1}" if t < context else f"t+{t - context + 1}"
            label = f"{name}, {step}" if i == 0 else name
            draw.text((x + 2, 2), label, fill="black")
        images.append(canvas)
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)


def main(argv: list[str] | None = None) -> int:
    """`python -m dreamer.plotting METRICS.csv OUT.png`: a run's learning curve from its
    metrics.csv alone (for runs whose logdir stayed on another machine)."""
    import argparse

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("metrics", help="a run's metrics.csv")
    p.add_argument("out", help="the PNG to write")
    p.add_argument("--title", default="")
    p.add_argument("--threshold", type=float, default=None)
    p.add_argument("--eval-policy", choices=["sample", "mode"], default="sample")
    args = p.parse_args(argv)
    if not os.path.isfile(args.metrics):
        print(f"error: no metrics file at {args.metrics}", file=sys.stderr)
        return 2
    plot_learning_curve(
        read_metrics(args.metrics), args.out, args.title, args.threshold, args.eval_policy
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
