"""Env wrappers for image observations: rendered frames, resize, grayscale, action repeat.

`wrap_env` applies what `EnvConfig` asks for: repeat the action, take the frame, convert it to
gray (first: resizing one channel is cheaper than three), resize it. Gymnasium's own
wrappers do the work where one fits (AddRenderObservation, RepeatAction, TransformObservation);
gray is an integer weighted sum (`gray_image`, several times cheaper than
GrayscaleObservation's float64); gymnasium's ResizeObservation needs OpenCV, so resizing is a Pillow
area filter (Image.BOX averages the pixels each output pixel covers, as OpenCV's INTER_AREA
does in the official Atari wrapper).

Every image key of the observation (a uint8 (H, W, C) Box, alone or inside a Dict) is converted;
vector keys pass through unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .config import EnvConfig


def wrap_env(env: Any, config: EnvConfig) -> Any:
    """`env` with the observation pipeline of `config` (a no-op for the defaults on vectors)."""
    import gymnasium as gym

    if config.action_repeat > 1:
        if not hasattr(gym.wrappers, "RepeatAction"):
            raise ValueError("env.action_repeat > 1 needs gymnasium >= 1.3 (RepeatAction)")
        env = gym.wrappers.RepeatAction(env, config.action_repeat)
    if config.obs == "pixels":
        env = render_observation(env)
    if config.color == "gray" and _image_keys(env.observation_space):
        env = grayscale(env)
    if _needs_resize(env.observation_space, config.image_size):
        env = resize(env, config.image_size)
    return env


# The official code's 2023 Atari settings: sticky actions (the previous action repeats with
# probability 0.25), the full 18-action set, and 4 frames per action with the max of the last
# two as the observation (Atari sprites flicker between frames); lives unused, no no-ops.
ATARI_MAKE = {"frameskip": 1, "repeat_action_probability": 0.25, "full_action_space": True}
ATARI_FRAMESKIP = 4


def make_atari(env_id: str, render_mode: str | None) -> Any:
    """An 'ALE/...' id with the official Atari settings; frames are then resized by `wrap_env`
    (210x160 -> 64x64 RGB)."""
    import gymnasium as gym

    try:
        import ale_py
    except ImportError:
        raise ValueError(
            f"'{env_id}' needs the Atari emulator: pip install ale-py (ROMs included)"
        ) from None
    gym.register_envs(ale_py)
    env = gym.make(env_id, render_mode=render_mode, **ATARI_MAKE)
    return gym.wrappers.MaxAndSkipObservation(env, skip=ATARI_FRAMESKIP)


def render_observation(env: Any) -> Any:
    """Observations replaced by env.render() frames, (H, W, 3) uint8; needs rgb_array rendering."""
    import gymnasium as gym

    if env.render_mode != "rgb_array":
        raise ValueError(
            f"--pixels needs an env made with render_mode='rgb_array', not {env.render_mode!r}; "
            "a factory must pass it itself"
        )
    try:  # it resets the env and renders once to learn the frame's shape
        return gym.wrappers.AddRenderObservation(env, render_only=True)
    except TypeError as exc:  # render() gave no array
        name = type(env.unwrapped).__name__
        raise ValueError(f"--pixels: {name} cannot render ({exc})") from None
    except gym.error.DependencyNotInstalled as exc:  # e.g. classic control draws with pygame
        raise ValueError(f"--pixels: rendering needs a missing package: {exc}") from None


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """(H, W, C) uint8 -> (size, size, C) uint8 by area averaging (Pillow's box filter)."""
    from PIL import Image

    if image.shape[:2] == (size, size):
        return image
    channels = [
        np.asarray(Image.fromarray(image[..., c]).resize((size, size), Image.BOX))
        for c in range(image.shape[-1])
    ]  # one 2-D image per channel: Pillow has no mode for 2 or 5+ channels
    return np.stack(channels, -1)


def resize(env: Any, size: int) -> Any:
    """Every image key resized to (size, size, C)."""
    from gymnasium import spaces

    def new_space(box: Any) -> Any:
        return spaces.Box(0, 255, (size, size, box.shape[-1]), np.uint8)

    return _map_images(env, lambda image: resize_image(image, size), new_space)


# BT.709 luma weights in 1/10000, as gymnasium's GrayscaleObservation uses (0.2125, 0.7154, 0.0721)
LUMA = np.array([2125, 7154, 721], np.uint32)


def gray_image(image: np.ndarray) -> np.ndarray:
    """(H, W, 3+) uint8 -> (H, W, 1) uint8 luma, floor((2125 r + 7154 g + 721 b) / 10000) in
    integers: gymnasium's wrapper computes the same in float64 at several times the cost (most
    of a rendered 600x400 step), equal on every test image (tests/test_pixels.py)."""
    luma = (image[..., :3].astype(np.uint32) @ LUMA) // 10_000
    return luma.astype(np.uint8)[..., None]


def grayscale(env: Any) -> Any:
    """Every RGB image key to one luminance channel, (H, W, 1)."""
    from gymnasium import spaces

    def new_space(box: Any) -> Any:
        return spaces.Box(0, 255, (*box.shape[:2], 1), np.uint8)

    return _map_images(env, gray_image, new_space)


def _map_images(env: Any, fn: Any, new_space: Any) -> Any:
    """TransformObservation applying `fn` to every image key, with the matching new space."""
    import gymnasium as gym
    from gymnasium import spaces

    space = env.observation_space
    if isinstance(space, spaces.Box):
        return gym.wrappers.TransformObservation(env, fn, new_space(space))
    keys = _image_keys(space)
    new = spaces.Dict({k: new_space(v) if k in keys else v for k, v in space.spaces.items()})

    def apply(obs: dict) -> dict:
        return {k: fn(v) if k in keys else v for k, v in obs.items()}

    return gym.wrappers.TransformObservation(env, apply, new)


def _image_keys(space: Any) -> list:
    """Keys of the uint8 (H, W, C) images of a space; [None] for an image Box itself."""
    from gymnasium import spaces

    def is_image(box: Any) -> bool:
        return isinstance(box, spaces.Box) and len(box.shape) == 3 and box.dtype == np.uint8

    if isinstance(space, spaces.Dict):
        return [k for k, v in space.spaces.items() if is_image(v)]
    return [None] if is_image(space) else []


def _needs_resize(space: Any, size: int) -> bool:
    from gymnasium import spaces

    boxes = space.spaces if isinstance(space, spaces.Dict) else {None: space}
    return any(boxes[k].shape[:2] != (size, size) for k in _image_keys(space))
