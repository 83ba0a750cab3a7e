"""What a world model has learned: episode collection and open-loop predictions.

Used by 01_world_model_demo.py and 04_visualize.py. Open-loop prediction (paper Fig. 5 idea):
filter a context of real steps with the posterior, then roll the prior forward on the recorded
actions without seeing observations, and decode observation, reward and continue. For image
observations `open_loop_images` decodes frames: the video prediction of the Dreamer papers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .agent import WorldModel
from .envs import obs_arrays, random_model_action, space_info, to_env_action
from .replay_buffer import SequenceReplayBuffer
from .rssm import State


def collect_episode(env: Any, policy: Any, seed: int, rng: np.random.Generator) -> dict:
    """One episode in replay format: (T, ...) arrays obs, action, prev_action, reward, flags.

    `policy(obs, is_first)` returns a model action, or None for a random one. A vector
    observation is 'obs' (T, O) float32; images and Dict observations are stored under their
    batch keys (`envs.obs_arrays`: 'obs' or 'obs/<name>'), uint8 images kept uint8. Rendered
    frames ('frames') are recorded for vector observations only: an image agent sees its frames.
    """
    spaces = space_info(env.observation_space, env.action_space)
    vector = spaces["obs_dim"] is not None
    obs, _ = env.reset(seed=seed)
    steps: dict[str, list] = {k: [] for k in ("action", "reward", "is_first", "is_terminal")}
    reward, is_first, done, terminated = 0.0, True, False, False
    frames = []
    while True:
        action = None if done else policy(obs, is_first)
        if action is None:
            action = random_model_action(env.action_space, rng)
        if done:
            action = np.zeros_like(action)
        for key, value in obs_arrays(obs).items():
            steps.setdefault(key, []).append(value)
        steps["action"].append(action)
        steps["reward"].append(reward)
        steps["is_first"].append(is_first)
        steps["is_terminal"].append(done and terminated)
        if vector and env.render_mode == "rgb_array":
            frames.append(env.render())
        if done:
            break
        obs, reward, terminated, truncated, _ = env.step(to_env_action(action, spaces))
        reward, is_first, done = float(reward), False, terminated or truncated
    episode = {k: _stacked(v) for k, v in steps.items()}
    episode["prev_action"] = np.concatenate(
        [np.zeros_like(episode["action"][:1]), episode["action"][:-1]]
    )
    if frames:
        episode["frames"] = np.asarray(frames)
    return episode


def _stacked(values: list) -> np.ndarray:
    """(T, ...) float32, except uint8 images, which stay uint8."""
    array = np.asarray(values)
    return array if array.dtype == np.uint8 else array.astype(np.float32)


def fill_replay(replay: SequenceReplayBuffer, episode: dict) -> None:
    n = len(episode["action"])
    names = [k for k in episode if k.startswith("obs/")]  # Dict keys, 'obs/<name>'
    for t in range(n):
        obs = episode["obs"][t] if "obs" in episode else {k[4:]: episode[k][t] for k in names}
        replay.add(
            obs,
            episode["action"][t],
            episode["reward"][t],
            bool(episode["is_first"][t]),
            bool(episode["is_terminal"][t]),
            t == n - 1,
        )


@torch.no_grad()
def open_loop(wm: WorldModel, episode: dict, start: int, context: int, horizon: int) -> dict:
    """Posterior over steps [start, start + context), then the prior for `horizon` steps.

    Returns predicted and real obs (horizon, O), reward (horizon,), continue (horizon,), and the
    imagined model states (horizon, F) for the predicted steps.
    """
    device = next(wm.parameters()).device

    def seq(key: str, lo: int, hi: int) -> torch.Tensor:
        return torch.as_tensor(episode[key][lo:hi], device=device)[None]

    end = start + context
    is_first = seq("is_first", start, end).clone()
    is_first[:, 0] = 1.0  # the context starts from the initial state
    states, _, _ = wm.rssm.observe(
        wm.encoder(seq("obs", start, end)),
        seq("prev_action", start, end) * (1 - is_first[..., None]),
        is_first,
    )
    state = State(states.deter[:, -1], states.stoch[:, -1])
    feats = []
    for t in range(end, end + horizon):
        state = wm.rssm.imagine_step(state, seq("prev_action", t, t + 1)[:, 0])
        feats.append(state.feat)
    feat = torch.cat(feats)  # (horizon, F)
    return {
        "obs_pred": wm.decoder.predict(feat).cpu().numpy(),
        "obs_real": episode["obs"][end : end + horizon],
        "reward_pred": wm.twohot.decode_logits(wm.reward_head(feat)).cpu().numpy(),
        "reward_real": episode["reward"][end : end + horizon],
        "cont_pred": torch.sigmoid(wm.continue_head(feat)).cpu().numpy(),
        "cont_real": 1.0 - episode["is_terminal"][end : end + horizon],
        "feat": feat.cpu().numpy(),
    }


def error_by_horizon(
    wm: WorldModel, episodes: list[dict], context: int, horizon: int
) -> np.ndarray:
    """Mean squared error of open-loop obs predictions at horizons 1..K: in symlog space for
    vectors, of pixels scaled to [0, 1] for images (`open_loop_images`)."""
    errors = []
    for ep in episodes:
        for start in range(0, len(ep["action"]) - context - horizon, 5):
            if wm.obs_shapes is not None:
                out = open_loop_images(wm, ep, start, context, horizon)
                error = out["error"][context:].astype(np.float32) / 255.0  # (K, H, W, C)
                errors.append((error**2).mean((1, 2, 3)))
                continue
            out = open_loop(wm, ep, start, context, horizon)
            pred = np.sign(out["obs_pred"]) * np.log1p(np.abs(out["obs_pred"]))
            real = np.sign(out["obs_real"]) * np.log1p(np.abs(out["obs_real"]))
            errors.append(((pred - real) ** 2).mean(-1))
    if not errors:
        raise ValueError(f"no episode is longer than context + horizon = {context + horizon} steps")
    return np.mean(errors, 0)


def _to_uint8(image: torch.Tensor) -> np.ndarray:
    """Decoder output x / 255 - 0.5 -> uint8 pixels (clipped: a prediction may overshoot)."""
    return ((image.float() + 0.5) * 255.0).round().clamp(0, 255).to(torch.uint8).cpu().numpy()


@torch.no_grad()
def open_loop_images(
    wm: WorldModel, episode: dict, start: int, context: int, horizon: int
) -> dict[str, Any]:
    """Video prediction: the posterior over `context` real frames from `start`, then the prior
    for `horizon` steps on the episode's recorded actions, every state decoded to an image.

    Returns 'true' and 'dreamed', uint8 (context + horizon, H, W, C): the first `context`
    dreamed frames are reconstructions (decoded posterior states, which saw those frames), the
    rest are open-loop predictions (decoded prior states, which saw no frame after the context).
    Several image keys are stacked along C, as the CNN sees them. Also 'context' and 'error',
    |true - dreamed| uint8 of the same shape.
    """
    decoder = wm.decoder
    if wm.obs_shapes is None or not getattr(decoder, "image_keys", None):
        raise ValueError("open_loop_images needs a world model with image observations")
    device = next(wm.parameters()).device
    end = start + context
    if start < 0 or context < 1 or horizon < 0 or end + horizon > len(episode["action"]):
        raise ValueError(
            f"start {start} + context {context} + horizon {horizon} exceeds the episode's "
            f"{len(episode['action'])} steps"
        )

    def seq(key: str, lo: int, hi: int) -> torch.Tensor:
        value = torch.as_tensor(episode[key][lo:hi], device=device)[None]
        return value if value.dtype == torch.uint8 else value.float()

    obs = {key: seq(key, start, end) for key in wm.obs_shapes}  # (1, context, ...) per key
    is_first = seq("is_first", start, end).clone()
    is_first[:, 0] = 1.0  # the context starts from the initial state
    states, _, _ = wm.rssm.observe(
        wm.encoder(obs), seq("prev_action", start, end) * (1 - is_first[..., None]), is_first
    )
    feats = [states.feat[0]]  # (context, F) posterior states
    state = State(states.deter[:, -1], states.stoch[:, -1])
    for t in range(end, end + horizon):
        state = wm.rssm.imagine_step(state, seq("prev_action", t, t + 1)[:, 0])
        feats.append(state.feat)
    feat = torch.cat(feats)  # (context + horizon, F)
    dreamed = _to_uint8(decoder.cnn(feat))  # all image keys stacked along C
    true = np.concatenate([episode[k][start : end + horizon] for k in decoder.image_keys], -1)
    error = np.abs(true.astype(np.int16) - dreamed.astype(np.int16)).astype(np.uint8)
    return {"true": true, "dreamed": dreamed, "error": error, "context": context}
