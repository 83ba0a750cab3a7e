"""Environment helpers: creation with clear errors, action conversion, seeding, devices."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def make_env(env_id: str, seed: int | None = None, render_mode: str | None = None) -> Any:
    """gymnasium.make with a one-line error for unknown ids or unsupported spaces."""
    import gymnasium as gym

    from .agent import _space_info

    try:
        env = gym.make(env_id, render_mode=render_mode)
    except gym.error.Error as exc:
        raise ValueError(f"cannot make environment '{env_id}': {exc}") from None
    except ImportError as exc:  # e.g. Box2D missing for LunarLander
        raise ValueError(f"environment '{env_id}' needs an extra package: {exc}") from None
    _space_info(env.observation_space, env.action_space)  # raises for unsupported spaces
    if seed is not None:
        env.action_space.seed(seed)
    return env


def random_model_action(action_space: Any, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random action in the model's format: one-hot, or in [-1, 1]."""
    from gymnasium import spaces

    if isinstance(action_space, spaces.Discrete):
        onehot = np.zeros(action_space.n, np.float32)
        onehot[rng.integers(action_space.n)] = 1.0
        return onehot
    return rng.uniform(-1.0, 1.0, size=action_space.shape).astype(np.float32)


def model_to_env_action(action: np.ndarray, action_space: Any) -> Any:
    """One-hot -> index; [-1, 1] -> the Box bounds."""
    from gymnasium import spaces

    if isinstance(action_space, spaces.Discrete):
        return int(np.argmax(action))
    low, high = action_space.low, action_space.high
    return (low + (np.clip(action, -1.0, 1.0) + 1.0) / 2.0 * (high - low)).astype(np.float32)


def set_seed(seed: int) -> None:
    """Seed python, numpy and torch (envs are seeded at reset)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda if available else cpu; 'cuda' without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda requested but no CUDA GPU is available; use --device cpu")
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise ValueError(f"unknown device '{name}': use auto, cpu or cuda")
    return torch.device(name)
