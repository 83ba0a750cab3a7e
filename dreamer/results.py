"""Summarise finished runs into results/ and the README table: `python -m dreamer.results`.

For each env with runs under runs/<env>/default-seed<k>/ (a script's default flags; result.json
+ metrics.csv): results/<env>/summary.json (per seed: env steps at which eval first reached the
threshold, eval mean at the end, wall time, updates, command, git commit) and
results/<env>/curves.png (eval curves of all seeds, threshold drawn). The README table between
the RESULTS markers is rewritten from those summaries; nothing in it is typed by hand.

Runs of another name (`--name bf16`: runs/<env>/bf16-seed<k>/, a variant such as bf16 training)
go to results/<env>/<name>/ and to the README table between the RESULTS:<name> markers.

runs/ is not committed, so a summary keeps the seeds it already holds that runs/ lacks (runs
made in an earlier checkout): each seed entry stores its own eval curve and command, and a seed
re-run here replaces its old entry.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import math
import os
import re
import sys
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .config import ConfigError, DreamerConfig, config_from_dict, config_to_dict  # noqa: E402
from .plotting import read_metrics  # noqa: E402

START, END = "<!-- RESULTS:START -->", "<!-- RESULTS:END -->"


def markers(name: str) -> tuple[str, str]:
    """The README markers of a run name's table: RESULTS for 'default', RESULTS:<name> else."""
    if name == "default":
        return START, END
    return f"<!-- RESULTS:{name}:START -->", f"<!-- RESULTS:{name}:END -->"


def summary_dir(results: str, env: str, name: str) -> str:
    """results/<env>/ for the default runs, results/<env>/<name>/ for a named variant."""
    return os.path.join(results, env) if name == "default" else os.path.join(results, env, name)


def summarise_env(env_dir: str, name: str, out_dir: str, partial: bool = False) -> dict | None:
    runs = sorted(glob.glob(os.path.join(env_dir, f"{name}-seed*", "result.json")))
    if not runs:
        return None
    seeds = []
    for path in runs:
        with open(path) as f:
            result = json.load(f)
        if result.get("interrupted") and not partial:
            print(f"skipping {path}: the run was interrupted before its budget (see --partial)")
            continue
        rows = read_metrics(os.path.join(os.path.dirname(path), "metrics.csv"))
        started = os.path.join(os.path.dirname(path), "config.json")
        if os.path.exists(started):  # the commit the run started from: older result.json
            with open(started) as f:  # files hold HEAD at the end, which may be later
                result["git_commit"] = json.load(f).get("git_commit", result["git_commit"])
        evals = [(r["env_step"], r["eval_mean"]) for r in rows if not math.isnan(r["eval_mean"])]
        threshold = result["config"]["train"]["threshold"]
        solved = [r for r in rows if threshold is not None and r["eval_mean"] >= threshold]
        seeds.append(
            {
                "seed": result["seed"],
                "steps_to_threshold": result["steps_to_threshold"],
                "final_eval": result["final_eval"],
                "best_eval": result["best_eval"],
                "env_steps": result["env_steps"],
                "budget": result["config"]["train"]["steps"],
                "updates": result["updates"],
                "wall_time_s": result["wall_time"],
                "wall_time_to_threshold_s": solved[0]["wall_time"] if solved else None,
                "command": result["command"],
                "git_commit": result["git_commit"],
                "threads": result["threads"],
                "torch": result["torch"],
                "curve": [[int(step), value] for step, value in evals],
                "config_sha": config_sha(result["config"]),
                "recipe": recipe_sha(result["config"]),
            }
        )
    if not seeds:
        return None
    env_id = result["env_id"]
    threshold = result["config"]["train"]["threshold"]
    seeds = _with_earlier_seeds(os.path.join(out_dir, "summary.json"), env_id, name, seeds)
    summary = {"env_id": env_id, "threshold": threshold, "run_name": name, "seeds": seeds}
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    fig, ax = plt.subplots(figsize=(6, 4))
    for entry in seeds:
        if entry.get("curve"):
            label = f"seed {entry['seed']}"
            ax.plot(*zip(*entry["curve"], strict=True), marker="o", ms=3, label=label)
    if threshold is not None:
        ax.axhline(threshold, color="C3", ls="--", lw=1, label=f"threshold {threshold:g}")
    missing = [str(entry["seed"]) for entry in seeds if not entry.get("curve")]
    if missing:  # summarised before curves were stored; their PNG is in the git history
        note = f"seed {', '.join(missing)}: curve not stored (see git history)"
        ax.annotate(note, (0.99, 0.01), xycoords="figure fraction", ha="right", fontsize=7)
    ax.set_xlabel("env steps")
    ax.set_ylabel("eval return (10 episodes)")
    ax.set_title(f"DreamerV3 on {env_id}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "curves.png"), dpi=90)
    plt.close(fig)
    return summary


def config_sha(config: dict) -> str:
    """A short fingerprint of a run's config (its budget aside): seeds summarised together
    share it. Only fields that differ from the defaults count, so a field added later (at its
    default) changes none; fingerprints recorded before this form differ for every run."""
    settings = _non_defaults(config, skip={"train.steps"})  # a longer budget is fine
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


# A task's own settings, not the learning recipe's: its budget, its threshold, how often and
# how long it evaluates, logs and checkpoints. Everything else is the recipe.
TASK_KEYS = ("steps", "threshold", "eval_every", "eval_episodes", "log_every", "checkpoint_every")


def recipe_sha(config: dict) -> str:
    """A short fingerprint of the learning recipe: the fields that differ from DreamerConfig's
    defaults, less the train section's TASK_KEYS. Rows of the results table that show one
    fingerprint learned by the same recipe; a field added later (at its default) changes none."""
    recipe = _non_defaults(config, skip={f"train.{key}" for key in TASK_KEYS})
    recipe = {key: _plain(value) for key, value in recipe.items()}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:8]


def _non_defaults(config: dict, skip: set[str]) -> dict:
    """{dotted key: value} of the fields that differ from DreamerConfig's defaults, less `skip`."""
    try:  # fields the run did not know take their defaults
        config = config_to_dict(config_from_dict(DreamerConfig, config))
    except ConfigError:
        pass  # not a full config (a hand-made summary): take it as it is
    defaults = _flat(config_to_dict(DreamerConfig()))
    return {k: v for k, v in _flat(config).items() if k not in skip and defaults.get(k) != v}


def _plain(value: Any) -> Any:
    """128.0 -> 128: a float field set from a flag (`--train-ratio 128`) or in code (`= 128`)
    is one setting, so it takes one fingerprint."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _flat(tree: dict, prefix: str = "") -> dict:
    """{'a': {'b': 1}} -> {'a.b': 1}."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def _with_earlier_seeds(path: str, env_id: str, name: str, seeds: list[dict]) -> list[dict]:
    """`seeds` plus the entries of an existing summary for seeds that runs/ does not hold."""
    if not os.path.exists(path):
        return seeds
    with open(path) as f:
        earlier = json.load(f)
    if earlier.get("env_id") != env_id or earlier.get("run_name") != name:
        return seeds
    have = {entry["seed"] for entry in seeds}
    shas = {entry["config_sha"] for entry in seeds}
    recipes = {entry["recipe"] for entry in seeds}
    kept = []
    for entry in earlier["seeds"]:
        if entry["seed"] in have:
            continue
        sha = entry.get("config_sha")
        if sha is not None and sha not in shas and entry.get("recipe") not in recipes:
            print(f"{env_id}: dropping seed {entry['seed']} from {path}: another config")
            continue
        note = ""
        if sha is None:
            note = ", config not recorded"
        elif sha not in shas:  # task settings differ, or an older config_sha recorded it
            note = ", same recipe, another config fingerprint"
        print(f"{env_id}: keeping seed {entry['seed']} from {path} (not in runs/{note})")
        kept.append(entry)
    return sorted(seeds + kept, key=lambda entry: entry["seed"])


def table(summaries: list[dict]) -> str:
    lines = [
        "| env | threshold | budget (env steps) | seeds | env steps to threshold (per seed) "
        "| final eval (per seed) | wall time to threshold (min) | wall time per seed (min) "
        "| recipe |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        steps = ", ".join("-" if x["steps_to_threshold"] is None else f"{x['steps_to_threshold']:,}"
                          for x in s["seeds"])  # fmt: skip
        finals = ", ".join(_final(x) for x in s["seeds"])
        walls = ", ".join(f"{x['wall_time_s'] / 60:.0f}" for x in s["seeds"])
        to_solve = ", ".join(_wall_to_threshold(x) for x in s["seeds"])
        recipes = ", ".join(dict.fromkeys(x.get("recipe", "?") for x in s["seeds"]))
        budgets = ", ".join(dict.fromkeys(f"{_budget(x):,}" for x in s["seeds"]))  # each once
        lines.append(
            f"| {s['env_id']} | {s['threshold']:g} | {budgets} "
            f"| {len(s['seeds'])} | {steps} | {finals} | {to_solve} | {walls} | {recipes} |"
        )
    if any(x["env_steps"] < _budget(x) for s in summaries for x in s["seeds"]):
        lines.append("\n(stopped at N) = the run was stopped before its budget, at N env steps.")
    if any("recipe" not in x for s in summaries for x in s["seeds"]):
        lines.append("\nrecipe ? = not recorded (summarised before it was).")
    if any(_wall_to_threshold(x) == "?" for s in summaries for x in s["seeds"]):
        lines.append("\n? = reached, but the time was not recorded (summarised before it was).")
    return "\n".join(lines)


def _budget(entry: dict) -> int:
    """The run's env-step budget (older summaries only stored the steps it ran)."""
    return entry.get("budget", entry["env_steps"])


def _final(entry: dict) -> str:
    """The last eval, and where the run stopped if that was before its budget."""
    final = "-" if entry["final_eval"] is None else f"{entry['final_eval']:.0f}"
    if entry["env_steps"] < _budget(entry):
        final += f" (stopped at {entry['env_steps']:,})"
    return final


def _wall_to_threshold(entry: dict) -> str:
    """Minutes to the threshold; '-' if never reached, '?' if reached but not recorded."""
    if entry["steps_to_threshold"] is None:
        return "-"
    if entry.get("wall_time_to_threshold_s") is None:
        return "?"
    return f"{entry['wall_time_to_threshold_s'] / 60:.1f}"


def update_readme(readme: str, text: str, start: str = START, end: str = END) -> None:
    """Replace what stands between the `start` and `end` markers of `readme` by `text`."""
    with open(readme) as f:
        content = f.read()
    if start not in content or end not in content:
        raise ValueError(f"{readme} has no {start} ... {end} markers")
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    content = pattern.sub(lambda _: f"{start}\n{text}\n{end}", content)
    with open(readme, "w") as f:
        f.write(content)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Summarise runs/ into results/ and the README.")
    p.add_argument("--runs", default="runs")
    p.add_argument("--results", default="results")
    p.add_argument("--name", default="default", help="run name: runs/<env>/<name>-seed<k>")
    p.add_argument("--readme", default="README.md")
    p.add_argument(
        "--partial", action="store_true", help="include runs stopped before their budget"
    )
    args = p.parse_args(argv)
    start, end = markers(args.name)
    if not _has_markers(args.readme, start, end):  # before any summary is written
        print(
            f"error: {args.readme} has no {start} ... {end} markers: add both lines where the "
            "table goes, or name another file with --readme",
            file=sys.stderr,
        )
        return 2
    summaries = []
    for env_dir in sorted(glob.glob(os.path.join(args.runs, "*"))):
        env = os.path.basename(env_dir)
        out_dir = summary_dir(args.results, env, args.name)
        summary = summarise_env(env_dir, args.name, out_dir, args.partial)
        if summary:
            summaries.append(summary)
            print(f"{env}: {len(summary['seeds'])} seed(s) -> {out_dir}/")
    if not summaries:
        print(f"error: no finished runs named '{args.name}' under {args.runs}/", file=sys.stderr)
        return 2
    # envs with no runs here keep their committed summaries in the table
    done = {summary["env_id"] for summary in summaries}
    pattern = os.path.join(summary_dir(args.results, "*", args.name), "summary.json")
    for path in sorted(glob.glob(pattern)):
        with open(path) as f:
            summary = json.load(f)
        if summary["env_id"] not in done and summary.get("run_name") == args.name:
            summaries.append(summary)
    summaries.sort(key=lambda summary: summary["env_id"])
    update_readme(args.readme, table(summaries), start, end)
    return 0


def _has_markers(readme: str, start: str, end: str) -> bool:
    if not os.path.isfile(readme):
        return False
    with open(readme) as f:
        content = f.read()
    return start in content and end in content


if __name__ == "__main__":
    sys.exit(main())
