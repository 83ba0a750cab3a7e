"""Smoke training runs and command-line errors (subprocesses, as a user runs them)."""

import csv
import math
import os
import subprocess
import sys

import pytest
from conftest import one_line_error_of

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(args, tmp_path, timeout=900):
    env = {**os.environ, "PYTHONPATH": ROOT}
    return subprocess.run(
        [sys.executable, *args], cwd=tmp_path, capture_output=True, text=True, timeout=timeout,
        env=env,
    )  # fmt: skip


def assert_finite_run(logdir):
    for name in ("latest.pt", "best.pt", "metrics.csv", "curve.png", "config.json", "result.json"):
        assert os.path.exists(os.path.join(logdir, name)), name
    with open(os.path.join(logdir, "metrics.csv")) as f:
        rows = list(csv.DictReader(f))
    trained = [r for r in rows if r.get("loss/dec")]
    assert trained, "no update was logged"
    for row in trained:
        for key in ("loss/dec", "loss/rew", "loss/con", "loss/actor", "loss/critic", "kl"):
            assert math.isfinite(float(row[key])), (key, row[key])
    assert any(r["eval_mean"] for r in rows)


def test_cartpole_quick_run_writes_finite_outputs(tmp_path):
    logdir = tmp_path / "cp"
    out = run([os.path.join(ROOT, "02_dreamer_cartpole.py"), "--quick", "--no-progress",
               "--logdir", str(logdir)], tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert_finite_run(logdir)
    # 04 visualises that agent: t-SNE, dream vs real, GIF of it playing.
    vis = tmp_path / "vis"
    out = run([os.path.join(ROOT, "04_visualize.py"), "--quick", "--checkpoint",
               str(logdir / "latest.pt"), "--outdir", str(vis)], tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    for name in ("tsne.png", "dream.png", "episode.gif"):
        assert (vis / name).stat().st_size > 1000, name


def test_world_model_demo_quick(tmp_path):
    out = run([os.path.join(ROOT, "01_world_model_demo.py"), "--quick", "--logdir",
               str(tmp_path / "wm")], tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    for name in ("open_loop.png", "error_horizon.png", "losses.png", "world_model.pt"):
        assert (tmp_path / "wm" / name).exists(), name


def test_visualize_without_checkpoint_names_the_script(tmp_path):
    out = run([os.path.join(ROOT, "04_visualize.py"), "--env", "Acrobot-v1"], tmp_path, 300)
    assert out.returncode == 2 and "05_dreamer_acrobot.py" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_generic_entry_point_continuous_quick_run(tmp_path):
    """python -m dreamer on Pendulum: Box actions, dynamics-backprop actor."""
    logdir = tmp_path / "pd"
    out = run(["-m", "dreamer", "--env", "Pendulum-v1", "--quick", "--steps", "600",
               "--no-progress", "--logdir", str(logdir)], tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert_finite_run(logdir)


@pytest.mark.skipif(
    __import__("torch").cuda.is_available(), reason="checks the message on CPU-only machines"
)
def test_cuda_without_gpu_suggests_cpu(tmp_path):
    out = run(["-m", "dreamer", "--env", "CartPole-v1", "--device", "cuda"], tmp_path, 300)
    assert "use --device cpu" in one_line_error_of(out)


# Bad input (flags, --set, envs, checkpoints): tests/test_robustness.py.


@pytest.mark.parametrize(
    "argv",
    [
        ["--set", "hidden_bias=true", "--set", "world_model.dec_symlog=false"],
        ["--set", "hidden_bias=true", "world_model.dec_symlog=false"],
    ],
)
def test_every_set_counts_repeated_or_listed(argv):
    """A repeated `--set` once replaced the earlier ones: only the last change was trained."""
    from conftest import tiny_config

    from dreamer import cli

    config = cli.apply_args(tiny_config(), cli.build_parser("x", "CartPole-v1").parse_args(argv))
    assert config.hidden_bias is True and config.world_model.dec_symlog is False
    assert tiny_config().hidden_bias is False and tiny_config().world_model.dec_symlog is True
