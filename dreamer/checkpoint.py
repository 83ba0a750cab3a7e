"""Checkpoints as plain dicts: crash-safe writes, clear errors on load, and a run's full state.

A run checkpoint (`latest.pt`) holds the agent (weights, optimisers, config), the replay buffer,
the counters, the running episode (the env itself when it can be pickled, so a resumed run
continues that episode mid-way; otherwise, and always with parallel envs, a new episode starts)
and every RNG state.

Writes go to `<file>.tmp` and are renamed over the old file only when complete, so SIGKILL or a
full disk at any moment leaves the previous checkpoint intact; a failed write removes its temp
file, and a resumed run removes any a killed process left behind (`remove_stale_temp_files`).
"""

from __future__ import annotations

import os
import pickle
import random
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .config import DreamerConfig, config_diff, config_from_dict, config_to_dict

if TYPE_CHECKING:
    from .train import Trainer

RUN_FORMAT = "dreamer-run-v1"


# Temp files of the run directory's atomic writes; nothing else there ends in .tmp.
RUN_TEMP_FILES = ("latest.pt.tmp", "best.pt.tmp", "metrics.csv.tmp", "config.json.tmp",
                  "result.json.tmp")  # fmt: skip


class CheckpointWriteError(RuntimeError):
    """A checkpoint could not be written (disk full, ...); the previous one is intact."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason  # the OS's words, e.g. 'No space left on device'


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """torch.save to `path.tmp`, fsync, then os.replace: a crash never leaves a half file.

    A failed write (OSError: disk full, ...) removes the temp file and raises
    CheckpointWriteError, one line that names the file and says the previous one is intact.
    """
    path = os.fspath(path)
    tmp = path + ".tmp"
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        _remove(tmp)
        if isinstance(exc, OSError):
            previous = "the previous one is intact" if os.path.exists(path) else "none existed"
            reason = exc.strerror or str(exc)
            message = f"could not write {path} ({reason}); {previous}"
            raise CheckpointWriteError(message, reason) from None
        raise
    _fsync_dir(os.path.dirname(path))


def remove_stale_temp_files(logdir: str | os.PathLike) -> list[str]:
    """Delete the temp files a killed run left in `logdir`; returns their names."""
    removed = []
    for name in RUN_TEMP_FILES:
        path = os.path.join(logdir, name)
        if os.path.isfile(path):
            _remove(path)
            removed.append(name)
    return removed


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass  # already gone, or the disk is read-only: the next write replaces it


def _fsync_dir(directory: str) -> None:
    """Persist the rename itself (power loss); not possible on every OS, hence best effort."""
    try:
        fd = os.open(directory or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint_file(path: str | os.PathLike) -> dict:
    """torch.load with clear errors for missing or corrupt files."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found (or not a file): {path}")
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
            # where the held random prefill action stands (train.prefill_hold)
            "prefill_held": trainer.prefill_held,
            "prefill_actions": trainer.prefill_actions,
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
    try:
        _restore(trainer, state)
    except (KeyError, TypeError, AttributeError, IndexError) as exc:  # a field missing or odd
        raise ValueError(f"run checkpoint {path} is incomplete or damaged ({exc!r})") from None


def _restore(trainer: Trainer, state: dict) -> None:
    if state["env_id"] != trainer.env_id:
        raise ValueError(
            f"checkpoint is for {state['env_id']}, not {trainer.env_id}: use another --logdir"
        )
    try:  # the stored config passes the same checks as one from the command line
        stored = config_from_dict(DreamerConfig, state["agent"]["config"])
    except ValueError as exc:
        raise ValueError(f"checkpoint config: {exc}") from None
    # fields added since the checkpoint was written compare as their defaults
    diffs = config_diff(config_to_dict(stored), config_to_dict(trainer.config))
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
    # checkpoints written before the hold was stored restart it (a fresh draw at the next step)
    trainer.prefill_held = c.get("prefill_held", 0)
    trainer.prefill_actions = c.get("prefill_actions")
    episode = state.get("episode")
    if episode is not None:  # continue the interrupted episode exactly
        trainer.env = pickle.loads(episode.pop("env"))
        episode["state"] = episode_state_to(episode["state"], trainer.agent.device)
        trainer.episode = episode
    rng = state["rng"]
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy_global"])
    trainer.rng.bit_generator.state = rng["numpy"]
    torch.set_rng_state(rng["torch"])


def episode_state_to(state: tuple | None, device: torch.device) -> tuple | None:
    """The running episode's agent state (latent, previous action), loaded onto the CPU like the
    whole checkpoint, back on the device the policy acts on (None: the episode has not acted)."""
    if state is None:
        return None
    latent, prev_action = state
    return latent.map(lambda x: x.to(device)), prev_action.to(device)


def _episode_state(trainer: Trainer) -> dict | None:
    """The running episode: the env (if its pickle holds its state, as classic-control envs'
    do) + the agent state; None makes a resumed run start a new episode."""
    if trainer.episode is None or _pickles_constructor_only(trainer.env):
        return None
    try:
        env = pickle.dumps(trainer.env)
    except Exception:  # C-backed envs may not pickle at all
        return None
    return {"env": env, **trainer.episode}


def _pickles_constructor_only(env: Any) -> bool:
    """EzPickle envs (Box2D, MuJoCo) pickle their constructor arguments, not their state: the
    copy is a fresh env that was never reset, and stepping it fails (LunarLander asserts)."""
    from gymnasium.utils import EzPickle

    return isinstance(getattr(env, "unwrapped", env), EzPickle)
