"""Command line shared by the numbered scripts, `python -m dreamer --env <id>` and the installed
`dreamer --env <id>` command.

Errors from bad input (unknown env, unsupported space, bad device, foreign checkpoint, ...)
print one line and exit with status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shlex
import sys
from typing import Any

from .config import DreamerConfig, override


def quick(config: DreamerConfig) -> DreamerConfig:
    """A one-minute run that exercises every part of the loop (tiny model, few steps)."""
    return override(
        config,
        **{
            "train.steps": 1_200,
            "train.prefill": 300,
            "train.eval_every": 600,
            "train.eval_episodes": 2,
            "train.log_every": 200,
            "train.checkpoint_every": 600,
            "train.train_ratio": 32,
            "replay.batch_size": 8,
            "replay.seq_len": 16,
            "world_model.rssm.deter": 64,
            "world_model.rssm.stoch": 8,
            "world_model.rssm.classes": 8,
            "world_model.rssm.units": 64,
            "world_model.units": 64,
            "actor_critic.units": 64,
            "actor_critic.horizon": 8,
        },
    )


def build_parser(description: str, env_id: str | None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--env",
        default=env_id,
        required=env_id is None,
        help="gymnasium env id, or module:id to import the module that registers it first",
    )
    p.add_argument("--steps", type=int, help="environment steps (default: the script's budget)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--logdir", help="run directory (default runs/<env>/<name>-seed<k>)")
    p.add_argument("--resume", action="store_true", help="continue from <logdir>/latest.pt")
    p.add_argument("--quick", action="store_true", help="one-minute run exercising everything")
    p.add_argument("--precision", choices=["fp32", "bf16"], help="bf16 = autocast")
    p.add_argument("--train-ratio", type=float, help="replayed steps per env step")
    p.add_argument("--deter", type=int, help="GRU units")
    p.add_argument("--stoch", type=int, help="number of categorical latents G")
    p.add_argument("--classes", type=int, help="classes per latent K")
    p.add_argument("--units", type=int, help="hidden units of every MLP")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--seq-len", type=int)
    p.add_argument("--threads", type=int, help="torch CPU threads (default: all cores)")
    p.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="any config field, e.g. actor_critic.entropy=1e-3 (JSON values)",
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def apply_args(config: DreamerConfig, args: argparse.Namespace) -> DreamerConfig:
    """Script config + command-line overrides -> the run's config."""
    config = copy.deepcopy(config)
    if args.quick:
        quick(config)
    changes: dict[str, Any] = {
        "train.steps": args.steps,
        "train.precision": args.precision,
        "train.train_ratio": args.train_ratio,
        "world_model.rssm.deter": args.deter,
        "world_model.rssm.stoch": args.stoch,
        "world_model.rssm.classes": args.classes,
        "replay.batch_size": args.batch_size,
        "replay.seq_len": args.seq_len,
    }
    if args.units is not None:
        for key in ("world_model.rssm.units", "world_model.units", "actor_critic.units"):
            changes[key] = args.units
    override(config, **{k: v for k, v in changes.items() if v is not None})
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set expects KEY=VALUE, got '{item}'")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        override(config, **{key: parsed})
    return config


def main(
    argv: list[str] | None = None,
    env_id: str | None = None,
    config: DreamerConfig | None = None,
    description: str = "Train DreamerV3 on a gymnasium environment.",
) -> int:
    """Parse flags, train, print a summary. Returns the process exit status."""
    args = build_parser(description, env_id).parse_args(argv)
    try:
        return _run(args, config or DreamerConfig())
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def console_main() -> None:
    """The installed `dreamer` command: `python -m dreamer`, with the same import path."""
    # `python -m` puts the current folder on sys.path, a console script does not: without it,
    # `--env my_envs:MyEnv-v0` could not import my_envs.py from where the user runs it.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    sys.exit(main())


def _run(args: argparse.Namespace, config: DreamerConfig) -> int:
    import torch

    from .train import Trainer

    if args.threads:
        torch.set_num_threads(args.threads)
    config = apply_args(config, args)
    name = "quick" if args.quick else "default"
    logdir = args.logdir or os.path.join("runs", args.env, f"{name}-seed{args.seed}")
    if args.resume and not os.path.exists(os.path.join(logdir, "latest.pt")):
        raise FileNotFoundError(f"nothing to resume: {logdir}/latest.pt does not exist")
    command = " ".join(shlex.quote(a) for a in [sys.executable.split("/")[-1], *sys.argv])
    trainer = Trainer(
        args.env,
        config,
        logdir,
        seed=args.seed,
        device=args.device,
        resume=args.resume,
        command=command,
        progress=not args.no_progress,
    )
    result = trainer.run()
    print(
        f"{args.env} seed {args.seed}: {result.env_steps} env steps, {result.updates} updates, "
        f"{result.wall_time:.0f} s; final eval {result.final_eval}, best {result.best_eval}, "
        f"threshold reached at {result.steps_to_threshold}; logdir {result.logdir}"
    )
    return 0
