"""GPU tests: device placement, bf16 autocast, CUDA graphs, checkpoints across devices.

Skipped without a CUDA device; `python -m dreamer.gpu_check` runs them on a GPU machine.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import tiny_config

from dreamer.agent import DreamerAgent
from dreamer.bench import synthetic_batch

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def _agent(env_id: str = "CartPole-v1", **kwargs) -> tuple[DreamerAgent, dict]:
    env = gym.make(env_id)
    config = kwargs.pop("config", None) or tiny_config()
    agent = DreamerAgent(env.observation_space, env.action_space, config, "cuda", **kwargs)
    discrete = env_id == "CartPole-v1"
    obs_dim = env.observation_space.shape[0]
    batch = synthetic_batch(config, obs_dim, 2 if discrete else 1, discrete)
    return agent, agent.batch_to_torch(batch)


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_everything_lives_on_the_gpu_and_trains(env_id):
    agent, batch = _agent(env_id)
    assert all(t.is_cuda for t in [*agent.parameters(), *agent.buffers()])
    assert all(v.is_cuda for v in batch.values())
    for _ in range(3):
        metrics = agent.train_step(batch)
    assert all(np.isfinite(v) for v in metrics.values()) and agent.skipped_updates == 0
    obs = gym.make(env_id).observation_space.sample()
    action = agent.act(obs, is_first=True)
    assert gym.make(env_id).action_space.contains(action)


def test_bf16_autocast_update_matches_fp32():
    config = tiny_config()
    fp32, batch = _agent(config=config)
    config = tiny_config()
    config.train.precision = "bf16"
    bf16, _ = _agent(config=config)
    bf16.load_state_dict(fp32.state_dict())
    torch.manual_seed(1)
    a = fp32.train_step(batch)
    torch.manual_seed(1)
    b = bf16.train_step(batch)
    for key in ("loss/dec", "loss/rew", "loss/con", "loss/critic"):
        assert b[key] == pytest.approx(a[key], rel=0.05, abs=0.02), key


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_cuda_graph_replay_matches_eager(env_id):
    eager, batch = _agent(env_id)
    graphed, _ = _agent(env_id, cuda_graph=True)
    graphed.load_state_dict(eager.state_dict())
    # Same random streams: each update draws from the CUDA generator in the same order.
    torch.cuda.manual_seed(3)
    expected = [eager.train_step(batch) for _ in range(6)]
    torch.cuda.manual_seed(3)
    got = [graphed.train_step(batch) for _ in range(6)]  # 3 eager, record, then replays
    assert graphed._graph is not None
    for a, b in zip(expected, got, strict=True):
        for key in a:
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-5), key
    for (name, p), q in zip(eager.named_parameters(), graphed.parameters(), strict=True):
        assert torch.allclose(p, q, rtol=1e-4, atol=1e-6), name


def test_cuda_graph_skips_a_non_finite_update_on_the_device():
    agent, batch = _agent(cuda_graph=True)
    for _ in range(5):
        agent.train_step(batch)
    before = {k: v.clone() for k, v in agent.state_dict().items()}
    poisoned = {k: v.clone() for k, v in batch.items()}
    poisoned["obs"][0, 3, 1] = float("nan")
    metrics = agent.train_step(poisoned)
    assert agent.skipped_updates == 1 and "loss/actor" not in metrics
    after = agent.state_dict()
    # everything but the slow critic, which still moves toward the (unchanged) critic
    assert all(torch.equal(before[k], after[k]) for k in before if "slow_critic" not in k)
    agent.train_step(batch)
    assert agent.skipped_updates == 1


def test_checkpoint_moves_between_gpu_and_cpu(tmp_path):
    agent, batch = _agent()
    agent.train_step(batch)
    agent.save(tmp_path / "gpu.pt")
    on_cpu = DreamerAgent.from_checkpoint(tmp_path / "gpu.pt", device="cpu")
    assert all(not p.is_cuda for p in on_cpu.parameters())
    for (name, p), q in zip(agent.named_parameters(), on_cpu.parameters(), strict=True):
        assert torch.equal(p.cpu(), q), name
    on_cpu.save(tmp_path / "cpu.pt")
    back = DreamerAgent.from_checkpoint(tmp_path / "cpu.pt", device="cuda")
    for (name, p), q in zip(agent.named_parameters(), back.parameters(), strict=True):
        assert torch.equal(p, q), name
    back.train()
    assert np.isfinite(back.train_step(batch)["loss/dec"])  # its optimiser state moved too


def test_a_run_resumes_mid_episode_on_the_gpu(tmp_path):
    """The running episode's agent state, saved from the GPU and loaded onto the CPU with the
    checkpoint, goes back to the GPU where the policy acts."""
    from dreamer.train import Trainer

    config = tiny_config()
    t = config.train
    t.steps, t.prefill, t.eval_every, t.checkpoint_every = 20, 10, 1000, 10
    Trainer("CartPole-v1", config, str(tmp_path), device="cuda", progress=False).run()
    t.steps = 30
    resumed = Trainer("CartPole-v1", config, str(tmp_path), device="cuda", resume=True,
                      progress=False)  # fmt: skip
    if resumed.episode is not None and resumed.episode["state"] is not None:
        assert resumed.episode["state"][1].is_cuda
    assert resumed.run().env_steps == 30


def test_pixel_update_replays_as_a_graph_with_compiled_steps():
    """What `07_dreamer_pixels.py --device cuda --cuda-graph --compile` runs: CNN encoder and
    decoder inside the recorded graph, the RSSM's loop bodies compiled."""
    from dreamer.bench import spaces

    config = tiny_config()
    config.world_model.cnn.depth = 4
    frames = (16, 16, 1)
    agent = DreamerAgent(*spaces(frames, 2, True), config, "cuda", compile="steps",
                         cuda_graph=True)  # fmt: skip
    batch = agent.batch_to_torch(synthetic_batch(config, frames, 2, True))
    for _ in range(5):  # 3 eager (compiling), record, replay
        metrics = agent.train_step(batch)
    assert agent._graph is not None and agent.compiled == "steps"
    assert all(np.isfinite(v) for v in metrics.values()) and agent.skipped_updates == 0
