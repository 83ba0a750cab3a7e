"""Run the numbered scripts in order: a few-minute tour (--quick) or the full benchmark.

    python train_all.py --quick             # every script's one-minute path, in order
    python train_all.py --seeds 0 1 2       # the full runs behind results/, then the summary

Order: 01 (world model only), 02, 03, 05, 06 (agents), 04 (visualises the trained agents).
Full runs write runs/<env>/default-seed<k>/; `python -m dreamer.results` then rewrites
results/ and the README's results table from them.
"""

import argparse
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


def run(cmd: list[str]) -> None:
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="one-minute path of every script")
    p.add_argument("--seeds", type=int, nargs="*", default=[0], help="seeds of the full runs")
    p.add_argument("--only", nargs="*", help="script prefixes to run, e.g. 02 03")
    p.add_argument("--device", default="auto")
    args = p.parse_args()
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
                for seed in args.seeds:
                    run([sys.executable, path, "--seed", str(seed), "--device", args.device])
            else:
                run([sys.executable, path])
        if not args.quick:
            run([sys.executable, "-m", "dreamer.results"])
    except subprocess.CalledProcessError as exc:
        print(f"error: {' '.join(exc.cmd)} failed with status {exc.returncode}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
