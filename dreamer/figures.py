"""The walkthrough's figures, each from the library's own functions: `python -m dreamer.figures`.

    python -m dreamer.figures                      # all maths figures into docs/figures/
    python -m dreamer.figures --metrics results/CartPole-v1/fixed/metrics-seed0.csv
                                                   # + a run's return scale, entropy, value
    python -m dreamer.figures --compare results/CartPole-v1 results/Pendulum-v1
                                                   # + before/after learning curves

The worked lambda-return example here (`WORKED_EXAMPLE`) is the one the walkthrough prints and
tests/test_walkthrough.py pins.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from .actor_critic import imagination_weights  # noqa: E402
from .plotting import read_metrics  # noqa: E402
from .utils import TwohotEncoder, lambda_returns, symexp, symlog, unimix_logits  # noqa: E402

# A 4-step dream: rewards r_1..r_4, continues c_1..c_4 (the episode ends at step 3), values
# v_0..v_4. gamma and lambda as in the paper.
WORKED_EXAMPLE = {
    "rewards": [1.0, 1.0, 1.0, 0.0],
    "continues": [1.0, 1.0, 0.0, 0.0],
    "values": [2.5, 2.0, 1.5, 0.8, 0.3],
    "gamma": 0.997,
    "lam": 0.95,
}


def worked_example_returns() -> list[float]:
    """R_0..R_3 of WORKED_EXAMPLE by `utils.lambda_returns`."""
    ex = WORKED_EXAMPLE
    returns = lambda_returns(
        torch.tensor(ex["rewards"]),
        torch.tensor(ex["values"]),
        torch.tensor(ex["continues"]),
        ex["gamma"],
        ex["lam"],
    )
    return returns.tolist()


def _save(fig: plt.Figure, out: str, name: str) -> str:
    path = os.path.join(out, name)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def fig_symlog(out: str) -> str:
    x = torch.linspace(-20, 20, 401)
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
    a.plot(x, symlog(x), label="symlog(x)")
    a.plot(x, x.clamp(-4, 4), "0.6", ls=":", label="x (clipped for scale)")
    a.set_xlabel("x")
    a.set_title("symlog(x) = sign(x) ln(|x| + 1)")
    a.legend(fontsize=8)
    y = torch.linspace(-7, 7, 281)
    b.plot(y, symexp(y))
    b.set_yscale("symlog")
    b.set_xlabel("y (symlog space)")
    b.set_title("symexp(y): the inverse, raw units")
    return _save(fig, out, "symlog.png")


def fig_twohot(out: str) -> str:
    twohot = TwohotEncoder(255)
    bins = twohot.bins
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.6))
    a.plot(range(255), bins, ".", ms=2, label="bin in symlog space (uniform)")
    a.plot(range(255), symexp(bins), "C1.", ms=2, label="its raw value (to +-5e8)")
    a.set_yscale("symlog")
    a.set_xlabel("bin index")
    a.set_title("255 bins: linspace(-20, 20) in symlog space")
    a.legend(fontsize=8)
    for value, color in ((3.7, "C0"), (260.0, "C2"), (-12.0, "C3")):
        weights = twohot.encode(torch.tensor([value]))[0]
        idx = weights.nonzero().flatten()
        b.bar(symexp(bins[idx]), weights[idx], width=0.0, edgecolor=color, linewidth=6,
              label=f"target {value:g}")  # fmt: skip
    b.set_xscale("symlog")
    b.set_xlabel("bin's raw value")
    b.set_ylabel("twohot weight")
    b.set_title("twohot targets: weights on two neighbouring bins")
    b.legend(fontsize=8)
    return _save(fig, out, "twohot.png")


def fig_unimix(out: str) -> str:
    logits = torch.tensor([6.0, 1.0, 0.0, -2.0, -8.0, -8.0, -8.0, -8.0])
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for u, color in ((0.0, "C0"), (0.01, "C1")):
        probs = unimix_logits(logits, u).exp()
        ax.bar(torch.arange(8) + (0.2 if u else -0.2), probs, width=0.4, color=color,
               label=f"unimix {u:g}")  # fmt: skip
    ax.set_yscale("log")
    ax.set_xlabel("class")
    ax.set_ylabel("probability")
    ax.set_title("1% uniform mix: no class below 0.01 / K")
    ax.legend(fontsize=8)
    return _save(fig, out, "unimix.png")


def fig_lambda_returns(out: str) -> str:
    ex = WORKED_EXAMPLE
    returns = worked_example_returns()
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    t = range(5)
    ax.plot(t, ex["values"], "C0-o", label="critic v_t")
    ax.plot(range(1, 5), ex["rewards"], "C2s", label="reward r_t")
    ax.plot(range(1, 5), ex["continues"], "C3x", ms=9, label="continue c_t")
    ax.plot(range(4), returns, "C1-o", label="lambda-return R_t")
    for i, r in enumerate(returns):
        ax.annotate(f"{r:.3f}", (i, r), textcoords="offset points", xytext=(4, 6), fontsize=8)
    ax.set_xlabel("dream step t")
    ax.set_title("R_t = r_{t+1} + gamma c_{t+1} ((1 - lambda) v_{t+1} + lambda R_{t+1})")
    ax.legend(fontsize=8)
    return _save(fig, out, "lambda_returns.png")


def fig_weights(out: str) -> str:
    gamma = 0.997
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    for horizon, style in ((15, "-"), (30, "--")):
        ones = torch.ones(horizon, 1)
        with_gamma = imagination_weights(torch.ones(1), ones, gamma)[:, 0]
        ax.plot(with_gamma, f"C0{style}", label=f"gamma^t, H={horizon}")
        ax.plot(torch.ones(horizon), f"C3{style}", alpha=0.6, label=f"without gamma^t, H={horizon}")
    cont = torch.ones(30, 1)
    cont[11:] = 0.1  # the continue head expects an episode end after step 11
    ended = imagination_weights(torch.ones(1), cont, gamma)[:, 0]
    ax.plot(ended, "C2-", label="predicted end after step 11")
    ax.set_xlabel("dream step t")
    ax.set_ylabel("weight w_t")
    ax.set_title("w_t = c_0 prod_{i<=t} gamma c_i: a dream step's share of the losses")
    ax.legend(fontsize=7)
    return _save(fig, out, "weights.png")


def fig_run_signals(metrics_path: str, out: str) -> str:
    rows = read_metrics(metrics_path)
    keys = [("actor/return_scale", "return scale S"), ("actor/entropy", "policy entropy (nats)"),
            ("actor/value", "mean imagined value"), ("eval_mean", "eval return")]  # fmt: skip
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.2))
    for ax, (key, label) in zip(axes, keys, strict=True):
        pts = [(r["env_step"], r[key]) for r in rows if key in r and not math.isnan(r[key])]
        if pts:
            ax.plot(*zip(*pts, strict=True), "-", lw=1.2)
        ax.set_title(label)
        ax.set_xlabel("env steps")
    fig.suptitle(os.path.relpath(metrics_path))
    return _save(fig, out, "run_signals.png")


def _seed_curves(summary_path: str) -> tuple[str, list[tuple[int, list]]]:
    with open(summary_path) as f:
        summary = json.load(f)
    return summary["env_id"], [(s["seed"], s.get("curve", [])) for s in summary["seeds"]]


def fig_compare(env_dirs: list[str], variant: str, out: str) -> str:
    """Eval curves of results/<env>/summary.json (before) and results/<env>/<variant>/ (after)."""
    fig, axes = plt.subplots(1, len(env_dirs), figsize=(6 * len(env_dirs), 3.6), squeeze=False)
    for ax, env_dir in zip(axes[0], env_dirs, strict=True):
        for path, color, label in (
            (os.path.join(env_dir, "summary.json"), "C3", "before"),
            (os.path.join(env_dir, variant, "summary.json"), "C0", "after"),
        ):
            if not os.path.exists(path):
                continue
            env_id, seeds = _seed_curves(path)
            names = f"{label} (seeds {[s for s, _ in seeds]})"
            for i, (_, curve) in enumerate(seeds):
                if curve:
                    steps, values = zip(*curve, strict=True)
                    ax.plot(steps, values, color=color, alpha=0.8, lw=1.2,
                            label=names if i == 0 else None)  # fmt: skip
            ax.set_title(env_id)
        ax.set_xlabel("env steps")
        ax.set_ylabel("eval return")
        ax.legend(fontsize=8)
    return _save(fig, out, f"compare_{variant}.png")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.path.join("docs", "figures"))
    p.add_argument("--metrics", help="a run's metrics.csv: plot its return scale and entropy")
    p.add_argument("--compare", nargs="*", default=[], help="results/<env> folders")
    p.add_argument("--variant", default="fixed", help="results/<env>/<variant>/ is 'after'")
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    made = [fig_symlog(args.out), fig_twohot(args.out), fig_unimix(args.out),
            fig_lambda_returns(args.out), fig_weights(args.out)]  # fmt: skip
    if args.metrics:
        made.append(fig_run_signals(args.metrics, args.out))
    if args.compare:
        made.append(fig_compare(args.compare, args.variant, args.out))
    print("\n".join(made))
    return 0


if __name__ == "__main__":
    sys.exit(main())
