"""Environment helpers: spaces, creation with clear errors, action conversion, seeding, devices."""

from __future__ import annotations

import importlib
import random
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

# What each observation dimension is, for plot labels (gymnasium's documented layouts).
OBS_NAMES = {
    "CartPole-v1": ["cart position (m)", "cart velocity", "pole angle (rad)", "pole velocity"],
    "Pendulum-v1": ["cos(angle)", "sin(angle)", "angular velocity"],
    "Acrobot-v1": [
        "cos(theta1)", "sin(theta1)", "cos(theta2)", "sin(theta2)", "theta1 velocity",
        "theta2 velocity",
    ],
    "LunarLander-v3": [
        "x", "y", "x velocity", "y velocity", "angle", "angular velocity", "left leg contact",
        "right leg contact",
    ],
}  # fmt: skip


def obs_names(env_id: str, obs_dim: int) -> list[str]:
    """Labels of the observation dimensions: real names where known, else obs[i]."""
    names = OBS_NAMES.get(env_id, [])
    return names if len(names) == obs_dim else [f"obs[{i}]" for i in range(obs_dim)]


def space_info(observation_space: Any, action_space: Any) -> dict:
    """Validate gymnasium spaces -> sizes and bounds; unsupported spaces get a one-line error.

    Returns obs_dim, action_dim, discrete, and the Box action bounds low/high (None if discrete).
    """
    from gymnasium import spaces

    if not isinstance(observation_space, spaces.Box):
        raise ValueError(
            f"unsupported observation space {type(observation_space).__name__}: "
            "dreamer supports flat Box (vector) observations"
        )
    if len(observation_space.shape) != 1:
        raise ValueError(
            f"unsupported observation shape {observation_space.shape}: dreamer supports "
            "vector observations (1-D Box); images are not supported yet"
        )
    obs_dim = int(observation_space.shape[0])
    if isinstance(action_space, spaces.Discrete):
        n = int(action_space.n)
        return {"obs_dim": obs_dim, "action_dim": n, "discrete": True, "low": None, "high": None}
    if isinstance(action_space, spaces.Box) and len(action_space.shape) == 1:
        low, high = action_space.low.astype(np.float64), action_space.high.astype(np.float64)
        if not (np.isfinite(low).all() and np.isfinite(high).all()):
            raise ValueError("unsupported Box action space with infinite bounds")
        return {
            "obs_dim": obs_dim,
            "action_dim": int(action_space.shape[0]),
            "discrete": False,
            "low": low.tolist(),
            "high": high.tolist(),
        }
    raise ValueError(
        f"unsupported action space {type(action_space).__name__}: "
        "dreamer supports Discrete and 1-D Box actions"
    )


def spaces_from_info(info: dict) -> tuple[Any, Any]:
    """`space_info` output (as stored in checkpoints) -> gymnasium (observation, action) spaces.

    Observation bounds are not stored and come back as (-inf, inf): the agent needs only shapes.
    """
    from gymnasium import spaces

    observation_space = spaces.Box(-np.inf, np.inf, (info["obs_dim"],), np.float32)
    if info["discrete"]:
        return observation_space, spaces.Discrete(info["action_dim"])
    low, high = np.asarray(info["low"]), np.asarray(info["high"])  # float64: the stored values
    return observation_space, spaces.Box(low, high, (info["action_dim"],), np.float64)


EnvSource = str | Callable[[], Any]  # a gymnasium id, or a zero-argument factory of envs


def make_env(env: EnvSource, seed: int | None = None, render_mode: str | None = None) -> Any:
    """A fresh env from a gymnasium id or a factory, with one-line errors for bad input.

    An id is 'CartPole-v1' or gymnasium's 'my_package.envs:MyEnv-v0' (import the module, which
    registers the id). A factory is called with no arguments, e.g. the env class itself; it
    chooses its own render mode. An env instance is refused: evaluation needs fresh envs.
    """
    import gymnasium as gym

    if isinstance(env, str):
        env = _make_from_id(env, render_mode)
    elif isinstance(env, gym.Env):
        raise TypeError(
            f"got a {type(env).__name__} instance; pass a zero-argument factory instead, e.g. "
            "its class or lambda: MyEnv(size=5), since evaluation makes fresh envs"
        )
    elif not callable(env):
        raise TypeError(f"expected a gymnasium id or an env factory, got type {type(env).__name__}")
    else:
        name = getattr(env, "__qualname__", repr(env))
        env = env()
        if not isinstance(env, gym.Env):
            raise TypeError(
                f"env factory {name} returned type {type(env).__name__}, not a gymnasium Env"
            )
    space_info(env.observation_space, env.action_space)  # raises for unsupported spaces
    if seed is not None:
        env.action_space.seed(seed)
    return env


def env_name(env: EnvSource, instance: Any) -> str:
    """The run's env name: the id as given, else the spec's id or the env class's name."""
    if isinstance(env, str):
        return env
    spec = getattr(instance, "spec", None)
    return spec.id if spec is not None else type(instance.unwrapped).__name__


def _make_from_id(env_id: str, render_mode: str | None) -> Any:
    import gymnasium as gym

    module, sep, name = env_id.rpartition(":")
    if sep and (not module or ":" in module or not name):
        raise ValueError(f"bad environment id '{env_id}': expected 'EnvId' or 'module:EnvId'")
    if sep:  # import it here so that a failure names the module, not a missing package
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ValueError(
                f"cannot import module '{module}' of environment '{env_id}' ({exc}); is it "
                "installed, or in the current folder?"
            ) from None
    try:
        return gym.make(env_id, render_mode=render_mode)
    except gym.error.Error as exc:
        hint = f"; does '{module}' call gymnasium.register('{name}', ...)?" if sep else ""
        raise ValueError(f"cannot make environment '{env_id}': {exc}{hint}") from None
    except ImportError as exc:  # e.g. Box2D missing for LunarLander
        raise ValueError(f"environment '{env_id}' needs an extra package: {exc}") from None


def random_model_action(action_space: Any, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random action in the model's format: one-hot, or in [-1, 1]."""
    from gymnasium import spaces

    if isinstance(action_space, spaces.Discrete):
        onehot = np.zeros(action_space.n, np.float32)
        onehot[rng.integers(action_space.n)] = 1.0
        return onehot
    return rng.uniform(-1.0, 1.0, size=action_space.shape).astype(np.float32)


def to_env_action(action: np.ndarray, spaces: dict) -> Any:
    """Model actions (..., A) -> environment actions (the one converter).

    One-hot -> the index (an int for a single action); a continuous action is clipped to
    [-1, 1] and rescaled to the Box bounds: low + (a + 1) / 2 * (high - low).
    """
    action = np.asarray(action)
    if spaces["discrete"]:
        index = action.argmax(-1)
        return int(index) if index.ndim == 0 else index
    low, high = np.asarray(spaces["low"]), np.asarray(spaces["high"])
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
