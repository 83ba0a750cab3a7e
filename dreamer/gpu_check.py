"""The project's GPU check, one command on a CUDA machine: `python -m dreamer.gpu_check`.

Runs, each in its own process with its own time limit, most telling first:
  1. the CUDA tests (`pytest -m cuda`: placement, bf16 autocast, CUDA graphs, checkpoints),
  2. `dreamer.bench` on the GPU at the xs preset: eager, a replayed CUDA graph, and the graph
     with the RSSM's loop bodies compiled (`--compile steps`); then the last at the 12M size,
  3. CartPole (02_dreamer_cartpole.py) with the compiled graph, stopped once it holds the
     threshold,
  4. the bench at 12M eager and graphed, and xs in bf16.
Writes `gpu_check.json` (every step's command, status, seconds and result) after each step, so
a check cut short still leaves what it measured. Stops starting steps when --budget runs out.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GPU_START, GPU_END = "<!-- GPU:START -->", "<!-- GPU:END -->"


def device_info() -> dict:
    if not torch.cuda.is_available():
        raise SystemExit("error: no CUDA device: the GPU check needs one")
    props = torch.cuda.get_device_properties(0)
    return {
        "gpu": props.name,
        "gpu_memory_gib": round(props.total_memory / 2**30, 1),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cpu_cores": os.cpu_count(),
    }


def run_step(cmd: list[str], limit: float, log: str) -> tuple[str, float, str]:
    """Run `cmd` for at most `limit` s (SIGINT first: a training run then saves and reports)."""
    start = time.time()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, text=True)
        try:
            proc.wait(timeout=limit)
            status = "ok" if proc.returncode == 0 else f"exit {proc.returncode}"
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            status = "time limit"
    with open(log) as f:
        text = f.read()
    return status, round(time.time() - start, 1), text


def last_json_line(text: str) -> dict | None:
    for line in reversed(text.splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                return None
    return None


def cartpole_summary(logdir: str, threshold: float = 475.0) -> dict:
    """First evaluation at or above the threshold: env step, updates and wall time."""
    path = os.path.join(logdir, "metrics.csv")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        evals = [r for r in csv.DictReader(f) if r.get("eval_mean")]
    summary = {"evals": [(int(r["env_step"]), float(r["eval_mean"])) for r in evals]}
    for r in evals:
        if float(r["eval_mean"]) >= threshold:
            summary.update(
                threshold_env_step=int(r["env_step"]),
                threshold_updates=int(r["updates"]),
                threshold_wall_s=round(float(r["wall_time"]), 1),
            )
            break
    if evals:
        summary["last_wall_s"] = round(float(evals[-1]["wall_time"]), 1)
    return summary


def cartpole_logdir(out: str) -> str:
    return os.path.join(out, "cartpole_run")


def steps(out: str, cartpole_steps: int) -> list[tuple[str, list[str], float]]:
    py = sys.executable
    bench = [py, "-m", "dreamer.bench", "--device", "cuda", "--updates", "20", "--warmup", "3"]
    cartpole = [py, "02_dreamer_cartpole.py", "--device", "cuda", "--cuda-graph", "--threads",
                "1", "--no-progress", "--steps", str(cartpole_steps),
                "--logdir", cartpole_logdir(out)]  # fmt: skip
    graph, compiled = ["--cuda-graph"], ["--compile", "steps"]
    return [
        ("cuda_tests", [py, "-m", "pytest", "-q", "-m", "cuda", "tests/test_cuda.py"], 120),
        ("bench_xs_eager", [*bench, "--preset", "xs"], 90),
        ("bench_xs_graph", [*bench, "--preset", "xs", *graph], 90),
        ("bench_xs_compile_graph", [*bench, "--preset", "xs", *graph, *compiled], 180),
        ("bench_12m_compile_graph", [*bench, "--preset", "12m", *graph, *compiled], 180),
        ("cartpole_graph", [*cartpole, *compiled], 200),
        ("bench_12m_eager", [*bench, "--preset", "12m"], 90),
        ("bench_12m_graph", [*bench, "--preset", "12m", *graph], 90),
        ("bench_xs_bf16_graph", [*bench, "--preset", "xs", *graph, "--precision", "bf16"], 90),
    ]


def table(path: str) -> str:
    """A saved gpu_check.json -> the README's GPU rows (markdown)."""
    with open(path) as f:
        report = json.load(f)
    d, rows = report["device"], []
    results = [step["result"] for step in report["steps"].values() if step.get("result")]
    # xs before 12m, fp32 before bf16, then eager, graph, graph + compile
    order = {"xs": 0, "12m": 1}
    results.sort(key=lambda r: (order.get(r["preset"], 2), r["precision"] != "fp32",
                                bool(r["cuda_graph"]), bool(r["compile"])))  # fmt: skip
    for r in results:
        mode = "CUDA graph" if r["cuda_graph"] else "eager"
        mode += f" + compile ({r['compile']})" if r["compile"] else ""
        rows.append(
            f"| {r['preset']} | {r['precision']} | {mode} | {r['params'] / 1e6:.1f}M "
            f"| {r['median_ms']:.1f} | {r['gflop_per_update']} | {r['achieved_gflop_s']:.0f} |"
        )
    cartpole = report["steps"].get("cartpole_graph", {})
    tail = ""
    if "threshold_env_step" in cartpole:
        flags = " ".join(f for f in ("--cuda-graph", "--compile") if f in cartpole["command"])
        tail = (
            f"\n\nCartPole (02_dreamer_cartpole.py {flags}, seed 0): eval "
            f">= 475 at {cartpole['threshold_env_step']:,} env steps "
            f"({cartpole['threshold_updates']:,} updates) after "
            f"{cartpole['threshold_wall_s']:.0f} s of wall time."
        )
    return (
        f"`python -m dreamer.gpu_check` on one {d['gpu']}, torch {d['torch']} (CUDA {d['cuda']}), "
        "median ms of 20 updates after warm-up.\n\n"
        "| preset | precision | mode | params | ms/update | GFLOP/update | GFLOP/s |\n"
        "|---|---|---|---|---|---|---|\n" + "\n".join(rows) + tail
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.path.join(ROOT, "results", "gpu"))
    p.add_argument("--keep-run", action="store_true", help="keep the CartPole run directory")
    p.add_argument("--budget", type=float, default=480.0, help="seconds for all steps")
    p.add_argument("--cartpole-steps", type=int, default=12_000)
    p.add_argument("--only", nargs="*", help="run only these steps")
    p.add_argument("--table", metavar="JSON", help="a saved report -> the README's GPU rows")
    args = p.parse_args(argv)
    if args.table:
        from .results import update_readme

        text = table(args.table)
        print(text)
        for doc in ("README.md", os.path.join("docs", "scale.md")):
            update_readme(os.path.join(ROOT, doc), text, GPU_START, GPU_END)
        return 0
    os.makedirs(args.out, exist_ok=True)
    deadline = time.time() + args.budget
    report = {"device": device_info(), "command": " ".join(sys.argv), "steps": {}}
    path = os.path.join(args.out, "gpu_check.json")
    for name, cmd, limit in steps(args.out, args.cartpole_steps):
        if args.only and name not in args.only:
            continue
        left = deadline - time.time()
        if left < 30:
            report["steps"][name] = {"status": "not run: budget spent"}
            continue
        status, seconds, text = run_step(cmd, min(limit, left), os.path.join(args.out, "log.txt"))
        entry = {"command": " ".join(cmd[1:]), "status": status, "seconds": seconds}
        if name == "cartpole_graph":
            entry.update(cartpole_summary(cartpole_logdir(args.out)))
            csv_path = os.path.join(cartpole_logdir(args.out), "metrics.csv")
            if os.path.exists(csv_path):
                shutil.copy(csv_path, os.path.join(args.out, "cartpole_metrics.csv"))
        elif name.startswith("bench"):
            entry["result"] = last_json_line(text)
        if status != "ok" or name == "cuda_tests":
            entry["output_tail"] = text[-3000:]
        report["steps"][name] = entry
        print(name, status, seconds, json.dumps(entry.get("result") or "")[:300], flush=True)
        with open(path, "w") as f:
            json.dump(report, f, indent=1)
    if not args.keep_run:  # checkpoints are megabytes; the summary and metrics.csv stay
        shutil.rmtree(cartpole_logdir(args.out), ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
