"""Resume, determinism, crash-safe checkpoints, NaN guard and huge rewards (issue #6)."""

import os
import signal
import subprocess
import sys
import time

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import tiny_config

from dreamer import DreamerAgent
from dreamer.bench import synthetic_batch
from dreamer.checkpoint import atomic_torch_save, load_checkpoint_file
from dreamer.train import Trainer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def small_run_config(steps):
    config = tiny_config()
    t = config.train
    t.steps, t.prefill, t.eval_every, t.eval_episodes = steps, 40, 50, 1
    t.log_every, t.checkpoint_every, t.train_ratio = 25, 10_000, 16
    return config


def state_dicts_equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_same_seed_same_results(tmp_path):
    agents = []
    for name in ("a", "b"):
        trainer = Trainer("CartPole-v1", small_run_config(90), str(tmp_path / name), seed=3,
                          device="cpu", progress=False)  # fmt: skip
        trainer.run()
        agents.append(trainer.agent.state_dict())
    assert state_dicts_equal(*agents)


def test_resume_continues_exactly(tmp_path):
    """Interrupted at step 60 and resumed to 120 == an uninterrupted 120-step run."""
    full = Trainer("CartPole-v1", small_run_config(120), str(tmp_path / "full"), seed=1,
                   device="cpu", progress=False)  # fmt: skip
    full.run()
    part = Trainer("CartPole-v1", small_run_config(60), str(tmp_path / "part"), seed=1,
                   device="cpu", progress=False)  # fmt: skip
    part.run()
    resumed = Trainer("CartPole-v1", small_run_config(120), str(tmp_path / "part"), seed=1,
                      device="cpu", resume=True, progress=False)  # fmt: skip
    assert resumed.env_step == 60 and resumed.agent.updates == part.agent.updates
    resumed.run()
    assert resumed.agent.updates == full.agent.updates
    assert state_dicts_equal(resumed.agent.state_dict(), full.agent.state_dict())
    assert len(resumed.replay) == len(full.replay)


def test_resume_inside_a_held_prefill_continues_exactly(tmp_path):
    """Stopped at step 30 while a prefill action is held for 7 steps (from 28 to 34): the
    resumed run holds it to the end of its block, as the uninterrupted run does."""
    config = small_run_config(120)
    config.train.prefill_hold = 7
    full = Trainer("CartPole-v1", config, str(tmp_path / "full"), seed=2, device="cpu",
                   progress=False)  # fmt: skip
    full.run()
    part = Trainer("CartPole-v1", config, str(tmp_path / "part"), seed=2, device="cpu",
                   progress=False)  # fmt: skip
    part.start_episodes()
    while part.env_step < 30:
        part.collect()
    part.save_latest()
    resumed = Trainer("CartPole-v1", config, str(tmp_path / "part"), seed=2, device="cpu",
                      resume=True, progress=False)  # fmt: skip
    assert resumed.env_step == 30 and resumed.prefill_held == 30
    resumed.run()
    actions = [t.replay._data["action"][:120] for t in (full, resumed)]
    np.testing.assert_array_equal(*actions)
    assert state_dicts_equal(resumed.agent.state_dict(), full.agent.state_dict())


def test_resume_with_other_config_lists_differences(tmp_path):
    Trainer("CartPole-v1", small_run_config(50), str(tmp_path), device="cpu",
            progress=False).run()  # fmt: skip
    other = small_run_config(50)
    other.actor_critic.entropy = 1e-2
    with pytest.raises(ValueError, match="actor_critic.entropy"):
        Trainer("CartPole-v1", other, str(tmp_path), device="cpu", resume=True, progress=False)
    with pytest.raises(ValueError, match="CartPole-v1"):
        Trainer("Acrobot-v1", small_run_config(50), str(tmp_path), device="cpu", resume=True)


def test_atomic_save_keeps_previous_checkpoint_on_crash(tmp_path, monkeypatch):
    path = tmp_path / "ck.pt"
    atomic_torch_save({"version": 1}, path)

    real_save = torch.save

    def crash(obj, f, *args, **kwargs):  # dies mid-write, half a file written
        real_save(obj, f, *args, **kwargs)
        f.flush()
        f.truncate(f.tell() // 2)
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        atomic_torch_save({"version": 2}, path)
    monkeypatch.undo()
    assert load_checkpoint_file(path) == {"version": 1}


def test_truncated_or_foreign_checkpoint_is_a_clear_error(tmp_path):
    agent = DreamerAgent(gym.make("CartPole-v1").observation_space,
                         gym.make("CartPole-v1").action_space, tiny_config())  # fmt: skip
    path = tmp_path / "agent.pt"
    agent.save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="corrupt"):
        agent.load(path)
    torch.save({"something": "else"}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="not a dreamer"):
        agent.load(tmp_path / "foreign.pt")
    with pytest.raises(FileNotFoundError):
        agent.load(tmp_path / "missing.pt")
    pendulum = gym.make("Pendulum-v1")
    agent.save(path)
    other_env = DreamerAgent(pendulum.observation_space, pendulum.action_space, tiny_config())
    with pytest.raises(ValueError, match="other spaces"):
        other_env.load(path)


def test_non_finite_loss_skips_the_update():
    env = gym.make("CartPole-v1")
    config = tiny_config()
    agent = DreamerAgent(env.observation_space, env.action_space, config)
    batch = synthetic_batch(config, 4, 2, True)
    batch["obs"][0, 3, 1] = np.nan
    before = {k: v.clone() for k, v in agent.state_dict().items()}
    metrics = agent.train_step(batch)
    assert agent.skipped_updates == 1 and "loss/actor" not in metrics
    after = agent.state_dict()
    # nothing moved (return scale included) but the slow critic's step toward the critic
    assert all(torch.equal(before[k], after[k]) for k in before if "slow_critic" not in k)
    for opt in (agent.wm_opt, agent.actor_opt, agent.critic_opt):  # no step taken, none counted
        for state in opt.state_dict()["state"].values():
            assert all(not v.any() for v in state.values()), state.keys()


def test_huge_rewards_train_without_nan():
    """1e6 per step: symlog twohot targets keep every loss finite."""
    env = gym.make("CartPole-v1")
    config = tiny_config()
    agent = DreamerAgent(env.observation_space, env.action_space, config)
    batch = synthetic_batch(config, 4, 2, True)
    batch["reward"][:] = 1e6
    for _ in range(5):
        metrics = agent.train_step(batch)
    assert all(np.isfinite(v) for v in metrics.values()), metrics
    assert agent.skipped_updates == 0


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_saves_a_resumable_checkpoint(tmp_path, signum):
    """Ctrl-C or SIGTERM: finish the step, write latest.pt, exit 0 saying how to resume."""
    logdir = tmp_path / "run"
    cmd = [sys.executable, os.path.join(ROOT, "02_dreamer_cartpole.py"), "--quick",
           "--steps", "100000", "--no-progress", "--logdir", str(logdir)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": ROOT}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (logdir / "metrics.csv").exists() and time.time() < deadline:
        time.sleep(0.5)
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0
    assert "--resume" in out and signal.Signals(signum).name in out
    state = load_checkpoint_file(logdir / "latest.pt")
    assert 0 < state["counters"]["env_step"] < 100000


def test_repeated_non_finite_updates_stop_the_run(tmp_path):
    from dreamer.train import NonFiniteError

    trainer = Trainer("CartPole-v1", small_run_config(200), str(tmp_path), device="cpu",
                      progress=False)  # fmt: skip
    trainer.save_latest()
    good = (tmp_path / "latest.pt").read_bytes()

    def poisoned(batch):
        trainer.agent.skipped_updates += 1
        return {"loss/dec": float("nan")}

    trainer.agent.train_step = poisoned
    with pytest.raises(NonFiniteError, match="last good checkpoint"):
        trainer.run()
    assert (tmp_path / "latest.pt").read_bytes() == good
