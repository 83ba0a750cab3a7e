"""Environment helpers: spaces, creation with clear errors, action conversion, seeding, devices."""

from __future__ import annotations

import importlib
import random
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from .config import EnvConfig
from .wrappers import make_atari, wrap_env

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
    A vector observation (1-D Box) gives obs_dim; images and Dict observations give obs_dim None
    and `obs_shapes`, {batch key: shape} as `obs_arrays` names the keys.
    """
    return {**_observation_info(observation_space), **_action_info(action_space)}


def _observation_info(space: Any) -> dict:
    from gymnasium import spaces

    if isinstance(space, spaces.Box) and len(space.shape) == 1:
        return {"obs_dim": int(space.shape[0])}  # the vector path, as it always was
    if isinstance(space, spaces.Box):
        return {"obs_dim": None, "obs_shapes": {"obs": _checked_shape(space, "")}}
    if isinstance(space, spaces.Dict) and len(space.spaces) > 0:
        shapes = {}
        for name, sub in space.spaces.items():
            if not isinstance(sub, spaces.Box):
                raise ValueError(
                    f"unsupported observation space Dict with key '{name}' of type "
                    f"{type(sub).__name__}: Dict keys must be Box vectors or uint8 images"
                )
            shapes[f"obs/{name}"] = _checked_shape(sub, f" of key '{name}'")
        return {"obs_dim": None, "obs_shapes": shapes}
    raise ValueError(
        f"unsupported observation space {type(space).__name__}: dreamer supports Box (a vector "
        "or a uint8 (H, W, C) image) and Dict of those"
    )


def _checked_shape(box: Any, where: str) -> list[int]:
    """A Box's shape if it is a vector (N,) or a uint8 image (H, W, C), else a one-line error."""
    shape = tuple(int(n) for n in box.shape)
    if len(shape) == 1 or (len(shape) == 3 and box.dtype == np.uint8):
        return list(shape)
    raise ValueError(
        f"unsupported observation shape {shape}{where} ({box.dtype}): dreamer supports vectors "
        "(N,) and uint8 images (H, W, C); --pixels renders frames instead"
    )


def _action_info(action_space: Any) -> dict:
    from gymnasium import spaces

    if isinstance(action_space, spaces.Discrete):
        return {"action_dim": int(action_space.n), "discrete": True, "low": None, "high": None}
    if isinstance(action_space, spaces.Box) and len(action_space.shape) == 1:
        low, high = action_space.low.astype(np.float64), action_space.high.astype(np.float64)
        if not (np.isfinite(low).all() and np.isfinite(high).all()):
            raise ValueError("unsupported Box action space with infinite bounds")
        return {
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

    Vector bounds are not stored and come back as (-inf, inf): the agent needs only shapes.
    """
    from gymnasium import spaces

    def box(shape: list[int]) -> Any:
        if len(shape) == 3:
            return spaces.Box(0, 255, tuple(shape), np.uint8)
        return spaces.Box(-np.inf, np.inf, tuple(shape), np.float32)

    if info["obs_dim"] is not None:
        observation_space = box([info["obs_dim"]])
    elif list(info["obs_shapes"]) == ["obs"]:
        observation_space = box(info["obs_shapes"]["obs"])
    else:
        observation_space = spaces.Dict(
            {key.removeprefix("obs/"): box(shape) for key, shape in info["obs_shapes"].items()}
        )
    if info["discrete"]:
        return observation_space, spaces.Discrete(info["action_dim"])
    low, high = np.asarray(info["low"]), np.asarray(info["high"])  # float64: the stored values
    return observation_space, spaces.Box(low, high, (info["action_dim"],), np.float64)


def obs_arrays(obs: Any) -> dict[str, np.ndarray]:
    """An env observation -> {batch key: array}: 'obs' for a Box, 'obs/<name>' per Dict key
    (the names replay stores and `space_info`'s `obs_shapes` use)."""
    if isinstance(obs, dict):
        return {f"obs/{name}": np.asarray(value) for name, value in obs.items()}
    return {"obs": np.asarray(obs)}


def stack_obs(observations: list) -> Any:
    """Observations of N envs -> one batch: (N, ...) arrays, key by key for Dict observations."""
    if isinstance(observations[0], dict):
        return {key: np.stack([o[key] for o in observations]) for key in observations[0]}
    return np.stack(observations)


EnvSource = str | Callable[[], Any]  # a gymnasium id, or a zero-argument factory of envs


def make_env(
    env: EnvSource,
    seed: int | None = None,
    render_mode: str | None = None,
    config: EnvConfig | None = None,
) -> Any:
    """A fresh env from a gymnasium id or a factory, with one-line errors for bad input, wrapped
    as `config` says (`wrappers.wrap_env`: rendered frames, resize, grayscale, action repeat).

    An id is 'CartPole-v1' or gymnasium's 'my_package.envs:MyEnv-v0' (import the module, which
    registers the id). A factory is called with no arguments, e.g. the env class itself; it
    chooses its own render mode. An env instance is refused: evaluation needs fresh envs.
    """
    import gymnasium as gym

    config = config or EnvConfig()
    if config.obs == "pixels":
        render_mode = "rgb_array"  # the frames are the observation
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
    env = wrap_env(env, config)
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
        if env_id.startswith("ALE/"):
            return make_atari(env_id, render_mode)
        # render_mode only when frames are wanted: an env whose constructor has no such
        # argument is still usable from its vector observation
        return gym.make(env_id, **({"render_mode": render_mode} if render_mode else {}))
    except gym.error.Error as exc:
        hint = f"; does '{module}' call gymnasium.register('{name}', ...)?" if sep else ""
        raise ValueError(f"cannot make environment '{env_id}': {exc}{hint}") from None
    except ImportError as exc:  # e.g. Box2D missing for LunarLander
        raise ValueError(f"environment '{env_id}' needs an extra package: {exc}") from None
    except TypeError as exc:  # its constructor takes no render_mode (--pixels needs frames)
        raise ValueError(
            f"cannot make environment '{env_id}' with render_mode={render_mode!r}: {exc}"
        ) from None


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
