"""Shared fixtures: tiny configs (the suite must run in about a minute on 2 shared CPU cores)."""

from __future__ import annotations

import importlib.util
import os
from types import ModuleType

import numpy as np
import pytest
import torch

from dreamer.config import (
    ActorCriticConfig,
    DreamerConfig,
    ReplayConfig,
    RSSMConfig,
    TrainConfig,
    WorldModelConfig,
)

# Tiny networks: thread start-up costs more than the maths, and the cores are shared.
torch.set_num_threads(1)


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def one_line_error(capsys, status: int) -> str:
    """The one `error: ...` line a bad input printed, after checking status 2, no traceback."""
    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def one_line_error_of(out) -> str:
    """The same for a finished `subprocess.run(..., capture_output=True, text=True)`."""
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    return lines[0]


def load_top_level(filename: str) -> ModuleType:
    """A file of the repository root (a numbered script, train_all.py) loaded as a module."""
    spec = importlib.util.spec_from_file_location(
        filename.removesuffix(".py"), os.path.join(ROOT, filename)
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_rssm_config() -> RSSMConfig:
    return RSSMConfig(deter=32, stoch=4, classes=4, units=32)


def tiny_config() -> DreamerConfig:
    return DreamerConfig(
        world_model=WorldModelConfig(rssm=tiny_rssm_config(), units=32, layers=1),
        actor_critic=ActorCriticConfig(units=32, layers=1, horizon=3),
        replay=ReplayConfig(capacity=1000, batch_size=4, seq_len=8),
        train=TrainConfig(steps=100, prefill=10),
    )


@pytest.fixture(autouse=True)
def seed() -> None:
    """Every test starts from the same torch and numpy seeds."""
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture
def rssm_config() -> RSSMConfig:
    return tiny_rssm_config()


@pytest.fixture
def config() -> DreamerConfig:
    return tiny_config()
