"""Slow: the CartPole script really learns (run with `python -m pytest -m slow`, ~4 min).

Learning is shown by the benchmark runs in results/; this is the small guard a developer can
run after touching the maths. 3,000 env steps of the script's own config (750 updates, one
thread): in the seed 0-2 benchmark runs (`python 02_dreamer_cartpole.py --seed K --threads 1`)
the eval return at 3,000 steps was 385, 257 and 233, and 11-26 after the random prefill. The bar
of 150 leaves room for other CPUs' float rounding.
"""

import csv
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_cartpole_learns_within_3000_steps(tmp_path):
    logdir = tmp_path / "cartpole"
    cmd = [sys.executable, os.path.join(ROOT, "02_dreamer_cartpole.py"), "--steps", "3000",
           "--threads", "1", "--no-progress", "--logdir", str(logdir)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": ROOT}
    out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, out.stderr[-2000:]
    with open(logdir / "metrics.csv") as f:
        evals = [float(r["eval_mean"]) for r in csv.DictReader(f) if r["eval_mean"]]
    assert evals[0] < 100, "the first evaluation (after random prefill) should be near random"
    assert evals[-1] >= 150, evals
