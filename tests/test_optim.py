"""LaProp + AGC + warm-up against steps computed by hand (numpy, from the official formulas)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dreamer.optim import LaProp, clip_by_agc


def _reference(p0, grads, lr, b1, b2, eps, agc, pmin, warmup):
    """The official chain written out in numpy: AGC, rms scaling, momentum, warm-up."""
    p, v, m = np.array(p0, float), np.zeros(len(p0)), np.zeros(len(p0))
    for t, g in enumerate(grads, start=1):
        g = np.array(g, float)
        g = g / max(1.0, np.linalg.norm(g) / (agc * max(pmin, np.linalg.norm(p))))
        v = b2 * v + (1 - b2) * g**2
        u = g / (np.sqrt(v / (1 - b2**t)) + eps)
        m = b1 * m + (1 - b1) * u
        p = p - lr * min(1.0, (t - 1) / warmup) * m / (1 - b1**t)
    return p


def test_laprop_matches_the_hand_computed_chain():
    p0, grads = [0.5, -2.0, 1.0], [[0.1, 0.2, -0.3], [3.0, -1.0, 0.5], [0.01, 0.0, 0.02]]
    kw = dict(lr=0.1, b1=0.9, b2=0.999, eps=1e-20, agc=0.3, pmin=1e-3, warmup=2)
    p = torch.tensor(p0, dtype=torch.float64, requires_grad=True)
    opt = LaProp([p], lr=kw["lr"], eps=kw["eps"], agc=kw["agc"], warmup=kw["warmup"])
    for g in grads:
        p.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
    np.testing.assert_allclose(p.detach().numpy(), _reference(p0, grads, **kw), rtol=1e-12)


def test_first_step_is_warm_up_zero_and_the_second_moves_by_about_lr():
    p = torch.tensor([1.0, -1.0], requires_grad=True)
    opt = LaProp([p], lr=0.01, warmup=1)
    p.grad = torch.tensor([1e-3, -1e-3])
    opt.step()
    assert torch.equal(p.detach(), torch.tensor([1.0, -1.0]))  # lr_1 = 0 (optax's ramp)
    opt.step()
    # u = g / |g| = sign(g) for a steady gradient, so the step is lr * sign(g) after bias fixes
    assert torch.allclose(p.detach(), torch.tensor([0.99, -0.99]), atol=1e-6)


def test_agc_caps_each_tensors_gradient_at_clip_times_its_norm():
    param, grad = torch.tensor([3.0, 4.0]), torch.tensor([30.0, 0.0])  # ||p|| = 5, ||g|| = 30
    clipped = clip_by_agc(param, grad, clip=0.3, pmin=1e-3)
    assert clipped.norm().item() == pytest.approx(1.5)  # 0.3 * 5, direction kept
    assert torch.equal(clip_by_agc(param, grad / 100, 0.3, 1e-3), grad / 100)  # small: as is
    zero = clip_by_agc(torch.zeros(2), torch.tensor([1.0, 0.0]), 0.3, 1e-3)
    assert zero.norm().item() == pytest.approx(3e-4)  # a zero tensor still moves: pmin


def test_found_inf_skips_the_step_even_with_nan_gradients():
    p = torch.tensor([1.0, 2.0], requires_grad=True)
    opt = LaProp([p], lr=0.1, warmup=1)
    for _ in range(2):
        p.grad = torch.tensor([0.5, -0.5])
        opt.step()
    before = p.detach().clone(), {k: v.clone() for k, v in opt.state[p].items()}
    p.grad = torch.tensor([float("nan"), 1.0])
    opt.found_inf = torch.tensor(1.0)
    opt.step()
    assert torch.equal(p.detach(), before[0])
    assert all(torch.equal(opt.state[p][k], v) for k, v in before[1].items())


def test_agent_trains_with_laprop_and_skips_a_non_finite_update():
    import gymnasium as gym
    from conftest import tiny_config

    from dreamer.agent import DreamerAgent
    from dreamer.bench import synthetic_batch

    env = gym.make("CartPole-v1")
    config = tiny_config()
    config.optimizer, config.warmup = "laprop", 1
    agent = DreamerAgent(env.observation_space, env.action_space, config)
    assert isinstance(agent.wm_opt, LaProp)
    batch = synthetic_batch(config, 4, 2, True)
    before = {k: v.clone() for k, v in agent.world_model.state_dict().items()}
    for _ in range(3):
        metrics = agent.train_step(batch)
    assert all(np.isfinite(v) for v in metrics.values())
    after = agent.world_model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    batch["obs"][0, 2, 0] = np.nan
    snapshot = {k: v.clone() for k, v in agent.state_dict().items()}
    agent.train_step(batch)
    assert agent.skipped_updates == 1
    now = agent.state_dict()
    assert all(torch.equal(snapshot[k], now[k]) for k in snapshot if "slow_critic" not in k)
