"""04: look inside a trained agent: latent space, dreams against reality, and the agent playing.

Teaches: what the world model's state encodes and how far its dreams track the real world.
From a checkpoint of 02/03/05/06 (vector observations) it writes
  tsne.png      t-SNE of posterior states from real episodes, coloured by time step, by the
                critic's value, and by one observation dimension
  dream.png     imagined vs real trajectory: same start state, same actions, every dimension
  episode.gif   the agent playing (rgb_array frames) beside real vs dreamed observation curves
From an image agent's checkpoint (07, or `python -m dreamer --pixels`) it writes the open-loop
video prediction of the Dreamer papers: the posterior sees `--context` frames, then the prior
dreams `--horizon` steps on the episode's real actions and the decoder draws each dreamed state
  tsne.png           as above, the third panel coloured by episode
  open_loop.png      rows true | dreamed | |error|, a column every few steps of the horizon
  open_loop.gif      the same three panels side by side over time, context frames included

    python 04_visualize.py --env CartPole-v1            # latest run of that env
    python 04_visualize.py --checkpoint runs/CartPole-v1/default-seed0/best.pt
    python 04_visualize.py --env CartPole-v1 --quick    # fewer episodes, short GIF
"""

import argparse
import glob
import os
import sys

# Frames come from rgb_array rendering, never a window: without a display session SDL would
# print a spurious "error: XDG_RUNTIME_DIR is invalid" line.
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.animation import FuncAnimation, PillowWriter

from dreamer.agent import DreamerAgent
from dreamer.analysis import collect_episode, open_loop, open_loop_images
from dreamer.checkpoint import load_checkpoint_file
from dreamer.cli import OneLineParser
from dreamer.config import DreamerConfig, config_from_dict
from dreamer.envs import make_env, obs_names
from dreamer.plotting import plot_video_strip, write_video_gif

SCRIPTS = {
    "CartPole-v1": "02_dreamer_cartpole.py",
    "Pendulum-v1": "03_dreamer_pendulum.py",
    "Acrobot-v1": "05_dreamer_acrobot.py",
    "LunarLander-v3": "06_dreamer_lunar_lander.py",
}


def parse_args() -> argparse.Namespace:
    p = OneLineParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="CartPole-v1")
    p.add_argument("--checkpoint", help="agent checkpoint (latest.pt or best.pt of a run)")
    p.add_argument("--episodes", type=int, default=8, help="real episodes for t-SNE")
    p.add_argument("--context", type=int, default=5)
    p.add_argument("--horizon", type=int, default=50)
    p.add_argument("--gif-steps", type=int, default=150)
    p.add_argument("--outdir", help="default: beside the checkpoint")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def find_checkpoint(args: argparse.Namespace) -> str:
    script = SCRIPTS.get(args.env, f"python -m dreamer --env {args.env}")
    if args.checkpoint:
        if not os.path.isfile(args.checkpoint):
            raise FileNotFoundError(f"checkpoint {args.checkpoint} not found: train with {script}")
        return args.checkpoint
    found = sorted(
        glob.glob(os.path.join("runs", args.env, "*", "latest.pt")), key=os.path.getmtime
    )
    if not found:
        raise FileNotFoundError(f"no checkpoint for {args.env} under runs/: train it with {script}")
    return found[-1]


def load_agent(path: str) -> tuple[dict, DreamerConfig, str | None]:
    state = load_checkpoint_file(path)
    if isinstance(state, dict) and "agent" in state:  # a run checkpoint (latest.pt)
        env_id, state = state["env_id"], state["agent"]
    else:
        env_id = None
    if not isinstance(state, dict) or "config" not in state:
        raise ValueError(f"{path} is not a dreamer checkpoint")
    config = config_from_dict(DreamerConfig, state["config"])
    return state, config, env_id


def sees_images(state: dict) -> bool:
    """Image or Dict observations (`envs.space_info`: obs_dim None), not one vector."""
    return state.get("spaces", {}).get("obs_dim", 0) is None


def play(agent: DreamerAgent, env, seed: int) -> tuple[dict, np.ndarray, np.ndarray]:
    """One episode acting as evaluation does (`train.eval_policy`); returns it plus posterior
    feats and values."""
    feats, values, holder = [], [], {"state": None}
    explore = agent.config.train.eval_policy == "sample"

    def policy(obs, is_first):
        action, holder["state"] = agent.policy(obs, holder["state"], [is_first], explore=explore)
        feat = holder["state"][0].feat
        feats.append(feat[0].numpy())
        values.append(agent.value_twohot.decode_logits(agent.critic(feat))[0].item())
        return action[0].numpy()

    with torch.no_grad():
        episode = collect_episode(env, policy, seed, np.random.default_rng(seed))
    return episode, np.asarray(feats), np.asarray(values)


def describe_endings(played: list) -> list[str]:
    """One line per episode: length, how it ended, the last observation, the critic's values.

    A time-limit episode was truncated, not terminated; the last observation of a terminated one
    tells which limit it crossed (CartPole: cart position obs[0] beyond +-2.4, or pole angle
    obs[2] beyond +-0.21 rad).
    """
    lines = []
    for i, (ep, _, values) in enumerate(played):
        ended = "terminated" if ep["is_terminal"][-1] else "time limit"
        last = ""  # an image agent's observation is no line of numbers
        if "obs" in ep and ep["obs"].dtype != np.uint8:
            last = f" last obs {np.array2string(ep['obs'][-1], precision=2, suppress_small=True)},"
        lines.append(
            f"episode {i}: {len(ep['action']) - 1} steps, {ended},{last} "
            f"value first/last {values[0]:.1f}/{values[-1]:.1f}"
        )
    return lines


def plot_tsne(feats, steps, values, obs, obs_name, path, seed):
    from sklearn.manifold import TSNE

    perplexity = min(30.0, max(2.0, (len(feats) - 1) / 3))
    xy = TSNE(perplexity=perplexity, random_state=seed, init="pca").fit_transform(feats)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for ax, color, name in zip(
        axes, [steps, values, obs], ["time step", "value", obs_name], strict=True
    ):
        sc = ax.scatter(xy[:, 0], xy[:, 1], c=color, s=4, cmap="viridis")
        fig.colorbar(sc, ax=ax)
        ax.set_title(f"posterior states coloured by {name}")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_dream(out, context, path, title, names):
    dims = out["obs_real"].shape[1]
    fig, axes = plt.subplots(1, dims, figsize=(3.2 * dims, 3), squeeze=False)
    steps = np.arange(context, context + len(out["obs_real"]))
    for d, ax in enumerate(axes[0]):
        ax.plot(steps, out["obs_real"][:, d], "k-", label="real")
        ax.plot(steps, out["obs_pred"][:, d], "C1--", label="imagined")
        ax.set_title(names[d])
        ax.set_xlabel("time step")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def write_gif(frames, out, context, path, names, fps=20):
    """Rendered frames on the left; real vs dreamed observation curves on the right."""
    n = min(len(frames) - context, len(out["obs_real"]))
    fig, (ax_img, ax_obs) = plt.subplots(1, 2, figsize=(9, 3.5))
    image = ax_img.imshow(frames[context])
    ax_img.axis("off")
    steps = np.arange(n)
    lines = []
    for d in range(out["obs_real"].shape[1]):
        (real,) = ax_obs.plot([], [], color=f"C{d}", lw=1.5, label=f"{names[d]} real")
        (pred,) = ax_obs.plot([], [], color=f"C{d}", lw=1.5, ls="--")
        lines.append((real, pred, d))
    ax_obs.set_xlim(0, n)
    both = np.concatenate([out["obs_real"][:n], out["obs_pred"][:n]])
    ax_obs.set_ylim(both.min() - 0.1, both.max() + 0.1)
    ax_obs.set_title("real (solid) vs dreamed (dashed)")
    ax_obs.legend(fontsize=7, loc="upper left")

    def update(i):
        image.set_data(frames[context + i])
        for real, pred, d in lines:
            real.set_data(steps[: i + 1], out["obs_real"][: i + 1, d])
            pred.set_data(steps[: i + 1], out["obs_pred"][: i + 1, d])
        return [image]

    FuncAnimation(fig, update, frames=n, blit=False).save(path, writer=PillowWriter(fps=fps))
    plt.close(fig)


def visualize_images(agent, played, env_id, args, outdir) -> list[str]:
    """The image agent's figures: t-SNE, the video strip and GIF; returns the names written."""
    feats = np.concatenate([f for _, f, _ in played])
    steps = np.concatenate([np.arange(len(f)) for _, f, _ in played])
    values = np.concatenate([v for _, _, v in played])
    episodes = np.concatenate([np.full(len(f), i) for i, (_, f, _) in enumerate(played)])
    plot_tsne(
        feats, steps, values, episodes, "episode", os.path.join(outdir, "tsne.png"), args.seed
    )
    episode = max((ep for ep, _, _ in played), key=lambda ep: len(ep["action"]))
    context = min(args.context, len(episode["action"]) - 1)
    horizon = min(max(args.horizon, args.gif_steps), len(episode["action"]) - context)
    video = open_loop_images(agent.world_model, episode, 0, context, horizon)
    strip = {**video, **{k: video[k][: context + min(args.horizon, horizon)]
                         for k in ("true", "dreamed", "error")}}  # fmt: skip
    plot_video_strip(
        strip,
        os.path.join(outdir, "open_loop.png"),
        f"{env_id}: {context} frames seen, then dreamed open loop on the real actions",
    )
    gif = {**video, **{k: video[k][: context + min(args.gif_steps, horizon)]
                       for k in ("true", "dreamed", "error")}}  # fmt: skip
    write_video_gif(gif, os.path.join(outdir, "open_loop.gif"))
    return ["tsne.png", "open_loop.png", "open_loop.gif"]


def main() -> int:
    args = parse_args()
    if args.quick:
        args.episodes, args.horizon, args.gif_steps = 2, 20, 25
    try:
        path = find_checkpoint(args)
        state, config, env_id = load_agent(path)
        env_id = env_id or args.env
        images = sees_images(state)
        # an image agent's env is wrapped as in training (frames, resize, gray, action repeat)
        env_config = config.env if images else None
        env = make_env(env_id, args.seed, render_mode="rgb_array", config=env_config)
        agent = DreamerAgent(env.observation_space, env.action_space, config)
        try:
            agent.load_checkpoint_state(state)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from exc
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    agent.eval()
    outdir = args.outdir or os.path.dirname(os.path.abspath(path))
    os.makedirs(outdir, exist_ok=True)
    torch.manual_seed(args.seed)
    played = [play(agent, env, args.seed + i) for i in range(args.episodes)]
    returns = [float(ep["reward"].sum()) for ep, _, _ in played]
    print(f"{env_id}: {len(played)} episodes, returns {np.round(returns, 1).tolist()}")
    print("\n".join(describe_endings(played)))
    if images:
        written = visualize_images(agent, played, env_id, args, outdir)
        print(f"wrote {', '.join(written)} in {outdir}")
        return 0
    feats = np.concatenate([f for _, f, _ in played])
    steps = np.concatenate([np.arange(len(f)) for _, f, _ in played])
    values = np.concatenate([v for _, _, v in played])
    names = obs_names(env_id, played[0][0]["obs"].shape[1])
    obs_dim = 2 if len(names) > 2 else 0  # CartPole: pole angle
    obs = np.concatenate([ep["obs"][: len(f), obs_dim] for ep, f, _ in played])
    tsne_path = os.path.join(outdir, "tsne.png")
    plot_tsne(feats, steps, values, obs, names[obs_dim], tsne_path, args.seed)

    episode = max((ep for ep, _, _ in played), key=lambda ep: len(ep["obs"]))
    horizon = min(args.horizon, len(episode["obs"]) - args.context)
    out = open_loop(agent.world_model, episode, 0, args.context, horizon)
    plot_dream(
        out,
        args.context,
        os.path.join(outdir, "dream.png"),
        f"{env_id}: imagined vs real, same start and actions",
        names,
    )

    gif_len = min(args.gif_steps, len(episode["obs"]) - args.context)
    gif_out = open_loop(agent.world_model, episode, 0, args.context, gif_len)
    gif_path = os.path.join(outdir, "episode.gif")
    write_gif(episode["frames"], gif_out, args.context, gif_path, names)
    print(f"wrote tsne.png, dream.png, episode.gif in {outdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
