"""Benchmark one training update on synthetic data: `python -m dreamer.bench [--preset xs]`.

Prints one JSON line: parameters, median / p90 ms per update, the split world model /
imagination / actor-critic, updates per second, FLOPs per update and achieved FLOP/s, peak RSS,
torch version, threads, device and precision. Presets: `xs` (sheeprl's smallest DreamerV3:
deter 256, 32x32 latents, units 256, batch 16 x 64, horizon 15) and one per numbered script.
`--contention` times every script preset at 1 thread, all cores and `auto`, idle and beside a
busy process (dreamer/threads.py). `--collect --envs N` times collection instead: env steps per
second while the policy acts in the preset's real env, N envs in subprocesses, no training.
`--replay N` times replay alone: one batch drawn from N stored steps, uniformly and by priority.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from .agent import DreamerAgent, last_steps
from .config import DreamerConfig, RSSMConfig
from .envs import resolve_device
from .threads import ThreadTuner, parse_threads
from .utils import plain_maths

BENCH_START, BENCH_END = "<!-- BENCH:START -->", "<!-- BENCH:END -->"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# preset -> (script file, config function, obs dim or image shape, action dim, discrete)
SCRIPT_PRESETS = {
    "cartpole": ("02_dreamer_cartpole.py", "cartpole_config", 4, 2, True),
    "pendulum": ("03_dreamer_pendulum.py", "pendulum_config", 3, 1, False),
    "acrobot": ("05_dreamer_acrobot.py", "acrobot_config", 6, 3, True),
    "lunar": ("06_dreamer_lunar_lander.py", "lunar_lander_config", 8, 4, True),
    "pixels": ("07_dreamer_pixels.py", "pixels_config", (64, 64, 1), 2, True),
}

# the env each script preset trains on, for --collect
PRESET_ENVS = {"cartpole": "CartPole-v1", "pendulum": "Pendulum-v1", "acrobot": "Acrobot-v1",
               "lunar": "LunarLander-v3", "pixels": "CartPole-v1"}  # fmt: skip


def xs_config() -> DreamerConfig:
    config = DreamerConfig()
    config.world_model.rssm = RSSMConfig(deter=256, stoch=32, classes=32, units=256)
    config.world_model.units = config.actor_critic.units = 256
    config.replay.batch_size, config.replay.seq_len = 16, 64
    config.actor_critic.horizon = 15
    return config


def size12m_config() -> DreamerConfig:
    """The official code's 12M size (deter 2048, hidden and units 256, 16 classes) at xs's
    batch and horizon. Its GRU is one dense cell, not the current code's 8 blocks, so it has
    more parameters than 12M (the JSON line counts them)."""
    config = xs_config()
    config.world_model.rssm = RSSMConfig(deter=2048, stoch=32, classes=16, units=256)
    return config


def cpu_has_amx() -> bool:
    """Whether the CPU has AMX tiles: without them bf16 matmuls are no faster than fp32 here."""
    try:
        with open("/proc/cpuinfo") as f:
            return "amx_bf16" in f.read()
    except OSError:
        return False


def script_config(preset: str) -> tuple[DreamerConfig, int | tuple, int, bool]:
    path, fn, obs_dim, action_dim, discrete = SCRIPT_PRESETS[preset]
    spec = importlib.util.spec_from_file_location(f"script_{preset}", os.path.join(ROOT, path))
    if spec is None or not os.path.exists(os.path.join(ROOT, path)):
        raise ValueError(f"preset '{preset}' needs {path} in {ROOT}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, fn)(), obs_dim, action_dim, discrete


def spaces(obs_dim: int | tuple, action_dim: int, discrete: bool) -> tuple:
    """Observation and action spaces: a vector of obs_dim, or uint8 images of shape obs_dim."""
    from gymnasium import spaces as s

    if isinstance(obs_dim, tuple):
        obs = s.Box(0, 255, obs_dim, np.uint8)
    else:
        obs = s.Box(-np.inf, np.inf, (obs_dim,), np.float32)
    act = s.Discrete(action_dim) if discrete else s.Box(-1.0, 1.0, (action_dim,), np.float32)
    return obs, act


def synthetic_batch(
    config: DreamerConfig, obs_dim: int | tuple, action_dim: int, discrete: bool
) -> dict:
    rng = np.random.default_rng(0)
    B, T = config.replay.batch_size, config.replay.seq_len
    if discrete:
        action = np.eye(action_dim, dtype=np.float32)[rng.integers(action_dim, size=(B, T))]
    else:
        action = rng.uniform(-1, 1, (B, T, action_dim)).astype(np.float32)
    is_first = np.zeros((B, T), bool)
    is_first[:, 0] = True
    if isinstance(obs_dim, tuple):  # uint8 frames (B, T, H, W, C)
        obs = rng.integers(0, 256, (B, T, *obs_dim), dtype=np.uint8)
    else:
        obs = rng.normal(size=(B, T, obs_dim)).astype(np.float32)
    return {
        "obs": obs,
        "action": action,
        "prev_action": np.concatenate([np.zeros_like(action[:, :1]), action[:, :-1]], 1),
        "reward": rng.normal(size=(B, T)).astype(np.float32),
        "is_first": is_first,
        "is_terminal": np.zeros((B, T), bool),
        "is_last": np.zeros((B, T), bool),
    }


def _profile(agent: DreamerAgent, batch: dict, updates: int = 3) -> dict:
    """torch.profiler over a few updates: the ops by self time to stderr; on a GPU also the
    kernels per update and their summed run time (what a CUDA graph cannot remove)."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    cuda = agent.device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        for _ in range(updates):
            agent.train_step(batch)
        if cuda:
            torch.cuda.synchronize()
    averages = prof.key_averages()
    table = averages.table(sort_by="self_cpu_time_total", row_limit=15)
    # Op calls are deterministic where timings on a shared machine are not: a per-op-overhead
    # change shows here even when the wall-clock gain is inside the noise.
    calls = sum(e.count for e in averages if e.key.startswith("aten::")) // updates
    print(f"profile of {updates} updates ({calls} aten calls per update, nested included):",
          file=sys.stderr)  # fmt: skip
    print(table, file=sys.stderr)
    result = {"aten_calls_per_update": calls}
    if cuda:
        kernels = [e for e in prof.events() if e.device_type == DeviceType.CUDA]
        busy_us = sum(e.time_range.elapsed_us() for e in kernels)
        result["gpu_kernels_per_update"] = len(kernels) // updates
        result["gpu_kernel_ms_per_update"] = round(busy_us / updates / 1000.0, 2)
    return result


def _timed(fn: object, sync: object) -> float:
    start = time.perf_counter()
    fn()
    sync()
    return (time.perf_counter() - start) * 1000.0


def preset_config(args: argparse.Namespace) -> tuple[DreamerConfig, int | tuple, int, bool]:
    """The preset's config with the size flags applied, its obs dim (or image shape), action
    dim and whether actions are discrete."""
    if args.preset in ("xs", "12m"):
        config = xs_config() if args.preset == "xs" else size12m_config()
        obs_dim, action_dim, discrete = args.obs_dim, args.action_dim, not args.continuous
    elif args.preset in SCRIPT_PRESETS:
        config, obs_dim, action_dim, discrete = script_config(args.preset)
    else:
        config, obs_dim, action_dim = DreamerConfig(), args.obs_dim, args.action_dim
        discrete = not args.continuous
    c = config
    for key, value in [("deter", args.deter), ("stoch", args.stoch), ("classes", args.classes)]:
        if value is not None:
            setattr(c.world_model.rssm, key, value)
    if args.units is not None:
        c.world_model.rssm.units = c.world_model.units = c.actor_critic.units = args.units
    if args.layers is not None:
        c.world_model.layers = c.actor_critic.layers = args.layers
    if args.batch is not None:
        c.replay.batch_size = args.batch
    if args.seq_len is not None:
        c.replay.seq_len = args.seq_len
    if args.horizon is not None:
        c.actor_critic.horizon = args.horizon
    if args.imag_last is not None:
        c.actor_critic.imag_last = args.imag_last
    c.train.precision = args.precision
    return c, obs_dim, action_dim, discrete


def build(args: argparse.Namespace) -> tuple[DreamerAgent, dict, DreamerConfig, torch.device]:
    """The preset's agent (with the size flags applied) and a synthetic batch on its device."""
    torch.manual_seed(0)
    c, obs_dim, action_dim, discrete = preset_config(args)
    device = resolve_device(args.device)
    agent = DreamerAgent(
        *spaces(obs_dim, action_dim, discrete), c, device, args.compile, args.cuda_graph
    )
    batch = agent.batch_to_torch(synthetic_batch(c, obs_dim, action_dim, discrete))
    return agent, batch, c, device


def _warmed_up_update(
    agent: DreamerAgent, batch: dict, tuner: ThreadTuner | None, warmup: int
) -> Callable[[], None]:
    """One training update (through the thread tuner if any), after `warmup` of them.

    With a tuner its first probe (1 + 2 x 2 updates) is warm-up too: a real run pays it once,
    and later probes at most once per 15 s (dreamer/threads.py).
    """

    def update() -> None:
        if tuner is None:
            agent.train_step(batch)
        else:
            tuner.run(agent.train_step, batch)

    for _ in range(warmup + (tuner.settle_updates if tuner else 0)):
        update()
    return update


def run(args: argparse.Namespace) -> dict:
    tuner = ThreadTuner() if args.threads == "auto" else None
    if isinstance(args.threads, int):
        torch.set_num_threads(args.threads)
    agent, batch, c, device = build(args)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    first_ms = _timed(lambda: agent.train_step(batch), sync)  # with --compile: compiling
    update = _warmed_up_update(agent, batch, tuner, args.warmup)
    sync()
    totals = [_timed(update, sync) for _ in range(args.updates)]
    profile = _profile(agent, batch) if args.profile else {}

    # The split: the world-model step alone, then imagination alone; actor-critic is the rest.
    def world_model_step() -> None:
        with agent.autocast():
            loss, _, posts, _ = agent.world_model_loss_fn(batch)
        agent.step_optimizer(agent.wm_opt, loss, c.world_model.grad_clip)
        kept, _ = last_steps(posts.detach(), batch, c.actor_critic.imag_last)
        world_model_step.start = kept.flatten()  # the update's own dream starts

    def imagination() -> None:
        with agent.autocast(), torch.no_grad():
            agent.imagine(world_model_step.start)

    wm_ms = [_timed(world_model_step, sync) for _ in range(max(3, args.updates // 3))]
    imag_ms = [_timed(imagination, sync) for _ in range(max(3, args.updates // 3))]
    median = statistics.median(totals)
    flops = count_flops(agent, batch)
    return {
        "preset": args.preset,
        "params": sum(p.numel() for p in agent.parameters()),
        "median_ms": round(median, 1),
        "p90_ms": round(float(np.percentile(totals, 90)), 1),
        "world_model_ms": round(statistics.median(wm_ms), 1),
        "imagination_ms": round(statistics.median(imag_ms), 1),
        # the split runs eager code: beside a replayed graph the difference means nothing
        "actor_critic_ms": None
        if agent.cuda_graph
        else round(median - statistics.median(wm_ms), 1),
        "updates_per_s": round(1000.0 / median, 2),
        "first_update_s": round(first_ms / 1000.0, 1),
        "compile": agent.compiled,
        "cuda_graph": agent.cuda_graph,
        "plain_maths": args.plain_maths,
        **profile,
        "gflop_per_update": round(flops / 1e9, 1),
        "achieved_gflop_s": round(flops / 1e9 / (median / 1000.0), 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "torch": torch.__version__,
        "threads": "auto" if tuner else torch.get_num_threads(),
        "cpu_amx": cpu_has_amx(),
        "device": str(device),
        "precision": args.precision,
        "sizes": {
            "deter": c.world_model.rssm.deter,
            "stoch": c.world_model.rssm.stoch,
            "classes": c.world_model.rssm.classes,
            "units": c.world_model.units,
            "layers": c.world_model.layers,
            "batch": c.replay.batch_size,
            "seq_len": c.replay.seq_len,
            "horizon": c.actor_critic.horizon,
            "imag_last": c.actor_critic.imag_last,
            "actor_grad": agent.actor_grad,
        },
    }


def _time_parts(trainer: Any) -> dict:
    """Wrap the policy and the env step (one env's, or the vector env's: send the actions, wait
    for all N) in timers; returns the dict of seconds they add to."""
    seconds = {"policy": 0.0, "env": 0.0}

    def timed(fn: Callable, part: str) -> Callable:
        def call(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                seconds[part] += time.perf_counter() - start

        return call

    trainer.agent.policy = timed(trainer.agent.policy, "policy")
    if trainer.vector_env is not None:
        trainer.vector_env.step = timed(trainer.vector_env.step, "env")
    else:
        trainer.env.step = timed(trainer.env.step, "env")
    return seconds


def collect(args: argparse.Namespace) -> dict:
    """Env steps per second of the training loop's own collection step (`Trainer.collect`:
    `--envs N` envs, one batched policy pass, replay writes) with the preset's config and env,
    the policy acting from the first step, no updates; timed after `--warmup` vector steps."""
    from .train import Trainer

    if args.preset not in PRESET_ENVS:
        raise ValueError(f"--collect needs a script preset ({', '.join(PRESET_ENVS)})")
    config = script_config(args.preset)[0]
    config.train.envs, config.train.prefill = args.envs, 0  # the policy acts from the start
    config.train.steps = 10**9  # never reached: collect() is called directly
    with tempfile.TemporaryDirectory() as logdir:
        trainer = Trainer(PRESET_ENVS[args.preset], config, logdir, device=args.device,
                          progress=False, threads=args.threads)  # fmt: skip
        trainer.start_episodes()
        parts = _time_parts(trainer) if args.parts else None
        try:
            for _ in range(args.warmup):
                trainer.collect()
            if parts:
                parts.update(policy=0.0, env=0.0)
            start, steps = time.perf_counter(), 0
            while steps < args.collect_steps:
                steps += trainer.collect()
            seconds = time.perf_counter() - start
        finally:
            trainer.close_envs()
    if parts:  # ms per vector step of all N envs
        per = 1e3 * args.envs / steps
        parts = {"policy_ms": round(parts["policy"] * per, 2),
                 "env_wait_ms": round(parts["env"] * per, 2),
                 "rest_ms": round((seconds - parts["policy"] - parts["env"]) * per, 2)}  # fmt: skip
    return {
        "mode": "collect",
        "preset": args.preset,
        "env": PRESET_ENVS[args.preset],
        "envs": args.envs,
        "env_steps": steps,
        "seconds": round(seconds, 2),
        "env_steps_per_s": round(steps / seconds, 1),
        **(parts or {}),
        "episodes": trainer.episodes,
        "obs": config.env.obs,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_cores": os.cpu_count(),
        "load_avg_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "device": str(trainer.device),
    }


def replay_timing(args: argparse.Namespace) -> dict:
    """ms per batch drawn from a replay of `args.replay` stored steps (the preset's observation,
    batch and window): uniform; prioritized (`--priority-frac` of the windows by priority, from
    the sum tree, the losses written back as in training); and the same prioritized draws by the
    plain maths (`window_probs` over all of replay for every window drawn)."""
    from .replay_buffer import SequenceReplayBuffer, window_probs

    if not 0 < args.priority_frac <= 1:
        raise ValueError(f"--priority-frac must be in (0, 1], got {args.priority_frac}")
    config, obs_dim, action_dim, _ = preset_config(args)
    r = config.replay
    r.priority_frac = args.priority_frac
    T, rng = r.seq_len, np.random.default_rng(0)
    buf = SequenceReplayBuffer(max(args.replay, T), T)
    if isinstance(obs_dim, tuple):
        obs = np.zeros(obs_dim, np.uint8)
    else:
        obs = np.zeros(obs_dim, np.float32)
    for _ in range(buf.capacity):
        buf.add(obs, np.zeros(action_dim, np.float32), 0.0, False, False)
    buf.prioritize(np.arange(buf.capacity), rng.exponential(size=buf.capacity))
    drawn = round(r.batch_size * r.priority_frac)  # windows by priority per batch, on average
    plain = buf._priority[buf._physical(np.arange(len(buf)))].copy()  # oldest first

    def prioritized() -> None:
        batch = buf.sample(r.batch_size, rng, r)
        buf.prioritize(batch["step_id"], rng.exponential(size=batch["step_id"].shape))

    def plain_draws() -> None:
        for _ in range(drawn):
            probs = window_probs(plain, T, r.priority_exponent, r.priority_maxfrac)
            start = rng.choice(len(probs), p=probs)
            plain[start : start + T] = rng.exponential(size=T)  # as if its losses came back

    times = {}
    for name, fn in [("uniform", lambda: buf.sample(r.batch_size, rng)),
                     ("prioritized", prioritized), ("plain", plain_draws)]:  # fmt: skip
        for _ in range(args.warmup):
            fn()
        times[name] = statistics.median(_timed(fn, lambda: None) for _ in range(args.updates))
    return {
        "mode": "replay",
        "preset": args.preset,
        "stored_steps": len(buf),
        "bytes_per_step": buf.bytes_per_step(),
        "batch": r.batch_size,
        "seq_len": T,
        "priority_frac": r.priority_frac,
        "uniform_batch_ms": round(times["uniform"], 2),
        "prioritized_batch_ms": round(times["prioritized"], 2),
        "plain_prioritized_draws_ms": round(times["plain"], 2),
        "windows_by_priority": drawn,
        "cpu_cores": os.cpu_count(),
        "load_avg_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }


def count_flops(agent: DreamerAgent, batch: dict) -> int:
    """FLOPs of one update by torch's flop counter (matmuls and convolutions)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    # the eager update: a replayed CUDA graph or a compiled function dispatches no torch ops
    with agent.eager(), counter:
        agent.update(batch)
    return counter.get_total_flops()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="xs", choices=["xs", "12m", "default", *SCRIPT_PRESETS])
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--deter", type=int)
    p.add_argument("--stoch", type=int)
    p.add_argument("--classes", type=int)
    p.add_argument("--units", type=int)
    p.add_argument("--layers", type=int)
    p.add_argument("--batch", type=int)
    p.add_argument("--seq-len", type=int)
    p.add_argument("--horizon", type=int)
    p.add_argument("--imag-last", type=int, help="dream from the last K steps of each window")
    p.add_argument("--obs-dim", type=int, default=4)
    p.add_argument("--action-dim", type=int, default=2)
    p.add_argument("--continuous", action="store_true", help="Box actions (dynamics backprop)")
    p.add_argument(
        "--compile",
        nargs="?",
        const="steps",
        choices=["steps", "losses"],
        help="torch.compile the RSSM's loop bodies (steps, the default) or both whole losses",
    )
    p.add_argument("--cuda-graph", action="store_true", help="replay the update as a CUDA graph")
    p.add_argument(
        "--plain-maths", action="store_true", help="every speed trick off (utils.plain_maths)"
    )
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--updates", type=int, default=10)
    p.add_argument("--threads", type=_threads, help="a number or auto (dreamer/threads.py)")
    p.add_argument("--table", action="store_true", help="all presets -> README table")
    p.add_argument("--profile", action="store_true", help="also print torch.profiler's top ops")
    p.add_argument(
        "--contention",
        action="store_true",
        help="every script preset at 1 thread, all cores and auto, idle and beside --busy "
        "core-bound processes -> a table, and JSON lines in --out",
    )
    p.add_argument(
        "--collect",
        action="store_true",
        help="env steps/s while the policy acts in the preset's env (no training)",
    )
    p.add_argument("--envs", type=_positive, default=1, help="parallel envs for --collect")
    p.add_argument("--parts", action="store_true",
                   help="--collect: also time the policy and the wait for env steps")  # fmt: skip
    p.add_argument("--collect-steps", type=_positive, default=1000, help="env steps timed")
    p.add_argument("--replay", type=_positive, help="time replay draws from this many steps")
    p.add_argument("--priority-frac", type=float, default=0.5, help="for --replay")
    p.add_argument("--presets", nargs="*", choices=list(SCRIPT_PRESETS), help="for --contention")
    p.add_argument("--busy", type=int, default=1, help="busy processes under contention")
    p.add_argument("--out", default=os.path.join(ROOT, "results", "contention.jsonl"))
    return p


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return int(text)


def _threads(text: str) -> int | str:
    try:
        return parse_threads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def busy_processes(count: int) -> list[subprocess.Popen]:
    """`count` core-bound processes (a shell's `while :; do :; done`, in Python)."""
    procs = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL)
        for _ in range(count)
    ]
    time.sleep(1.0)  # let them reach full speed before timing
    return procs


def ms_per_update(agent: DreamerAgent, batch: dict, threads: int | str, args: argparse.Namespace,
                  max_threads: int) -> dict:  # fmt: skip
    """Median and mean ms of `args.updates` updates at `threads` (a count or 'auto')."""
    tuner = ThreadTuner(max_threads) if threads == "auto" else None
    if tuner is None:
        torch.set_num_threads(threads)

    update = _warmed_up_update(agent, batch, tuner, args.warmup)
    times = [_timed(update, lambda: None) for _ in range(args.updates)]
    return {
        "median_ms": round(statistics.median(times), 1),
        "mean_ms": round(statistics.fmean(times), 1),
        "threads_used": tuner.threads if tuner else threads,
    }


def contention(args: argparse.Namespace) -> str:
    """ms/update of each script preset at 1 thread, all cores and auto; idle, then beside
    `args.busy` busy processes. JSON lines to `args.out`, a markdown table back."""
    max_threads = torch.get_num_threads()  # torch's default: one per core
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if load > 0.5:  # the 'idle' column would not be idle
        print(f"warning: load average {load:.1f}: other work is running", file=sys.stderr)
    settings: list[int | str] = sorted({1, max_threads}) + ["auto"]
    rows, lines = [], []
    for preset in args.presets or list(SCRIPT_PRESETS):
        args.preset = preset
        agent, batch, _, _ = build(args)
        result: dict[tuple, dict] = {}
        for load in ("idle", "busy"):
            procs = busy_processes(args.busy) if load == "busy" else []
            try:
                for threads in settings:
                    r = ms_per_update(agent, batch, threads, args, max_threads)
                    r.update(preset=preset, load=load, threads=threads, busy=len(procs))
                    print(json.dumps(r), file=sys.stderr, flush=True)
                    result[load, threads] = r
                    rows.append(r)
            finally:
                for proc in procs:
                    proc.kill()
                    proc.wait()
        best_idle = min(result["idle", t]["median_ms"] for t in settings if t != "auto")
        for threads in settings:
            idle, busy = result["idle", threads]["median_ms"], result["busy", threads]["median_ms"]
            lines.append(
                f"| {preset} | {threads} | {idle:.0f} | {busy:.0f} | {busy / idle:.2f} "
                f"| {idle / best_idle:.2f} |"
            )
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    header = (
        f"`python -m dreamer.bench --contention` on {os.cpu_count()} CPU cores, torch "
        f"{torch.__version__}, {args.busy} busy process(es), median ms of {args.updates} "
        f"updates after {args.warmup} warm-up. Bars for auto: busy / idle <= 1.5, idle / best "
        "fixed idle <= 1.10.\n\n"
        "| preset | threads | idle ms | busy ms | busy / idle | idle / best idle |\n"
        "|---|---|---|---|---|---|"
    )
    return header + "\n" + "\n".join(lines)


def table(args: argparse.Namespace) -> str:
    """Every preset in fp32 (and bf16 for xs): a markdown table, also saved as JSON lines."""
    rows, lines = [], []
    for preset, precision in [
        ("xs", "fp32"),
        ("xs", "bf16"),
        *[(p, "fp32") for p in SCRIPT_PRESETS],
    ]:
        args.preset, args.precision = preset, precision
        result = run(args)
        rows.append(result)
        print(json.dumps(result), file=sys.stderr)
        s = result["sizes"]
        lines.append(
            f"| {preset} | {precision} | {s['deter']} / {s['stoch']}x{s['classes']} / {s['units']} "
            f"| {s['batch']}x{s['seq_len']}, H {s['horizon']} | {result['params'] / 1e6:.2f}M "
            f"| {result['median_ms']:.0f} | {result['world_model_ms']:.0f} "
            f"| {result['imagination_ms']:.0f} | {result['gflop_per_update']} "
            f"| {result['achieved_gflop_s']} |"
        )
    os.makedirs(os.path.join(ROOT, "results"), exist_ok=True)
    with open(os.path.join(ROOT, "results", "bench.jsonl"), "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    r = rows[0]
    header = (
        f"`python -m dreamer.bench --table` on {os.cpu_count()} CPU cores, torch {r['torch']}, "
        f"{r['threads']} threads, AMX {'yes' if r['cpu_amx'] else 'no'}, "
        f"median of {args.updates} updates after {args.warmup} warm-up.\n\n"
        "| preset | precision | deter / latents / units | batch, horizon | params | ms/update "
        "| world model ms | imagination ms | GFLOP/update | GFLOP/s |\n"
        "|---|---|---|---|---|---|---|---|---|---|"
    )
    return header + "\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.contention:
            print(contention(args))
            return 0
        if args.collect:
            print(json.dumps(collect(args)))
            return 0
        if args.replay:
            print(json.dumps(replay_timing(args)))
            return 0
        if args.table:
            from .results import update_readme

            text = table(args)
            print(text)
            update_readme(os.path.join(ROOT, "README.md"), text, BENCH_START, BENCH_END)
            return 0
        with plain_maths() if args.plain_maths else contextlib.nullcontext():
            print(json.dumps(run(args)))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
