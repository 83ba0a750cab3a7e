"""Data-parallel training: `torchrun --nproc_per_node 2 -m dreamer --env CartPole-v1 --quick`
on CPU (gloo). Two ranks, their own envs and replay, one set of weights."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys

import pytest
import torch

from dreamer.checkpoint import load_checkpoint_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _torchrun(*args: str, cwd: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_port", "29517", "-m", "dreamer", "--env", "CartPole-v1", "--quick",
           "--no-progress", *args]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": ROOT}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch without distributed")
def test_two_ranks_train_identical_weights_and_resume(tmp_path):
    logdir = tmp_path / "run"
    done = _torchrun("--logdir", str(logdir), cwd=str(tmp_path))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    # the run checks the ranks' weights itself (elementwise max == min across ranks)
    assert "data parallel: 2 ranks, parameters identical" in done.stdout
    assert done.stdout.count("CartPole-v1 seed 0:") == 1  # rank 0 reports, rank 1 does not
    rank0, rank1 = (load_checkpoint_file(logdir / n) for n in ("latest.pt", "latest-rank1.pt"))
    for key, value in rank0["agent"]["model"].items():
        assert torch.equal(value, rank1["agent"]["model"][key]), key
    # ...while each rank collected its own experience
    assert not torch.equal(
        torch.as_tensor(rank0["replay"]["data"]["obs"]),
        torch.as_tensor(rank1["replay"]["data"]["obs"]),
    )
    with open(logdir / "metrics.csv") as f:
        steps = [int(row["env_step"]) for row in csv.DictReader(f)]
    assert steps == sorted(set(steps))  # one writer: no duplicated rows

    shutil.copy(logdir / "latest-rank1.pt", tmp_path / "rank1-before.pt")
    more = _torchrun("--logdir", str(logdir), "--resume", "--steps", "1400", cwd=str(tmp_path))
    assert more.returncode == 0, more.stdout[-2000:] + more.stderr[-3000:]
    assert "1400 env steps" in more.stdout and "parameters identical" in more.stdout
    resumed = load_checkpoint_file(logdir / "latest-rank1.pt")
    assert resumed["counters"]["env_step"] == 1400
    # rank 1 went on from its own checkpoint: its replay begins with its own earlier steps
    before = load_checkpoint_file(tmp_path / "rank1-before.pt")["replay"]
    n = before["size"]
    assert 0 < n < resumed["replay"]["size"]
    obs = {name: torch.as_tensor(c["replay"]["data"]["obs"])[:n] for name, c in
           (("rank1", resumed), ("rank0", load_checkpoint_file(logdir / "latest.pt")))}  # fmt: skip
    assert torch.equal(obs["rank1"], torch.as_tensor(before["data"]["obs"])[:n])
    assert not torch.equal(obs["rank1"], obs["rank0"])
