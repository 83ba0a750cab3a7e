"""`--compile`: the compiled update equals the eager methods, which stay the reference: either
scope, the RSSM's loop bodies (steps) or the whole loss functions (losses)."""

from __future__ import annotations

import shutil

import gymnasium as gym
import pytest
import torch
import torch._inductor.config as inductor_config
from conftest import tiny_config

from dreamer.agent import DreamerAgent
from dreamer.bench import synthetic_batch


def _losses_and_grads(agent: DreamerAgent, batch: dict) -> tuple[list, list]:
    torch.manual_seed(1)  # the same posterior samples and dreamed actions in both agents
    wm_loss, _, posts, _ = agent.world_model_loss_fn(batch)
    actor_loss, critic_loss, _ = agent.actor_critic_loss_fn(posts.detach(), batch)
    params = [p for p in agent.parameters() if p.requires_grad]
    grads = torch.autograd.grad(wm_loss + actor_loss + critic_loss, params, allow_unused=True)
    grads = [torch.zeros_like(p) if g is None else g for g, p in zip(grads, params, strict=True)]
    return [wm_loss, actor_loss, critic_loss], grads


@pytest.mark.skipif(shutil.which("g++") is None, reason="inductor on CPU needs a C++ compiler")
@pytest.mark.parametrize("scope", ["steps", "losses"])
@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])  # REINFORCE, dynamics
def test_compiled_losses_and_gradients_match_eager(monkeypatch, env_id, scope):
    monkeypatch.setattr(inductor_config, "fallback_random", True)  # eager's random numbers
    env = gym.make(env_id)
    config = tiny_config()
    config.replay.seq_len, config.actor_critic.horizon = 4, 2  # a short unroll compiles fast
    eager = DreamerAgent(env.observation_space, env.action_space, config)
    compiled = DreamerAgent(env.observation_space, env.action_space, config, compile=scope)
    compiled.load_state_dict(eager.state_dict())
    rssm = compiled.world_model.rssm
    if scope == "steps":  # the comparison below is eager against compiled, not eager twice
        assert rssm.filter_step_fn != rssm.filter_step
    else:
        assert compiled.world_model_loss_fn != compiled.world_model.loss
        assert compiled.actor_critic_loss_fn != compiled.actor_critic_losses
    obs_dim, discrete = env.observation_space.shape[0], env_id == "CartPole-v1"
    batch = eager.batch_to_torch(synthetic_batch(config, obs_dim, 2 if discrete else 1, discrete))

    eager_losses, eager_grads = _losses_and_grads(eager, batch)
    compiled_losses, compiled_grads = _losses_and_grads(compiled, batch)
    for a, b in zip(eager_losses, compiled_losses, strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5), (a, b)
    for a, b in zip(eager_grads, compiled_grads, strict=True):
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-5)
    assert any(g.abs().max() > 0 for g in compiled_grads)
    # and a whole update runs through the compiled functions
    metrics = compiled.train_step(batch)
    assert compiled.compiled == scope
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values())


@pytest.mark.parametrize("scope", ["steps", "losses"])
def test_eager_context_restores_the_compiled_functions(scope):
    env = gym.make("CartPole-v1")
    agent = DreamerAgent(env.observation_space, env.action_space, tiny_config(), compile=scope)
    rssm = agent.world_model.rssm
    eager_fns = (rssm.filter_step, rssm.imagine_step, agent.world_model.loss,
                 agent.actor_critic_losses)  # fmt: skip

    def current():
        return (rssm.filter_step_fn, rssm.imagine_step_fn, agent.world_model_loss_fn,
                agent.actor_critic_loss_fn)  # fmt: skip

    compiled = current()
    swapped = [a != b for a, b in zip(compiled, eager_fns, strict=True)]
    assert swapped == ([True, True, False, False] if scope == "steps" else [False] * 2 + [True] * 2)
    with agent.eager():
        assert current() == eager_fns
    assert current() == compiled
    with pytest.raises(ValueError, match="steps or losses"):
        agent.compile_update("everything")
