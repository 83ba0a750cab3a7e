"""The one training loop every script uses (paper Algorithm 1 / "Training").

    prefill replay with a random policy
    repeat:
        act with a sample of the policy, store (x_t, a_t, r_t, is_first, is_terminal)
        every env step, owe train_ratio / (B*T) updates; pay them with train_step
        every eval_every steps: 10 episodes of the policy (sampled) on separate envs
        log metrics.csv, keep 'latest' and 'best' checkpoints, redraw the curve

Truncation (a time limit) is stored as is_last without is_terminal, so the continue head
learns that the episode goes on. With `train.envs` = N > 1, N envs step together in
subprocesses (gymnasium's AsyncVectorEnv), the policy acts for all of them in one batch, each env
writes its own replay stream, and one vector step counts N env steps (a run ends at the first
multiple of N at or past `train.steps`). A run directory holds config.json, metrics.csv,
latest.pt / best.pt and curve.png. A resumed run (`resume=True`) continues from latest.pt and
first drops the metrics rows logged after it (docs/robustness.md).
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch

from . import distributed
from .agent import DreamerAgent
from .checkpoint import (
    CheckpointWriteError,
    atomic_torch_save,
    load_checkpoint_file,
    remove_stale_temp_files,
    restore_run,
    run_state,
)
from .config import DreamerConfig, EnvConfig, config_to_dict, validate
from .envs import (
    EnvSource,
    env_name,
    make_env,
    random_model_action,
    resolve_device,
    set_seed,
    stack_obs,
    to_env_action,
)
from .logger import MetricsLogger, progress_bar
from .plotting import plot_learning_curve, read_metrics
from .replay_buffer import SequenceReplayBuffer, StreamReplay
from .threads import ThreadTuner


class NonFiniteError(RuntimeError):
    """Raised when too many consecutive updates had non-finite losses or gradients."""


@dataclass
class RunResult:
    logdir: str
    env_steps: int
    updates: int
    wall_time: float
    final_eval: float | None
    best_eval: float | None
    steps_to_threshold: int | None
    interrupted: bool
    ranks: int = 1  # data-parallel processes (torchrun); their parameters were checked equal


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def evaluate_policy(
    agent: DreamerAgent, env: EnvSource, episodes: int, base_seed: int, explore: bool = True
) -> tuple[float, float]:
    """Mean and std return of `episodes` fresh episodes (seeds base_seed + i), acting in one
    batch; `explore` samples the policy (both official versions), else takes its mode."""
    envs = [make_env(env, config=agent.config.env) for _ in range(episodes)]
    obs = [e.reset(seed=base_seed + i)[0] for i, e in enumerate(envs)]
    returns = np.zeros(episodes)
    active = np.ones(episodes, bool)
    state, is_first = None, np.ones(episodes, bool)
    while active.any():
        action, state = agent.policy(stack_obs(obs), state, is_first, explore=explore)
        env_actions = agent.to_env_action(action)
        for i, e in enumerate(envs):
            if not active[i]:
                continue
            obs[i], reward, term, trunc, _ = e.step(env_actions[i])
            returns[i] += reward
            active[i] = not (term or trunc)
        is_first = np.zeros(episodes, bool)
    for e in envs:
        e.close()
    return float(returns.mean()), float(returns.std())


def make_vector_env(env: EnvSource, n: int, config: DreamerConfig) -> Any:
    """N copies of `env` stepping in subprocesses, wrapped as `config.env` says.

    SAME_STEP autoreset: the step that ends an episode of env i returns the next episode's
    first observation in obs[i] and the final one in info["final_obs"][i].
    """
    import gymnasium as gym

    # a partial of a module-level function pickles into the subprocesses (a lambda may not)
    factory = partial(_subprocess_env, env, config.env)
    mode = gym.vector.AutoresetMode.SAME_STEP
    return gym.vector.AsyncVectorEnv([factory] * n, autoreset_mode=mode)


def _subprocess_env(env: EnvSource, config: EnvConfig) -> Any:
    """`make_env`; an env subprocess ignores Ctrl-C: the terminal sends SIGINT to every process
    of the group, and the main process ends the run and saves it. (A forked process inherits the
    trainer's handler; a spawned one, macOS's default, would die and fail the last step.)
    AsyncVectorEnv also calls this once in the main process, for the spaces."""
    if multiprocessing.parent_process() is not None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    return make_env(env, config=config)


def _row(obs: Any, i: int) -> Any:
    """Env i's observation from a batch: (N, ...) -> (...), key by key for a dict."""
    return {key: value[i] for key, value in obs.items()} if isinstance(obs, dict) else obs[i]


class Trainer:
    """Owns env, eval env, agent, replay and the run directory.

    `env`: a gymnasium id ('CartPole-v1', 'my_package.envs:MyEnv-v0') or a zero-argument factory
    returning a gymnasium Env (e.g. the env class); evaluation makes fresh envs from it.
    `threads`: None leaves torch's thread count alone, a number fixes it, 'auto' lets a
    ThreadTuner pick 1 or all cores update by update (dreamer/threads.py).
    """

    def __init__(
        self,
        env: EnvSource,
        config: DreamerConfig,
        logdir: str,
        seed: int = 0,
        device: str = "auto",
        resume: bool = False,
        command: str = "",
        progress: bool = True,
        threads: int | str | None = None,
        compile: bool | str | None = False,
        cuda_graph: bool = False,
    ):
        validate(config)
        self.device = resolve_device(device)
        if config.train.envs > 1 and distributed.launched_by_torchrun():
            raise ValueError("--envs > 1 is not supported with torchrun (data parallel)")
        if config.train.prefill_episodes and distributed.launched_by_torchrun():
            # ranks end episodes at different steps but must start updating at the same one
            raise ValueError("train.prefill_episodes > 0 is not supported with torchrun")
        # torchrun: one rank of a data-parallel run (distributed.py); None in a plain run
        self.rank = distributed.setup(self.device) if distributed.launched_by_torchrun() else None
        if self.rank is not None:
            self.device = distributed.device_for(self.device, self.rank)
            if threads == "auto":  # ranks share the machine's cores
                threads = max(1, (os.cpu_count() or 1) // self.rank.local_world)
            progress = progress and self.rank.is_main
        self.is_main = self.rank is None or self.rank.is_main
        self.tuner = ThreadTuner() if threads == "auto" else None
        if isinstance(threads, int):
            torch.set_num_threads(threads)
        self.config, self.seed, self.logdir = config, seed, logdir
        self.command, self.progress = command, progress
        # each rank's own random streams and episodes; rank 0 (and a plain run) use `seed`
        self.worker_seed = seed + 7919 * (self.rank.rank if self.rank else 0)
        set_seed(self.worker_seed)
        self.env_source = env
        self.env = make_env(env, self.worker_seed, config=config.env)
        self.env_id = env_name(env, self.env)  # names the run in checkpoints and plots
        self.agent = DreamerAgent(
            self.env.observation_space,
            self.env.action_space,
            config,
            self.device,
            compile,
            cuda_graph,
        )
        if self.rank is not None:
            self.agent.data_parallel()
        self.num_envs = config.train.envs
        r = config.replay
        if self.num_envs == 1:  # one ring, exactly as before parallel envs existed
            self.replay = SequenceReplayBuffer(r.capacity, r.seq_len)
        else:
            self.replay = StreamReplay(r.capacity, r.seq_len, self.num_envs)
        self.vector_env: Any = None  # the N > 1 envs, started by `run`
        self.vector_episode: dict | None = None  # their obs, rewards, is_first, state, returns
        self.rng = np.random.default_rng(self.worker_seed)
        self.prefill_actions: np.ndarray | None = None  # the random actions being held
        self.prefill_held = 0  # env steps they have been held
        self.env_step = 0
        self.episodes = 0
        self.update_debt = 0.0  # updates owed by the train ratio, not yet done
        self.wall_offset = 0.0  # wall time of earlier sessions of a resumed run
        self.best_eval: float | None = None
        self.steps_to_threshold: int | None = None
        self.last_eval: float | None = None
        self.last_return = math.nan
        self.consecutive_skips = 0
        self._stop_signal: str | None = None
        self.episode: dict | None = None  # obs, reward, is_first, agent state, return
        self._start = time.time()
        self._commit = git_commit()  # the code this process runs, not HEAD when it ends
        try:
            os.makedirs(logdir, exist_ok=True)
        except OSError as exc:  # a file in the way, no permission, ...
            raise ValueError(f"cannot create run directory {logdir} ({exc.strerror})") from None
        suffix = "" if self.rank is None or self.rank.is_main else f"-rank{self.rank.rank}"
        self.latest_path = os.path.join(logdir, f"latest{suffix}.pt")
        self.best_path = os.path.join(logdir, "best.pt")
        self.metrics_path = os.path.join(logdir, "metrics.csv")
        self.saved_step: int | None = None  # env step of the latest.pt on disk
        if resume:
            restore_run(self, load_checkpoint_file(self.latest_path), self.latest_path)
            self.saved_step = self.env_step
            if self.is_main:
                remove_stale_temp_files(logdir)  # what a killed process left half-written
                MetricsLogger(logdir).truncate_after(self.env_step)  # rows it logs again
        elif self.is_main:
            remove_stale_temp_files(logdir)
            if os.path.exists(self.metrics_path):  # a new run in an old directory starts over
                os.remove(self.metrics_path)
            self._write_json("config.json", self._run_info())

    # -- run directory ------------------------------------------------------------------------

    def _run_info(self) -> dict:
        return {
            "env_id": self.env_id,
            "seed": self.seed,
            "device": str(self.device),
            "command": self.command,
            "git_commit": self._commit,
            "torch": torch.__version__,
            "threads": "auto" if self.tuner else torch.get_num_threads(),
            "config": config_to_dict(self.config),
        }

    def _write_json(self, name: str, data: dict) -> None:
        path = os.path.join(self.logdir, name)
        try:
            with open(path + ".tmp", "w") as f:
                json.dump(data, f, indent=2)
            os.replace(path + ".tmp", path)
        except OSError:
            if os.path.exists(path + ".tmp"):
                os.remove(path + ".tmp")
            raise

    def save_latest(self) -> None:
        """Write latest.pt; if that fails (disk full) say which step the intact one holds."""
        try:
            atomic_torch_save(run_state(self), self.latest_path)
        except CheckpointWriteError as exc:
            kept = "there is no earlier checkpoint"
            if self.saved_step is not None:
                kept = f"the one from step {self.saved_step} is intact; free space, then --resume"
            message = f"could not save {self.latest_path} at step {self.env_step} ({exc.reason}); "
            raise CheckpointWriteError(message + kept, exc.reason) from None
        self.saved_step = self.env_step

    # -- loop ---------------------------------------------------------------------------------

    def wall_time(self) -> float:
        return self.wall_offset + time.time() - self._start

    def _updates_per_step(self) -> float:
        r = self.config.replay
        return self.config.train.train_ratio / (r.batch_size * r.seq_len)

    def _train(self, pending: list[dict], env_steps: int = 1) -> None:
        self.update_debt += self._updates_per_step() * env_steps
        r = self.config.replay
        while self.update_debt >= 1.0:
            batch = self.replay.sample(r.batch_size, self.rng, r)
            step_ids = batch.pop("step_id")
            terminal_share = float(batch["is_terminal"].mean())
            skipped_before = self.agent.skipped_updates
            if self.tuner is not None:
                metrics = self.tuner.run(self.agent.train_step, batch)
            else:
                metrics = self.agent.train_step(batch)
            if self.agent.last_priority is not None:  # the steps' new losses rank them
                self.replay.prioritize(step_ids, self.agent.last_priority)
            pending.append({**metrics, "replay/terminal_share": terminal_share})
            self.update_debt -= 1.0
            if self.agent.skipped_updates > skipped_before:
                self.consecutive_skips += 1
                if self.consecutive_skips >= 20:
                    raise NonFiniteError(
                        "20 consecutive updates had non-finite losses or gradients; the last "
                        f"good checkpoint is {self.latest_path}"
                    )
            else:
                self.consecutive_skips = 0

    def evaluate(self, episodes: int | None = None) -> tuple[float, float]:
        """Mean and std return over `episodes` fresh episodes, batched; the policy is sampled or
        its mode taken as `train.eval_policy` says.

        Runs on its own torch RNG stream, so evaluating (or not) never changes training.
        """
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed + self.env_step)
            return evaluate_policy(
                self.agent,
                self.env_source,
                episodes or self.config.train.eval_episodes,
                base_seed=10_000 * (self.seed + 1) + self.env_step,  # new, reproducible episodes
                explore=self.config.train.eval_policy == "sample",
            )

    def _log(self, pending: list[dict], eval_result: tuple[float, float] | None) -> None:
        counters = {
            "env_step": self.env_step,
            "wall_time": round(self.wall_time(), 2),
            "updates": self.agent.updates,
            "episodes": self.episodes,
            "episode_return": self.last_return,
            "eval_mean": eval_result[0] if eval_result else "",
            "eval_std": eval_result[1] if eval_result else "",
            "skipped_updates": self.agent.skipped_updates,
        }
        self.logger.write(counters, pending)
        pending.clear()

    def _on_eval(self, mean: float) -> None:
        self.last_eval = mean
        threshold = self.config.train.threshold
        if threshold is not None and mean >= threshold and self.steps_to_threshold is None:
            self.steps_to_threshold = self.env_step
        if self.best_eval is None or mean > self.best_eval:
            self.best_eval = mean
            atomic_torch_save(self.agent.checkpoint_state(), self.best_path)

    def _reset_episode(self) -> dict:
        """Start an episode; seeds follow the episode count, so a resumed run matches."""
        obs, _ = self.env.reset(seed=self.worker_seed + self.episodes)
        self.episode = {"obs": obs, "reward": 0.0, "is_first": True, "state": None, "return": 0.0}
        return self.episode

    def start_episodes(self) -> None:
        """Before collecting: start the N > 1 envs, or the single env's episode if none runs."""
        if self.num_envs > 1:
            self._start_vector_env()
        elif self.episode is None:
            self._reset_episode()

    def collect(self) -> int:
        """One step of every env (random actions until `train.prefill` steps are stored, then
        the policy's); returns the env steps it took: 1, or N for a vector step."""
        before = self.env_step
        if self.num_envs == 1:
            self._collect()
        else:
            self._collect_vector()
        return self.env_step - before

    def close_envs(self) -> None:
        """Stop the env subprocesses of N > 1 envs (a later `start_episodes` starts new ones)."""
        if self.vector_env is not None:
            self.vector_env.close()
            self.vector_env = None

    def _collect(self) -> None:
        """One step of the single env: act, store the step, end and restart the episode."""
        ep = self.episode
        if self._prefilling():
            action = self._random_actions(1)[0]
        else:
            model_action, ep["state"] = self.agent.policy(ep["obs"], ep["state"], [ep["is_first"]])
            action = model_action[0].cpu().numpy()
        self.replay.add(ep["obs"], action, ep["reward"], ep["is_first"], False)
        env_action = to_env_action(action, self.agent.spaces)
        obs, reward, term, trunc, _ = self.env.step(env_action)
        ep.update(obs=obs, reward=float(reward), is_first=False)
        ep["return"] += float(reward)
        self.env_step += 1
        if term or trunc:
            # final observation: no action follows; the continue target is 1 - term
            self.replay.add(obs, np.zeros_like(action), float(reward), False, term, True)
            self.episodes += 1
            self.last_return = ep["return"]
            self._reset_episode()

    def _prefilling(self) -> bool:
        """Random actions until replay holds `train.prefill` steps and `train.prefill_episodes`
        episodes have ended, and for the first `train.random_episodes` episodes."""
        tc = self.config.train
        episodes = max(tc.prefill_episodes, tc.random_episodes)
        return len(self.replay) < tc.prefill or self.episodes < episodes

    def _random_actions(self, n: int) -> np.ndarray:
        """The prefill's random actions for n envs, (n, A): fresh draws every
        `train.prefill_hold` env steps, the same actions in between."""
        if self.prefill_held % self.config.train.prefill_hold == 0:
            draws = [random_model_action(self.env.action_space, self.rng) for _ in range(n)]
            self.prefill_actions = np.stack(draws)
        self.prefill_held += 1
        return self.prefill_actions

    def _start_vector_env(self) -> None:
        """Start the N envs on new episodes. A resumed run restarts them too: subprocess envs
        are not pickled into checkpoints, so each replay stream's interrupted episode stays
        without its end, as a single env's does when it cannot be pickled."""
        n = self.num_envs
        self.vector_env = make_vector_env(self.env_source, n, self.config)
        # distinct reproducible seeds per env, new ones after a resume; later episodes of env i
        # draw from its own seeded generator (the autoreset passes no seed)
        seeds = np.random.SeedSequence([self.worker_seed, self.episodes]).generate_state(n)
        obs, _ = self.vector_env.reset(seed=[int(s) for s in seeds])
        self.vector_episode = {
            "obs": obs,  # (N, ...) or a dict of them
            "reward": np.zeros(n),
            "is_first": np.ones(n, bool),
            "state": None,
            "return": np.zeros(n),
        }

    def _collect_vector(self) -> None:
        """One step of all N envs: one batched policy pass, each env's steps to its stream."""
        ep, n = self.vector_episode, self.num_envs
        if self._prefilling():
            action = self._random_actions(n)
        else:
            model_action, ep["state"] = self.agent.policy(ep["obs"], ep["state"], ep["is_first"])
            action = model_action.cpu().numpy()  # (N, A)
        for i in range(n):
            obs_i = _row(ep["obs"], i)
            self.replay.add(obs_i, action[i], ep["reward"][i], ep["is_first"][i], False, stream=i)
        env_action = to_env_action(action, self.agent.spaces)
        obs, reward, term, trunc, info = self.vector_env.step(env_action)
        ep["return"] += reward
        done = term | trunc  # (N,)
        for i in np.flatnonzero(done):
            # obs[i] already starts env i's next episode (SAME_STEP autoreset); its final
            # observation, stored as for one env, is in info
            final = info["final_obs"][i]
            zero = np.zeros_like(action[i])
            self.replay.add(final, zero, float(reward[i]), False, bool(term[i]), True, stream=i)
            self.episodes += 1
            self.last_return = float(ep["return"][i])
            ep["return"][i] = 0.0
        ep.update(obs=obs, reward=np.where(done, 0.0, reward), is_first=done)
        self.env_step += n

    def _ready_to_train(self) -> bool:
        tc = self.config.train
        # data-parallel ranks count env steps, not replay entries (episode ends add one each):
        # every rank must start updating, a collective op, at the same step
        filled = self.env_step if self.rank else len(self.replay)
        if filled < max(tc.prefill, self.config.replay.seq_len):
            return False
        if self.episodes < tc.prefill_episodes:  # a plain run only (not data parallel)
            return False
        return self.num_envs == 1 or self.replay.window_starts().sum() > 0

    def _crossed(self, every: int, env_steps: int) -> bool:
        """The last `env_steps` steps reached a multiple of `every` (one step: hit it exactly)."""
        return self.env_step // every > (self.env_step - env_steps) // every

    def _handle_signal(self, signum: int, frame: Any) -> None:
        self._stop_signal = signal.Signals(signum).name

    def _stop_requested(self) -> bool:
        """A signal arrived. Data-parallel ranks decide together at log boundaries, so no rank
        waits forever in an update its peers never start."""
        if self.rank is None:
            return self._stop_signal is not None
        if self.env_step % self.config.train.log_every != 0:
            return False
        if distributed.all_agree(self._stop_signal is not None, self.device):
            self._stop_signal = self._stop_signal or "a peer rank's signal"
            return True
        return False

    def plot(self) -> None:
        if self.is_main and os.path.exists(self.metrics_path):
            plot_learning_curve(
                read_metrics(self.metrics_path),
                os.path.join(self.logdir, "curve.png"),
                f"{self.env_id} seed {self.seed}",
                self.config.train.threshold,
                self.config.train.eval_policy,
            )

    def run(self) -> RunResult:
        """Train until `train.steps` env steps (or a signal); return a summary."""
        tc = self.config.train
        self._start = time.time()
        self.logger = MetricsLogger(self.logdir) if self.is_main else None
        handlers = {
            s: signal.signal(s, self._handle_signal) for s in (signal.SIGINT, signal.SIGTERM)
        }
        bar = progress_bar(tc.steps, self.env_step, self.progress)
        pending: list[dict] = []
        self.start_episodes()
        try:
            while self.env_step < tc.steps and not self._stop_requested():
                new = self.collect()  # 1, or N for a vector step
                if self._ready_to_train():
                    self._train(pending, new)
                eval_result = None
                at_eval = self._crossed(tc.eval_every, new) or self.env_step >= tc.steps
                if at_eval and self.is_main:
                    eval_result = self.evaluate()
                    self._on_eval(eval_result[0])
                if self.is_main and (eval_result or self._crossed(tc.log_every, new)):
                    self._log(pending, eval_result)
                elif not self.is_main:
                    pending.clear()  # rank 0 logs; its metrics stand for all
                if eval_result:
                    self.plot()
                if self._crossed(tc.checkpoint_every, new):
                    self.save_latest()
                bar.update(new)
                bar.set_postfix(
                    ret=f"{self.last_return:.1f}",
                    eval="-" if self.last_eval is None else f"{self.last_eval:.1f}",
                    upd=self.agent.updates,
                    refresh=False,
                )
        finally:
            bar.close()
            self.close_envs()
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
        self.save_latest()
        self.plot()
        if self.logger is not None:
            self.logger.close()
        if self.rank is not None and not distributed.parameters_identical(self.agent):
            raise RuntimeError("data-parallel ranks ended with different parameters")
        if self._stop_signal:
            print(
                f"\n{self._stop_signal}: saved {self.latest_path} at step {self.env_step}; "
                "resume with the same command plus --resume"
            )
        result = RunResult(
            logdir=self.logdir,
            env_steps=self.env_step,
            updates=self.agent.updates,
            wall_time=round(self.wall_time(), 1),
            final_eval=self.last_eval,
            best_eval=self.best_eval,
            steps_to_threshold=self.steps_to_threshold,
            ranks=self.rank.world if self.rank else 1,
            interrupted=self._stop_signal is not None,
        )
        info = self._run_info()
        if self.tuner is not None:
            info["thread_tuner"] = self.tuner.summary()
        if self.is_main:  # one writer: two ranks renaming one temp file race
            self._write_json("result.json", {**result.__dict__, **info})
        return result
