"""01: train only the world model, on random-policy data, and look at what it predicts.

Teaches: the world model alone. The RSSM filters real observations (posterior), then dreams
forward with its prior on the recorded actions. Plots:
  open_loop.png      predicted vs real for every observation dimension, reward and continue,
                     after a context of real steps (the dashed line)
  error_horizon.png  open-loop error against horizon 1..K, before and after training
  losses.png         reconstruction, reward, continue and KL losses over training
With --pixels the world model sees rendered frames (gray, 64x64; 32x32 with --quick) through
the CNN encoder and decoder, and open_loop.png becomes the video prediction (rows true, dreamed,
|error|), with open_loop.gif the same three side by side over time; the error is pixel MSE.

    python 01_world_model_demo.py                  # CartPole, a few minutes on 2 cores
    python 01_world_model_demo.py --env Pendulum-v1
    python 01_world_model_demo.py --quick          # under a minute
    python 01_world_model_demo.py --pixels         # from frames (slower: the CNN)
"""

import argparse
import os
import sys

# --pixels renders frames as rgb_array, never a window: without a display session SDL would
# print a spurious "error: XDG_RUNTIME_DIR is invalid" line.
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from dreamer.agent import WorldModel
from dreamer.analysis import (
    collect_episode,
    error_by_horizon,
    fill_replay,
    open_loop,
    open_loop_images,
)
from dreamer.checkpoint import atomic_torch_save
from dreamer.cli import OneLineParser
from dreamer.config import EnvConfig, RSSMConfig, WorldModelConfig, config_to_dict
from dreamer.envs import make_env, obs_names, set_seed, space_info
from dreamer.plotting import plot_video_strip, write_video_gif
from dreamer.replay_buffer import SequenceReplayBuffer
from dreamer.threads import ThreadTuner, parse_threads


def world_model_config() -> WorldModelConfig:
    # The small model of 02_dreamer_cartpole.py; lr 3e-4 (paper: 1e-4) to learn in minutes.
    config = WorldModelConfig(
        rssm=RSSMConfig(deter=128, stoch=16, classes=16, units=128), units=128, lr=3e-4
    )
    config.cnn.depth = 16  # as 07_dreamer_pixels.py: two flat shapes need few features
    return config


def positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return int(text)


def parse_args() -> argparse.Namespace:
    p = OneLineParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="CartPole-v1")
    p.add_argument("--episodes", type=positive, default=150, help="random-policy episodes")
    p.add_argument("--updates", type=positive, default=1500, help="world-model updates")
    p.add_argument("--context", type=positive, default=10, help="real steps before dreaming")
    p.add_argument("--horizon", type=positive, default=30, help="open-loop steps K")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--logdir", help="default runs/<env>/world_model-seed<k>")
    p.add_argument("--quick", action="store_true", help="under a minute")
    p.add_argument("--pixels", action="store_true", help="learn from rendered gray frames")
    p.add_argument("--threads", default="auto", help="a number, or auto: 1 or all cores, "
                   "whichever is faster now (dreamer/threads.py)")  # fmt: skip
    return p.parse_args()


def train_world_model(wm, replay, updates, rng, batch_size=16, log_every=25, tuner=None):
    opt = torch.optim.Adam(wm.parameters(), lr=wm.config.lr, eps=wm.config.eps)
    history = []

    def step(batch):
        loss, terms, _, kl = wm.loss(batch)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(wm.parameters(), wm.config.grad_clip)
        opt.step()
        return terms, kl

    for i in range(updates):
        batch = {k: torch.as_tensor(v) for k, v in replay.sample(batch_size, rng).items()}
        # uint8 frames stay uint8 (the encoder scales them); everything else float
        batch = {k: v if v.dtype == torch.uint8 else v.float() for k, v in batch.items()}
        terms, kl = tuner.run(step, batch) if tuner else step(batch)
        if i % log_every == 0 or i == updates - 1:
            history.append(
                {"update": i, "kl": kl.item(), **{k: v.item() for k, v in terms.items()}}
            )
    return history


def plot_open_loop(out, context, path, title, names):
    obs_dim = out["obs_real"].shape[1]
    fig, axes = plt.subplots(1, obs_dim + 2, figsize=(3.2 * (obs_dim + 2), 3))
    steps = np.arange(context, context + len(out["obs_real"]))
    series = [(names[d], out["obs_real"][:, d], out["obs_pred"][:, d]) for d in range(obs_dim)]
    series += [
        ("reward", out["reward_real"], out["reward_pred"]),
        ("continue", out["cont_real"], out["cont_pred"]),
    ]
    for ax, (name, real, pred) in zip(axes, series, strict=True):
        ax.plot(steps, real, "k-", lw=1.5, label="real")
        ax.plot(steps, pred, "C1--", lw=1.5, label="dreamed (prior)")
        ax.axvline(context, color="0.6", ls=":")
        ax.set_title(name)
        ax.set_xlabel("time step")
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main() -> int:
    args = parse_args()
    if args.quick:
        args.episodes, args.updates, args.horizon = 30, 60, 15
    set_seed(args.seed)
    try:
        threads = parse_threads(args.threads)
        env_config = EnvConfig()
        if args.pixels:
            env_config = EnvConfig(obs="pixels", color="gray", image_size=32 if args.quick else 64)
        env = make_env(args.env, args.seed, config=env_config)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    name = "world_model_pixels" if args.pixels else "world_model"
    logdir = args.logdir or os.path.join("runs", args.env, f"{name}-seed{args.seed}")
    os.makedirs(logdir, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    random_policy = lambda obs, is_first: None  # noqa: E731
    episodes = [
        collect_episode(env, random_policy, args.seed + i, rng) for i in range(args.episodes)
    ]
    test = [collect_episode(env, random_policy, 10_000 + i, rng) for i in range(10)]
    replay = SequenceReplayBuffer(100_000, 32)
    for ep in episodes:
        fill_replay(replay, ep)
    info = space_info(env.observation_space, env.action_space)
    config = world_model_config()
    obs = info["obs_dim"] if info["obs_dim"] is not None else info["obs_shapes"]
    wm = WorldModel(obs, info["action_dim"], config, discrete_actions=info["discrete"])
    context, horizon = args.context, args.horizon
    long_test = [ep for ep in test if len(ep["action"]) > context + horizon] or test
    before = error_by_horizon(wm, long_test, context, horizon)
    print(f"{len(replay)} random steps; training the world model for {args.updates} updates")
    if threads != "auto":
        torch.set_num_threads(threads)
    tuner = ThreadTuner() if threads == "auto" else None
    history = train_world_model(wm, replay, args.updates, rng, tuner=tuner)
    after = error_by_horizon(wm, long_test, context, horizon)

    example = max(test, key=lambda ep: len(ep["action"]))
    h = min(horizon, len(example["action"]) - context)
    written = ["open_loop.png", "error_horizon.png", "losses.png", "world_model.pt"]
    if args.pixels:
        video = open_loop_images(wm, example, 0, context, h)
        title = f"{args.env}: {context} frames seen, then dreamed open loop on the real actions"
        plot_video_strip(video, os.path.join(logdir, "open_loop.png"), title)
        write_video_gif(video, os.path.join(logdir, "open_loop.gif"))
        written.insert(1, "open_loop.gif")
    else:
        plot_open_loop(
            open_loop(wm, example, 0, context, h),
            context,
            os.path.join(logdir, "open_loop.png"),
            f"{args.env}: open-loop prediction",
            obs_names(args.env, info["obs_dim"]),
        )
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(range(1, horizon + 1), before, "C3-o", ms=3, label="before training")
    ax.plot(range(1, horizon + 1), after, "C0-o", ms=3, label="after training")
    ax.set_yscale("log")
    ax.set_xlabel("open-loop horizon (steps)")
    ax.set_ylabel("pixel MSE (pixels in [0, 1])" if args.pixels else "obs MSE (symlog space)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(logdir, "error_horizon.png"), dpi=80)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for key in ("dec", "rew", "con", "kl"):
        ax.plot([r["update"] for r in history], [r[key] for r in history], label=key)
    ax.set_yscale("log")
    ax.set_xlabel("update")
    ax.set_title("world-model losses")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(logdir, "losses.png"), dpi=80)
    plt.close(fig)
    atomic_torch_save(
        {
            "format": "dreamer-world-model-v1",
            "config": config_to_dict(config),
            "spaces": info,
            "model": wm.state_dict(),
        },
        os.path.join(logdir, "world_model.pt"),
    )
    print(
        f"1-step error {before[0]:.4f} -> {after[0]:.4f}; {horizon}-step "
        f"{before[-1]:.4f} -> {after[-1]:.4f}"
    )
    print(f"wrote {', '.join(written)} in {logdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
