"""Run the numbered scripts in order: a few-minute tour (--quick) or the full benchmark.

    python train_all.py --quick             # every script's one-minute path, in order
    python train_all.py --seeds 0 1 2       # the full runs behind results/, then the summary

Resumable: a seed whose run finished its budget is skipped, an interrupted one (Ctrl-C, a kill,
a reboot) continues from its latest.pt with --resume, so the same command picks up where it
stopped.

Order: 01 (world model only), 02, 03, 05, 06 (agents), 04 (visualises the trained agents).
Full runs write runs/<env>/preset-seed<k>/; `python -m dreamer.results --name preset` then
rewrites results/<env>/preset/ and the README's table of the current preset from them.
"""

import argparse
import json
import os
import subprocess
import sys

SCRIPTS = [
    "01_world_model_demo.py",
    "02_dreamer_cartpole.py",
    "03_dreamer_pendulum.py",
    "05_dreamer_acrobot.py",
    "06_dreamer_lunar_lander.py",
    "04_visualize.py",
]
AGENT_SCRIPTS = SCRIPTS[1:5]
RUN_NAME = "preset"  # the README's table of the current preset: results/<env>/preset/
ENV_IDS = {  # where each agent script's runs go: runs/<env>/<RUN_NAME>-seed<k>
    "02_dreamer_cartpole.py": "CartPole-v1",
    "03_dreamer_pendulum.py": "Pendulum-v1",
    "05_dreamer_acrobot.py": "Acrobot-v1",
    "06_dreamer_lunar_lander.py": "LunarLander-v3",
}


def run(cmd: list[str]) -> None:
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def seed_state(logdir: str) -> str:
    """'done' (the run reached its budget), 'resume' (it has a checkpoint) or 'new'."""
    try:
        with open(os.path.join(logdir, "result.json")) as f:
            result = json.load(f)
        if (
            not result.get("interrupted")
            and result["env_steps"] >= result["config"]["train"]["steps"]
        ):
            return "done"
    except (OSError, ValueError, KeyError):
        pass  # no result yet, or a damaged one: the checkpoint decides
    return "resume" if os.path.exists(os.path.join(logdir, "latest.pt")) else "new"


def seed_command(path: str, seed: int, logdir: str, extra: list[str]) -> list[str] | None:
    """The command that finishes `seed` of script `path`, or None when it is done."""
    state = seed_state(logdir)
    if state == "done":
        print(f"skip: {logdir} finished its budget", flush=True)
        return None
    cmd = [sys.executable, path, "--seed", str(seed), "--logdir", logdir, *extra]
    return cmd + ["--resume"] if state == "resume" else cmd


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="one-minute path of every script")
    p.add_argument("--seeds", type=int, nargs="*", default=[0], help="seeds of the full runs")
    p.add_argument("--only", nargs="*", help="script prefixes to run, e.g. 02 03")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", default=None, help="passed to every run (default: auto)")
    p.add_argument("--runs", default="runs", help="where the runs go (runs/<env>/preset-seed<k>)")
    args = p.parse_args(argv)
    here = os.path.dirname(os.path.abspath(__file__))
    scripts = [s for s in SCRIPTS if os.path.exists(os.path.join(here, s))]
    if args.only:
        scripts = [s for s in scripts if s.split("_")[0] in args.only]
    try:
        for script in scripts:
            path = os.path.join(here, script)
            if args.quick:
                run([sys.executable, path, "--quick"])
            elif script in AGENT_SCRIPTS:
                extra = ["--device", args.device, "--no-progress"]
                extra += ["--threads", args.threads] if args.threads else []
                for seed in args.seeds:
                    logdir = os.path.join(args.runs, ENV_IDS[script], f"{RUN_NAME}-seed{seed}")
                    cmd = seed_command(path, seed, logdir, extra)
                    if cmd is not None:
                        run(cmd)
            else:
                run([sys.executable, path])
        if not args.quick:
            run([sys.executable, "-m", "dreamer.results", "--runs", args.runs, "--name", RUN_NAME])
    except subprocess.CalledProcessError as exc:
        print(f"error: {' '.join(exc.cmd)} failed with status {exc.returncode}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
