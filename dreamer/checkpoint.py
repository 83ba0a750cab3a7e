"""Checkpoints as plain dicts: crash-safe writes, clear errors on load, and a run's full state.

A run checkpoint (`latest.pt`) holds the agent (weights, optimisers, config), the replay buffer,
the counters, the running episode (the env itself when it can be pickled, so a resumed run
continues that episode mid-way; otherwise a new episode starts) and every RNG state.
"""

from __future__ import annotations

import os
import pickle
import random
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .config import config_diff, config_to_dict

if TYPE_CHECKING:
    from .train import Trainer

RUN_FORMAT = "dreamer-run-v1"


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """torch.save to `path.tmp`, fsync, then os.replace: a crash never leaves a half file."""
    path = os.fspath(path)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint_file(path: str | os.PathLike) -> dict:
    """torch.load with clear errors for missing or corrupt files."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # truncated zip, wrong format, ...
        raise ValueError(f"checkpoint {path} is corrupt or not a torch file ({exc})") from None


def run_state(trainer: Trainer) -> dict:
    """Everything needed to continue `trainer`'s run exactly."""
    return {
        "format": RUN_FORMAT,
        "env_id": trainer.env_id,
        "seed": trainer.seed,
        "agent": trainer.agent.checkpoint_state(),
        "replay": trainer.replay.state_dict(),
        "counters": {
            "env_step": trainer.env_step,
            "episodes": trainer.episodes,
            "update_debt": trainer.update_debt,
            "wall_time": trainer.wall_time(),
            "best_eval": trainer.best_eval,
            "steps_to_threshold": trainer.steps_to_threshold,
            "last_eval": trainer.last_eval,
        },
        "episode": _episode_state(trainer),
        "rng": {
            "python": random.getstate(),
            "numpy_global": np.random.get_state(),
            "numpy": trainer.rng.bit_generator.state,
            "torch": torch.get_rng_state(),
        },
    }


def restore_run(trainer: Trainer, state: dict, path: str) -> None:
    """Load `run_state` output into a freshly built trainer with the same env and config."""
    if not isinstance(state, dict) or state.get("format") != RUN_FORMAT:
        raise ValueError(f"{path} is not a dreamer run checkpoint")
    if state["env_id"] != trainer.env_id:
        raise ValueError(
            f"checkpoint is for {state['env_id']}, not {trainer.env_id}: use another --logdir"
        )
    diffs = config_diff(state["agent"]["config"], config_to_dict(trainer.config))
    diffs = [d for d in diffs if not d.startswith("train.steps:")]  # extending a run is fine
    if diffs:
        raise ValueError("cannot resume with a different config: " + "; ".join(diffs))
    trainer.agent.load_checkpoint_state(state["agent"], strict_config=False)
    trainer.replay.load_state_dict(state["replay"])
    c = state["counters"]
    trainer.env_step, trainer.episodes = c["env_step"], c["episodes"]
    trainer.update_debt, trainer.wall_offset = c["update_debt"], c["wall_time"]
    trainer.best_eval, trainer.steps_to_threshold = c["best_eval"], c["steps_to_threshold"]
    trainer.last_eval = c["last_eval"]
    episode = state.get("episode")
    if episode is not None:  # continue the interrupted episode exactly
        trainer.env = pickle.loads(episode.pop("env"))
        trainer.episode = episode
    rng = state["rng"]
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy_global"])
    trainer.rng.bit_generator.state = rng["numpy"]
    torch.set_rng_state(rng["torch"])


def _episode_state(trainer: Trainer) -> dict | None:
    """The running episode: env (if picklable, as classic-control envs are) + agent state."""
    if trainer.episode is None:
        return None
    try:
        env = pickle.dumps(trainer.env)
    except Exception:  # Box2D and other C-backed envs cannot be pickled
        return None
    return {"env": env, **trainer.episode}
