"""The actor-critic losses, one equation each: hand-computed values, gradients and agreement
with torch.distributions."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import tiny_config
from torch import distributions as D

from dreamer.actor_critic import (
    critic_loss,
    dynamics_actor_loss,
    imagination_weights,
    reinforce_actor_loss,
    replay_critic_loss,
)
from dreamer.agent import DreamerAgent
from dreamer.bench import synthetic_batch
from dreamer.networks import Actor, BoundedNormalDist, OneHotDist
from dreamer.utils import TwohotEncoder, unimix_logits


def test_imagination_weights_by_hand():
    gamma = 0.9
    start_cont = torch.tensor([1.0, 0.0])  # the second dream starts at a terminal state
    cont = torch.tensor([[0.5, 1.0], [0.2, 1.0], [1.0, 1.0]])  # c_1..c_3
    w = imagination_weights(start_cont, cont, gamma)
    # w_0 = c_0, w_1 = c_0 g c_1, w_2 = c_0 g^2 c_1 c_2
    expected = torch.tensor([[1.0, 0.0], [0.9 * 0.5, 0.0], [0.81 * 0.5 * 0.2, 0.0]])
    assert torch.allclose(w, expected, atol=1e-7)
    assert not w.requires_grad


def test_imagination_weights_carry_gamma_to_the_power_t():
    H, gamma = 30, 0.997
    w = imagination_weights(torch.ones(4), torch.ones(H, 4), gamma)
    assert torch.allclose(w[:, 0], gamma ** torch.arange(H, dtype=torch.float32), rtol=1e-6)
    assert w[-1, 0].item() == pytest.approx(0.917, abs=1e-3)  # 9% less than without gamma^t


def test_reinforce_gradient_is_minus_advantage_times_score():
    torch.manual_seed(0)
    H, N, A, eta = 3, 5, 4, 0.0
    logits = torch.randn(H, N, A, requires_grad=True)
    action = torch.nn.functional.one_hot(torch.randint(A, (H, N)), A).float()
    adv = torch.randn(H, N, requires_grad=True)
    weight = torch.rand(H, N)
    dist = OneHotDist(torch.log_softmax(logits, -1))
    loss = reinforce_actor_loss(dist.log_prob(action), dist.entropy(), adv, weight, eta)
    loss.backward()
    # d/dlogits of -mean(w A log softmax(logits)[a]) = -w A (onehot(a) - softmax) / (H N)
    expected = -(weight * adv.detach())[..., None] * (action - logits.softmax(-1)) / (H * N)
    assert torch.allclose(logits.grad, expected, atol=1e-7)
    assert adv.grad is None  # sg(A): no gradient into the critic's baseline or the returns


def test_entropy_bonus_gradient():
    logits = torch.zeros(1, 1, 3, requires_grad=True)
    logits.data[..., 0] = 1.0
    dist = OneHotDist(torch.log_softmax(logits, -1))
    loss = reinforce_actor_loss(
        dist.log_prob(torch.tensor([[[1.0, 0, 0]]])), dist.entropy(), torch.zeros(1, 1),
        torch.ones(1, 1), eta=1.0,
    )  # fmt: skip
    loss.backward()
    # with A = 0 only -H[pi] remains: its gradient pushes the most likely class down
    assert logits.grad[0, 0, 0] > 0 and logits.grad[0, 0, 1] < 0


def test_dynamics_actor_loss_passes_gradient_through_the_return():
    adv = torch.randn(2, 3, requires_grad=True)
    weight = torch.rand(2, 3)
    dynamics_actor_loss(adv, torch.zeros(2, 3), weight, 3e-4).backward()
    assert torch.allclose(adv.grad, -weight / 6)


def test_dynamics_backprop_reaches_the_actor_through_the_world_model():
    env = gym.make("Pendulum-v1")
    config = tiny_config()
    config.actor_critic.entropy = 0.0  # only the return can move the actor
    agent = DreamerAgent(env.observation_space, env.action_space, config)
    assert agent.actor_grad == "dynamics"
    with torch.no_grad():  # a reward head that depends on the state, so returns depend on a_t
        torch.nn.init.normal_(agent.world_model.reward_head.net[-1].weight)
    batch = agent.batch_to_torch(synthetic_batch(config, 3, 1, False))
    with torch.no_grad():
        _, _, posts, _ = agent.world_model.loss(batch)
    metrics, _ = agent.train_actor_critic(posts, batch)
    assert metrics["grad_norm/actor"] > 0
    assert all(p.grad is None for p in agent.world_model.parameters())


@pytest.mark.parametrize("unimix", [0.0, 0.01])
def test_onehot_dist_matches_torch_categorical(unimix):
    torch.manual_seed(0)
    raw = torch.randn(6, 5)
    logits = unimix_logits(raw, unimix)
    ours = OneHotDist(logits)
    probs = (1 - unimix) * raw.softmax(-1) + unimix / 5
    ref = D.Categorical(probs=probs)
    index = torch.randint(5, (6,))
    action = torch.nn.functional.one_hot(index, 5).float()
    assert torch.allclose(ours.log_prob(action), ref.log_prob(index), atol=1e-6)
    assert torch.allclose(ours.entropy(), ref.entropy(), atol=1e-6)


def test_bounded_normal_dist_matches_torch_normal():
    torch.manual_seed(0)
    mean, std = torch.randn(7, 2).tanh(), torch.rand(7, 2) * 0.9 + 0.1
    ours = BoundedNormalDist(mean, std)
    ref = D.Independent(D.Normal(mean, std), 1)
    action = torch.randn(7, 2) * 2  # also outside [-1, 1]: the unclipped sample is scored
    assert torch.allclose(ours.log_prob(action), ref.log_prob(action), atol=1e-5)
    assert torch.allclose(ours.entropy(), ref.entropy(), atol=1e-6)
    sample = ours.sample()
    assert sample.shape == (7, 2)


def test_bounded_normal_sample_is_reparameterised_and_unclipped():
    mean = torch.full((20000, 1), 0.9, requires_grad=True)
    std = torch.full((20000, 1), 0.5)
    sample = BoundedNormalDist(mean, std).sample()
    assert (sample > 1.0).float().mean().item() == pytest.approx(0.42, abs=0.02)  # P(z > 0.2)
    sample.sum().backward()
    assert torch.equal(mean.grad, torch.ones_like(mean))  # d sample / d mean = 1 everywhere


def _dynamics_agent(**changes):
    env = gym.make("Pendulum-v1")
    config = tiny_config()
    for key, value in changes.items():
        section, name = key.split(".")
        setattr(getattr(config, section), name, value)
    agent = DreamerAgent(env.observation_space, env.action_space, config)
    with torch.no_grad():  # a reward head that depends on the state, so returns depend on a_t
        torch.nn.init.normal_(agent.world_model.reward_head.net[-1].weight)
    batch = agent.batch_to_torch(synthetic_batch(config, 3, 1, False))
    with torch.no_grad():
        _, _, posts, _ = agent.world_model.loss(batch)
    return agent, batch, posts


def test_the_actor_reads_detached_states_in_the_dream(monkeypatch):
    agent, batch, posts = _dynamics_agent()
    seen = []
    forward = type(agent.actor).forward

    def spy(self, state):
        seen.append(state.deter.requires_grad or state.stoch.requires_grad)
        return forward(self, state)

    monkeypatch.setattr(type(agent.actor), "forward", spy)
    traj = agent.imagine(posts.flatten())
    assert traj.states.deter.requires_grad  # the dream itself carries gradients...
    assert len(seen) == agent.config.actor_critic.horizon and not any(seen)  # ...not its input


def test_dynamics_backprop_baseline_keeps_its_gradient_and_continues_have_none(monkeypatch):
    import dreamer.agent as agent_module

    agent, batch, posts = _dynamics_agent()
    captured = {}
    advantage, lambda_returns = agent_module.losses_ac.advantage, agent_module.lambda_returns

    def spy_advantage(returns, values, scale):
        captured["values"] = values
        return advantage(returns, values, scale)

    def spy_returns(rewards, values, cont, gamma, lam):
        captured["cont"] = cont
        return lambda_returns(rewards, values, cont, gamma, lam)

    monkeypatch.setattr(agent_module.losses_ac, "advantage", spy_advantage)
    monkeypatch.setattr(agent_module, "lambda_returns", spy_returns)
    agent.train_actor_critic(posts, batch)
    assert captured["values"].requires_grad  # v_t not detached (2023 dynamics backprop)
    assert not captured["cont"].requires_grad  # no gradient through the continue head


@pytest.mark.parametrize("imag_cont", ["prob", "mode"])
def test_agent_weights_zero_for_a_terminal_start(monkeypatch, imag_cont):
    import dreamer.agent as agent_module

    env = gym.make("CartPole-v1")
    config = tiny_config()
    config.actor_critic.imag_cont = imag_cont
    agent = DreamerAgent(env.observation_space, env.action_space, config)
    batch = synthetic_batch(config, 4, 2, True)
    batch["is_terminal"][1, 3] = True  # start N = 1 * T + 3 is terminal
    batch = agent.batch_to_torch(batch)
    captured = {}
    weights = agent_module.losses_ac.imagination_weights

    def spy(start_cont, cont, gamma):
        captured["cont"] = cont
        captured["w"] = weights(start_cont, cont, gamma)
        return captured["w"]

    monkeypatch.setattr(agent_module.losses_ac, "imagination_weights", spy)
    agent.train_step(batch)
    w, cont = captured["w"], captured["cont"]
    T = config.replay.seq_len
    assert torch.equal(w[:, T + 3], torch.zeros_like(w[:, T + 3]))
    assert torch.allclose(w[0], torch.ones_like(w[0]).index_fill(0, torch.tensor([T + 3]), 0))
    if imag_cont == "mode":
        assert set(cont.unique().tolist()) <= {0.0, 1.0}
    gamma = config.actor_critic.gamma
    expected = torch.cumprod(torch.cat([w[:1], gamma * cont[:-1]]), 0)  # by hand, per start
    assert torch.allclose(w, expected, atol=1e-6)


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_actor_and_critic_losses_share_no_parameters(env_id):
    # What lets one backward pass of (actor loss + critic loss) train both exactly.
    env = gym.make(env_id)
    config = tiny_config()
    agent = DreamerAgent(env.observation_space, env.action_space, config)
    obs_dim, discrete = env.observation_space.shape[0], env_id == "CartPole-v1"
    action_dim = 2 if discrete else 1
    batch = agent.batch_to_torch(synthetic_batch(config, obs_dim, action_dim, discrete))
    with torch.no_grad():
        _, _, posts, _ = agent.world_model.loss(batch)
    actor_loss, critic_loss, _ = agent.actor_critic_losses(posts, batch)
    actor, critic = list(agent.actor.parameters()), list(agent.critic.parameters())

    def grads(loss, params):
        found = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        return [torch.zeros_like(p) if g is None else g for g, p in zip(found, params, strict=True)]

    assert all(g.abs().max() == 0 for g in grads(actor_loss, critic))
    assert all(g.abs().max() == 0 for g in grads(critic_loss, actor))
    assert any(g.abs().max() > 0 for g in grads(actor_loss, actor))
    assert any(g.abs().max() > 0 for g in grads(critic_loss, critic))


def _np_twohot_ce(logits: np.ndarray, values: np.ndarray, low=-20.0, high=20.0) -> np.ndarray:
    """-sum_k twohot(symlog v)_k log softmax(logits)_k, over 255 bins evenly spaced in symlog."""
    n = logits.shape[-1]
    pos = (np.sign(values) * np.log1p(np.abs(values)) - low) / (high - low) * (n - 1)
    below = np.floor(pos).astype(int)
    frac = pos - below
    log_probs = logits - logits.max(-1, keepdims=True)
    log_probs = log_probs - np.log(np.exp(log_probs).sum(-1, keepdims=True))
    pick = np.take_along_axis
    return -(
        (1 - frac) * pick(log_probs, below[..., None], -1)[..., 0]
        + frac * pick(log_probs, below[..., None] + 1, -1)[..., 0]
    )


def test_replay_critic_loss_matches_numpy_returns_and_cross_entropy():
    # R_t = r_{t+1} + g (1 - term_{t+1}) ((1 - l) boot_{t+1} + l R_{t+1}), l = lam (1 - last_{t+1}),
    # R_{T-1} = boot_{T-1}; loss = mean over t < T-1 of (1 - last_t) (CE(R_t) + reg CE(slow_t))
    rng = np.random.default_rng(0)
    B, T, gamma, lam, reg = 2, 6, 0.9, 0.8, 1.0
    reward = rng.normal(0, 3, (B, T))
    boot = rng.normal(0, 10, (B, T))
    slow = rng.normal(0, 10, (B, T))
    logits = rng.normal(0, 1, (B, T, 255))
    term, last = np.zeros((B, T)), np.zeros((B, T))
    term[0, 3] = last[0, 3] = 1.0  # row 0: an episode terminates at step 3, another starts at 4
    last[1, 2] = 1.0  # row 1: an episode is cut off (truncated) at step 2
    returns = np.zeros((B, T))
    returns[:, -1] = boot[:, -1]
    for t in reversed(range(T - 1)):
        lam_next = lam * (1 - last[:, t + 1])
        mixed = (1 - lam_next) * boot[:, t + 1] + lam_next * returns[:, t + 1]
        returns[:, t] = reward[:, t + 1] + gamma * (1 - term[:, t + 1]) * mixed
    per_step = _np_twohot_ce(logits, returns) + reg * _np_twohot_ce(logits, slow)
    expected = ((1 - last) * per_step)[:, :-1].mean()

    f = lambda x: torch.tensor(x, dtype=torch.float32)  # noqa: E731
    batch = {"reward": f(reward), "is_terminal": f(term), "is_last": f(last)}
    loss = replay_critic_loss(TwohotEncoder(), f(logits), f(slow), batch, f(boot), gamma, lam, reg)
    assert loss.item() == pytest.approx(expected, rel=1e-4)
    # the truncated step 2 of row 1 bootstraps: R_1 = r_2 + g boot_2, no lambda past it
    assert returns[1, 1] == pytest.approx(reward[1, 2] + gamma * boot[1, 2])


def test_critic_loss_matches_numpy_weighted_cross_entropy():
    # L = mean_t w_t [CE(v(s_t), twohot(R_t)) + reg CE(v(s_t), twohot(v_slow(s_t)))]
    rng = np.random.default_rng(1)
    H, N, reg = 4, 3, 1.0
    logits, returns, slow = (
        rng.normal(0, 1, (H, N, 255)),
        rng.normal(0, 9, (H, N)),
        rng.normal(0, 9, (H, N)),
    )
    weight = rng.uniform(0, 1, (H, N))
    expected = (
        weight * (_np_twohot_ce(logits, returns) + reg * _np_twohot_ce(logits, slow))
    ).mean()
    f = lambda x: torch.tensor(x, dtype=torch.float32)  # noqa: E731
    loss = critic_loss(TwohotEncoder(), f(logits), f(returns), f(slow), f(weight), reg)
    assert loss.item() == pytest.approx(expected, rel=1e-4)


def test_continuous_actor_std_is_bounded_sigmoid_of_its_output():
    # std = (max - min) sigmoid(s + 2) + min, mean = tanh(m): s = 0 gives 0.9 * 0.8808 + 0.1
    actor = Actor(5, 2, discrete=False, units=8, layers=1, min_std=0.1, max_std=1.0)
    feat = torch.randn(7, 5)
    m, s = actor.net(feat).chunk(2, -1)
    dist = actor(feat)
    torch.testing.assert_close(dist.mean, torch.tanh(m))
    torch.testing.assert_close(dist.std, 0.9 / (1 + torch.exp(-(s + 2))) + 0.1)
    torch.nn.init.zeros_(actor.net[-1].weight)
    torch.nn.init.zeros_(actor.net[-1].bias)
    assert torch.allclose(actor(feat).std, torch.full((7, 2), 0.1 + 0.9 / (1 + math.exp(-2))))
