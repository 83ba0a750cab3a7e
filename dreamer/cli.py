"""Command line shared by the numbered scripts, `python -m dreamer --env <id>` and the installed
`dreamer --env <id>` command.

Errors from bad input (unknown flag or config key, a value out of range, unknown env, unsupported
space, bad device, foreign checkpoint, ...) and failures to write the run directory (a full disk)
print one line, `error: ...`, and exit with status 2, never a traceback. docs/robustness.md lists
what counts as bad input and what a killed or resumed run does.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shlex
import sys
from typing import Any, NoReturn

from .config import RECIPES, ConfigError, DreamerConfig, apply_recipe, override, validate
from .threads import parse_threads


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
            # images only: 32x32 frames (three conv stages) and the official debug config's
            # depth 8, so a pixel run stays a minute-long tour on a CPU too
            "env.image_size": 32,
            "world_model.cnn.depth": 8,
        },
    )


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line on stderr (no usage block) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see --help)\n")


def _type(parse: Any, name: str) -> Any:
    """An argparse type from a function raising ValueError, keeping its one-line message."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = name
    return convert


def _seed(text: str) -> int:
    """A seed: numpy and gymnasium reject negative ones."""
    if not text.isdigit():
        raise ValueError(f"seed must be an integer >= 0, got {text!r}")
    return int(text)


def build_parser(description: str, env_id: str | None) -> argparse.ArgumentParser:
    p = OneLineParser(description=description)
    p.add_argument(
        "--env",
        default=env_id,
        required=env_id is None,
        help="gymnasium env id, or module:id to import the module that registers it first",
    )
    p.add_argument("--steps", type=int, help="environment steps (default: the script's budget)")
    p.add_argument("--seed", type=_type(_seed, "seed"), default=0)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--logdir", help="run directory (default runs/<env>/<name>-seed<k>)")
    p.add_argument("--resume", action="store_true", help="continue from <logdir>/latest.pt")
    p.add_argument("--quick", action="store_true", help="one-minute run exercising everything")
    p.add_argument(
        "--recipe",
        choices=sorted(RECIPES),
        help="learning recipe over the script's config: 2025 = the official current code's "
        "(config.RECIPE_2025); sizes, steps and evaluation stay the script's",
    )
    p.add_argument("--precision", choices=["fp32", "bf16"], help="bf16 = autocast")
    p.add_argument("--train-ratio", type=float, help="replayed steps per env step")
    p.add_argument("--deter", type=int, help="GRU units")
    p.add_argument("--stoch", type=int, help="number of categorical latents G")
    p.add_argument("--classes", type=int, help="classes per latent K")
    p.add_argument("--units", type=int, help="hidden units of every MLP")
    p.add_argument(
        "--pixels",
        action="store_true",
        help="observe rendered 64x64 frames instead of the env's observation (env.obs)",
    )
    p.add_argument("--gray", action="store_true", help="grayscale images (env.color)")
    p.add_argument("--action-repeat", type=int, help="apply each action N times (env)")
    p.add_argument(
        "--envs",
        type=int,
        help="parallel environments, stepped together in subprocesses (train.envs)",
    )
    p.add_argument("--batch-size", type=int)
    p.add_argument("--seq-len", type=int)
    p.add_argument(
        "--threads",
        type=_type(parse_threads, "threads"),
        default="auto",
        help="torch CPU threads: a number, or auto (default) = 1 or all cores, whichever is "
        "faster now; see docs/robustness.md",
    )
    p.add_argument(
        "--set",
        nargs="+",
        action="extend",  # `--set a=1 b=2` and `--set a=1 --set b=2` both keep both
        default=[],
        metavar="KEY=VALUE",
        help="any config field, e.g. actor_critic.entropy=1e-3 (JSON values)",
    )
    p.add_argument(
        "--compile",
        nargs="?",
        const="steps",
        choices=["steps", "losses"],
        help="torch.compile the RSSM's loop bodies (steps, the default) or both whole losses "
        "(inductor); see docs/scale.md",
    )
    p.add_argument(
        "--cuda-graph",
        action="store_true",
        help="record the whole update as one CUDA graph and replay it (GPU only)",
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def apply_args(config: DreamerConfig, args: argparse.Namespace) -> DreamerConfig:
    """Script config + command-line overrides -> the run's config."""
    config = copy.deepcopy(config)
    validate(config)  # the script's own defaults
    if args.recipe is not None:  # before --quick and the flags, which may shrink it further
        apply_recipe(config, args.recipe)
    if args.quick:
        quick(config)
    flags: dict[str, tuple[Any, tuple[str, ...]]] = {
        "--steps": (args.steps, ("train.steps",)),
        "--precision": (args.precision, ("train.precision",)),
        "--train-ratio": (args.train_ratio, ("train.train_ratio",)),
        "--deter": (args.deter, ("world_model.rssm.deter",)),
        "--stoch": (args.stoch, ("world_model.rssm.stoch",)),
        "--classes": (args.classes, ("world_model.rssm.classes",)),
        "--units": (
            args.units,
            ("world_model.rssm.units", "world_model.units", "actor_critic.units"),
        ),
        "--pixels": ("pixels" if args.pixels else None, ("env.obs",)),
        "--gray": ("gray" if args.gray else None, ("env.color",)),
        "--action-repeat": (args.action_repeat, ("env.action_repeat",)),
        "--envs": (args.envs, ("train.envs",)),
        "--batch-size": (args.batch_size, ("replay.batch_size",)),
        "--seq-len": (args.seq_len, ("replay.seq_len",)),
    }
    for flag, (value, keys) in flags.items():
        if value is None:
            continue
        try:
            override(config, **dict.fromkeys(keys, value))
        except ConfigError as exc:
            raise ConfigError(f"{flag} {value}: {exc}") from None
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set expects KEY=VALUE, got '{item}'")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value  # a bare word: a string choice such as bf16
        override(config, **{key: parsed})
    return validate(config)  # cross-field rules, on the final values


def main(
    argv: list[str] | None = None,
    env_id: str | None = None,
    config: DreamerConfig | None = None,
    description: str = "Train DreamerV3 on a gymnasium environment.",
) -> int:
    """Parse flags, train, print a summary. Returns the process exit status."""
    try:
        args = build_parser(description, env_id).parse_args(argv)
    except SystemExit as exc:  # --help (0) or a bad flag (2, its line already printed)
        return int(exc.code or 0)
    try:
        return _run(args, config or DreamerConfig())
    except (ValueError, RuntimeError, OSError) as exc:  # OSError: a full disk, no permission
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2


def _one_line(exc: BaseException) -> str:
    """The message of `exc` on one line; an OSError as 'reason: file', without '[Errno N]'."""
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror + (f": {exc.filename}" if exc.filename else "")
    else:
        text = str(exc)
    return " ".join(text.split())


def console_main() -> None:
    """The installed `dreamer` command: `python -m dreamer`, with the same import path."""
    # `python -m` puts the current folder on sys.path, a console script does not: without it,
    # `--env my_envs:MyEnv-v0` could not import my_envs.py from where the user runs it.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    sys.exit(main())


def run_name(config: DreamerConfig, quick: bool) -> str:
    """The default run directory's name, runs/<env>/<name>-seed<k>: 'default' or 'quick', and
    'pixels' / 'pixels-quick' from frames, so the env's vector run is never overwritten."""
    name = "quick" if quick else "default"
    if config.env.obs == "pixels":
        name = "pixels" if name == "default" else "pixels-quick"
    return name


def _run(args: argparse.Namespace, config: DreamerConfig) -> int:
    from . import distributed
    from .train import Trainer

    config = apply_args(config, args)
    name = run_name(config, args.quick)
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
        threads=args.threads,
        compile=args.compile,
        cuda_graph=args.cuda_graph,
    )
    finished = False
    try:
        result = trainer.run()
        finished = True
    finally:
        distributed.shutdown(finished)  # an error skips the wait: a peer may never come
    if not trainer.is_main:
        return 0
    print(
        f"{args.env} seed {args.seed}: {result.env_steps} env steps, {result.updates} updates, "
        f"{result.wall_time:.0f} s; final eval {result.final_eval}, best {result.best_eval}, "
        f"threshold reached at {result.steps_to_threshold}; logdir {result.logdir}"
    )
    if result.ranks > 1:
        print(f"data parallel: {result.ranks} ranks, parameters identical on all of them")
    return 0
