"""The maths of dreamer.utils: symlog, twohot, KL balancing, lambda-returns, normalisation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dreamer.config import KLBalanceConfig
from dreamer.utils import (
    PercentileNormalizer,
    TwohotEncoder,
    categorical_kl,
    kl_balanced_loss,
    kl_terms,
    lambda_returns,
    onehot_matmul,
    replay_lambda_returns,
    sample_categorical,
    sample_onehot,
    symexp,
    symlog,
    unimix_logits,
)

# -- symlog / symexp ---------------------------------------------------------------------------


def test_symexp_inverts_symlog_over_wide_range():
    x = torch.cat([-torch.logspace(-6, 8, 200), torch.zeros(1), torch.logspace(-6, 8, 200)])
    x = x.double()
    assert torch.allclose(symexp(symlog(x)), x, rtol=1e-10, atol=0)
    y = torch.linspace(-15, 15, 301, dtype=torch.float64)
    assert torch.allclose(symlog(symexp(y)), y, rtol=0, atol=1e-10)


def test_symlog_hand_values_and_odd_symmetry():
    e1 = math.e - 1
    values = symlog(torch.tensor([0.0, e1, -e1, 99.0], dtype=torch.float64))
    expected = torch.tensor([0.0, 1.0, -1.0, math.log(100.0)], dtype=torch.float64)
    assert torch.allclose(values, expected, atol=1e-12)
    assert symlog(torch.tensor(0.0)).item() == 0.0
    x = torch.randn(1000) * 100
    assert torch.equal(symlog(-x), -symlog(x))
    assert torch.equal(symexp(-x / 10), -symexp(x / 10))
    # Monotone and compressive: symlog(x) < x for x > 0.
    pos = torch.logspace(-3, 6, 50)
    assert (symlog(pos) < pos).all()
    assert (symlog(pos).diff() > 0).all()


# -- twohot ------------------------------------------------------------------------------------


@pytest.fixture
def twohot() -> TwohotEncoder:
    return TwohotEncoder(255, -20.0, 20.0)


def _test_values() -> torch.Tensor:
    grid = torch.cat([-torch.logspace(-3, 4, 60), torch.logspace(-3, 4, 60)])
    hand = torch.tensor([0.0, 500.0, -500.0, 1.0, -1.0, 1e4, -1e4, 0.5, 3.7, 21.0])
    return torch.cat([grid, hand])


def test_twohot_rows_sum_to_one_with_two_adjacent_nonzeros(twohot):
    enc = twohot.encode(_test_values())
    assert enc.shape == (130, 255)
    assert torch.allclose(enc.sum(-1), torch.ones(130), atol=1e-6)
    assert (enc >= 0).all()
    for row in enc:
        nz = torch.nonzero(row).flatten()
        assert 1 <= len(nz) <= 2
        if len(nz) == 2:
            assert nz[1] - nz[0] == 1


def test_twohot_decode_inverts_encode(twohot):
    x = _test_values()
    decoded = twohot.decode(twohot.encode(x))
    assert torch.allclose(decoded, x, rtol=1e-4, atol=1e-5)
    # The two values the rest of the library relies on most.
    assert decoded[x == 500.0].item() == pytest.approx(500.0, rel=1e-4)
    assert abs(decoded[x == 0.0][0].item()) < 1e-6


def test_twohot_bins_uniform_in_symlog_space(twohot):
    bins = twohot.bins
    assert bins.shape == (255,)
    assert bins[0].item() == pytest.approx(-20.0)
    assert bins[-1].item() == pytest.approx(20.0)
    assert torch.allclose(bins.diff(), torch.full((254,), 40.0 / 254), atol=1e-5)
    # linspace(symlog(-20), symlog(20)) would top out at 20 raw; symlog-space bins reach 5e8.
    assert symexp(bins[-1]).item() > 1e8
    assert symexp(bins[0]).item() < -1e8


def test_twohot_loss_matches_hand_cross_entropy(twohot):
    values = torch.tensor([[0.0, 1.0, -3.0, 500.0, 1e4], [0.2, -0.2, 7.0, -800.0, 2.5]])
    logits = torch.randn(2, 5, 255)
    loss = twohot.loss(logits, values)
    assert loss.shape == values.shape
    # Independent reference: build the twohot target by hand in numpy (float64).
    bins = np.linspace(-20.0, 20.0, 255)
    target = np.zeros((2, 5, 255))
    for idx in np.ndindex(2, 5):
        v = float(values[idx])
        y = np.sign(v) * np.log1p(abs(v))
        k = np.searchsorted(bins, y, side="right") - 1
        k = min(max(k, 0), 253)
        w = (y - bins[k]) / (bins[k + 1] - bins[k])
        target[idx + (k,)] = 1 - w
        target[idx + (k + 1,)] = w
    log_probs = torch.log_softmax(logits.double(), -1).numpy()
    expected = -(target * log_probs).sum(-1)
    assert np.allclose(loss.numpy(), expected, rtol=1e-4, atol=1e-4)


def test_twohot_clamps_out_of_range_values_to_end_bins(twohot):
    enc = twohot.encode(torch.tensor([1e10, -1e10, 1e30]))
    assert enc[0, -1].item() == pytest.approx(1.0)
    assert enc[1, 0].item() == pytest.approx(1.0)
    assert enc[2, -1].item() == pytest.approx(1.0)
    assert enc.sum().item() == pytest.approx(3.0)


def test_twohot_uniform_probs_decode_to_exactly_zero(twohot):
    assert torch.equal(twohot.decode_logits(torch.zeros(3, 255)), torch.zeros(3))
    assert twohot.decode(twohot.encode(torch.zeros(4))).abs().max().item() == 0.0


# -- KL balancing ------------------------------------------------------------------------------


def _plain_kl(post: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    """Reference KL[post || prior], summed over G and averaged over the rest, both sides live."""
    lp, lq = torch.log_softmax(post, -1), torch.log_softmax(prior, -1)
    return (lp.exp() * (lp - lq)).sum((-2, -1)).mean()


def test_kl_value_hand_computed_with_numpy():
    post = np.array([[[1.0, 0.0, -1.0], [0.5, 0.5, 2.0]]])  # (1, G=2, K=3)
    prior = np.array([[[0.0, 0.0, 0.0], [2.0, -1.0, 0.0]]])
    p = np.exp(post) / np.exp(post).sum(-1, keepdims=True)
    q = np.exp(prior) / np.exp(prior).sum(-1, keepdims=True)
    expected = (p * np.log(p / q)).sum()
    value = categorical_kl(torch.tensor(post), torch.tensor(prior))
    assert value.shape == (1,)
    assert value.item() == pytest.approx(expected, rel=1e-5)
    cfg = KLBalanceConfig(dyn_weight=0.5, rep_weight=0.1, free_bits=0.0)
    loss = kl_balanced_loss(torch.tensor(post), torch.tensor(prior), cfg)
    assert loss.item() == pytest.approx(0.6 * expected, rel=1e-5)


def test_kl_equal_logits_gives_weighted_free_bits():
    logits = torch.randn(3, 5, 4, 6)
    cfg = KLBalanceConfig(dyn_weight=0.5, rep_weight=0.1, free_bits=1.0)
    assert kl_balanced_loss(logits, logits.clone(), cfg).item() == pytest.approx(0.6)
    cfg = KLBalanceConfig(dyn_weight=1.0, rep_weight=0.3, free_bits=2.5)
    assert kl_balanced_loss(logits, logits.clone(), cfg).item() == pytest.approx(1.3 * 2.5)


def _grads(post, prior, cfg):
    post = post.clone().requires_grad_(True)
    prior = prior.clone().requires_grad_(True)
    kl_balanced_loss(post, prior, cfg).backward()
    return post.grad, prior.grad


def test_kl_weights_reach_only_their_side():
    post, prior = 2 * torch.randn(3, 4, 4, 5), 2 * torch.randn(3, 4, 4, 5)
    p, q = post.clone().requires_grad_(True), prior.clone().requires_grad_(True)
    _plain_kl(p, q).backward()
    plain_post, plain_prior = p.grad, q.grad
    assert plain_post.abs().max() > 1e-3 and plain_prior.abs().max() > 1e-3

    g_post, g_prior = _grads(post, prior, KLBalanceConfig(0.5, 0.1, 0.0))
    assert torch.allclose(g_prior, 0.5 * plain_prior, atol=1e-6)
    assert torch.allclose(g_post, 0.1 * plain_post, atol=1e-6)

    g_post, g_prior = _grads(post, prior, KLBalanceConfig(0.0, 0.1, 0.0))
    assert torch.equal(g_prior, torch.zeros_like(g_prior))
    assert torch.allclose(g_post, 0.1 * plain_post, atol=1e-6)

    g_post, g_prior = _grads(post, prior, KLBalanceConfig(0.5, 0.0, 0.0))
    assert torch.equal(g_post, torch.zeros_like(g_post))
    assert torch.allclose(g_prior, 0.5 * plain_prior, atol=1e-6)


def test_kl_below_free_bits_has_exactly_zero_gradient():
    prior = torch.randn(3, 4, 4, 5)
    post = prior + 0.05 * torch.randn_like(prior)
    assert categorical_kl(post, prior).max() < 1.0
    g_post, g_prior = _grads(post, prior, KLBalanceConfig(0.5, 0.1, 1.0))
    assert torch.equal(g_post, torch.zeros_like(g_post))
    assert torch.equal(g_prior, torch.zeros_like(g_prior))


def test_free_bits_clip_per_step_after_summing_over_latents():
    G = 4
    post = torch.tensor([2.0, 0.0]).repeat(1, G, 1)  # (1, G, K=2)
    prior = torch.zeros(1, G, 2)
    p = np.array([math.exp(2) / (math.exp(2) + 1), 1 / (math.exp(2) + 1)])
    per_variable = float((p * np.log(p / 0.5)).sum())
    assert 0.3 < per_variable < 1.0 < G * per_variable  # each below free bits, the sum above
    dyn, rep = kl_terms(post, prior, free_bits=1.0)
    assert dyn.item() == pytest.approx(G * per_variable, rel=1e-5)
    assert rep.item() == pytest.approx(G * per_variable, rel=1e-5)
    g_post, g_prior = _grads(post, prior, KLBalanceConfig(0.5, 0.1, 1.0))
    # Per-variable clipping would zero both; per-step clipping after the sum does not.
    assert g_post.abs().max() > 1e-3
    assert g_prior.abs().max() > 1e-3


# -- lambda-returns ----------------------------------------------------------------------------


def test_lambda_returns_hand_example():
    gamma, lam = 0.9, 0.5
    rewards = torch.tensor([[1.0], [2.0], [3.0]])  # r_1, r_2, r_3
    conts = torch.tensor([[1.0], [0.5], [1.0]])  # c_1, c_2, c_3
    values = torch.tensor([[10.0], [20.0], [30.0], [40.0]])  # v_0 .. v_3
    # R_3 = v_3 = 40
    # R_2 = 3 + 0.9 * 1.0 * (0.5 * 40 + 0.5 * 40)     = 3 + 36         = 39
    # R_1 = 2 + 0.9 * 0.5 * (0.5 * 30 + 0.5 * 39)     = 2 + 0.45 * 34.5 = 17.525
    # R_0 = 1 + 0.9 * 1.0 * (0.5 * 20 + 0.5 * 17.525) = 1 + 0.9 * 18.7625 = 17.88625
    out = lambda_returns(rewards, values, conts, gamma, lam)
    assert out.shape == (3, 1)
    assert torch.allclose(out[:, 0], torch.tensor([17.88625, 17.525, 39.0]), atol=1e-5)


def test_lambda_returns_lam0_is_one_step_td():
    H, N, gamma = 5, 7, 0.97
    r, c, v = torch.randn(H, N), torch.rand(H, N), torch.randn(H + 1, N)
    out = lambda_returns(r, v, c, gamma, 0.0)
    assert out.shape == (H, N)
    assert torch.allclose(out, r + gamma * c * v[1:], atol=1e-6)


def test_lambda_returns_lam1_is_bootstrapped_monte_carlo():
    H, N, gamma = 5, 7, 0.97
    r, c, v = torch.randn(H, N), torch.rand(H, N), torch.randn(H + 1, N)
    out = lambda_returns(r, v, c, gamma, 1.0)
    rn, cn, vn = r.double().numpy(), c.double().numpy(), v.double().numpy()
    expected = np.zeros((H, N))
    for t in range(H):
        disc = np.ones(N)
        for k in range(t, H):
            expected[t] += disc * rn[k]
            disc = disc * gamma * cn[k]
        expected[t] += disc * vn[H]
    assert np.allclose(out.numpy(), expected, atol=1e-5)


def test_lambda_returns_bad_shapes_raise():
    H, N = 4, 3
    r, c = torch.zeros(H, N), torch.ones(H, N)
    with pytest.raises(ValueError):
        lambda_returns(r, torch.zeros(H, N), c)
    with pytest.raises(ValueError):
        lambda_returns(r, torch.zeros(H + 2, N), c)
    with pytest.raises(ValueError):
        lambda_returns(r, torch.zeros(H + 1, N), torch.ones(H + 1, N))


def test_replay_lambda_returns_hand_example():
    gamma, lam = 0.9, 0.5
    rewards = torch.tensor([0.0, 1.0, 2.0, 3.0])  # r_t received on arriving at x_t
    boot = torch.tensor([10.0, 20.0, 30.0, 40.0])  # imagined returns from x_t
    none = torch.zeros(4)
    # no episode end: R_3 = 40, R_2 = 3 + 0.9 * 40 = 39, R_1 = 2 + 0.9 * (0.5 * 30 + 0.5 * 39)
    # = 33.05, R_0 = 1 + 0.9 * (0.5 * 20 + 0.5 * 33.05) = 24.8725
    out = replay_lambda_returns(rewards, boot, none, none, gamma, lam)
    assert torch.allclose(out, torch.tensor([24.8725, 33.05, 39.0, 40.0]))
    # x_2 ends its episode by a time limit: R_1 = 2 + 0.9 * 30 bootstraps, never reads x_3
    last = torch.tensor([0.0, 0.0, 1.0, 0.0])
    out = replay_lambda_returns(rewards, boot, none, last, gamma, lam)
    assert torch.allclose(out[:2], torch.tensor([1 + 0.9 * (0.5 * 20 + 0.5 * 29.0), 29.0]))
    # x_2 is terminal: R_1 = r_2 = 2, nothing after it counts
    out = replay_lambda_returns(rewards, boot, last, last, gamma, lam)
    assert torch.allclose(out[:2], torch.tensor([1 + 0.9 * (0.5 * 20 + 0.5 * 2.0), 2.0]))


def test_replay_lambda_returns_never_read_past_an_episode_end():
    T, B = 8, 5
    rewards, boot = torch.randn(T, B), torch.randn(T, B)
    term = torch.zeros(T, B)
    last = torch.zeros(T, B)
    last[4] = 1.0  # x_4 ends the episode; x_5.. belong to the next one
    term[4, :2] = 1.0
    out = replay_lambda_returns(rewards, boot, term, last)
    rewards2, boot2 = rewards.clone(), boot.clone()
    rewards2[5:], boot2[5:] = torch.randn(3, B), torch.randn(3, B)
    out2 = replay_lambda_returns(rewards2, boot2, term, last)
    assert torch.equal(out[:4], out2[:4])


def test_replay_lambda_returns_without_episode_ends_match_numpy_recursion():
    # no flags: R_t = r_{t+1} + gamma ((1 - lam) boot_{t+1} + lam R_{t+1}), R_{T-1} = boot_{T-1}
    T, B, gamma, lam = 6, 3, 0.97, 0.8
    rewards, boot, zeros = torch.randn(T, B), torch.randn(T, B), torch.zeros(T, B)
    out = replay_lambda_returns(rewards, boot, zeros, zeros, gamma, lam)
    r, v = rewards.double().numpy(), boot.double().numpy()
    expected = np.zeros((T, B))
    expected[-1] = v[-1]
    for t in reversed(range(T - 1)):
        expected[t] = r[t + 1] + gamma * ((1 - lam) * v[t + 1] + lam * expected[t + 1])
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(out[-1], boot[-1])


# -- return normalisation ----------------------------------------------------------------------


def test_percentile_normalizer_one_update_hits_floor():
    norm = PercentileNormalizer(decay=0.99)
    norm.update(torch.linspace(0, 100, 1001))  # P5 = 5, P95 = 95
    assert norm.low.item() == pytest.approx(0.05, rel=1e-5)
    assert norm.high.item() == pytest.approx(0.95, rel=1e-5)
    assert norm.scale.item() == 1.0  # 0.01 * 90 = 0.9 -> floor 1


def test_percentile_normalizer_matches_hand_ema():
    norm = PercentileNormalizer(decay=0.99, low=0.05, high=0.95)
    rng = np.random.default_rng(0)
    lo = hi = 0.0
    for _ in range(150):
        x = rng.normal(10.0, 50.0, size=500).astype(np.float32)
        norm.update(torch.from_numpy(x))
        lo = 0.99 * lo + 0.01 * np.percentile(x.astype(np.float64), 5)
        hi = 0.99 * hi + 0.01 * np.percentile(x.astype(np.float64), 95)
    expected = max(1.0, hi - lo)
    assert expected > 50  # far above the floor, so the EMA itself is tested
    assert norm.scale.item() == pytest.approx(expected, rel=1e-4)
    x = torch.randn(10) * 100
    assert torch.allclose(norm.normalize(x), x / expected, rtol=1e-4)
    assert torch.allclose(norm(x), x / expected, rtol=1e-4)


def test_percentile_normalizer_decay0_and_floor():
    norm = PercentileNormalizer(decay=0.0)
    norm.update(torch.rand(100_000) * 100)
    assert norm.scale.item() == pytest.approx(90.0, abs=1.0)
    small = PercentileNormalizer(decay=0.0)
    small.update(torch.rand(1000) * 0.1)
    assert small.scale.item() == 1.0
    x = torch.randn(5)
    assert torch.equal(small.normalize(x), x)


# -- unimix and straight-through sampling ------------------------------------------------------


def test_unimix_keeps_every_class_above_floor():
    K, u = 6, 0.01
    logits = torch.randn(50, 3, K) * 100  # very peaked
    probs = unimix_logits(logits, u).exp()
    assert torch.allclose(probs.sum(-1), torch.ones(50, 3), atol=1e-5)
    assert probs.min().item() >= u / K - 1e-7
    assert torch.softmax(logits, -1).min().item() < 1e-10  # without the mix it would vanish
    # The mix is exactly (1 - u) softmax + u / K.
    expected = 0.99 * torch.softmax(logits, -1) + u / K
    assert torch.allclose(probs, expected, atol=1e-6)


def test_sample_onehot_forward_is_exact_onehot():
    sample = sample_onehot(torch.randn(200, 5))
    assert set(sample.detach().unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(sample.detach().sum(-1), torch.ones(200))
    assert torch.equal((sample.detach() == 1).sum(-1), torch.ones(200, dtype=torch.long))


def test_sample_onehot_straight_through_gradient():
    logits = torch.randn(8, 5, requires_grad=True)
    w = torch.randn(8, 5)
    (sample_onehot(logits) * w).sum().backward()
    st_grad = logits.grad.clone()
    logits.grad = None
    (torch.softmax(logits, -1) * w).sum().backward()
    assert st_grad.abs().max() > 1e-4
    assert torch.allclose(st_grad, logits.grad, atol=1e-6)


def test_sample_onehot_frequencies_match_softmax():
    logits = torch.tensor([1.0, 0.0, -1.0, 2.0, 0.5])
    samples = sample_onehot(logits.expand(40_000, 5))
    freq = samples.detach().mean(0)
    assert torch.allclose(freq, torch.softmax(logits, -1), atol=0.02)
    # Pre-drawn uniform noise: same noise, same sample.
    u = torch.rand(100, 1)
    assert torch.equal(
        sample_onehot(logits.expand(100, 5), u), sample_onehot(logits.expand(100, 5), u)
    )


def test_onehot_matmul_equals_the_product_with_the_one_hot():
    G, K, out = 4, 6, 5
    index = torch.randint(0, K, (2, 3, G))
    onehot = torch.nn.functional.one_hot(index, K).double().flatten(-2)  # (2, 3, G*K)
    weight = torch.randn(out, G * K, dtype=torch.double)
    weight.requires_grad_(True)
    out = onehot_matmul(onehot, index, weight)
    assert torch.allclose(out, onehot @ weight.T, atol=1e-12)
    grad = torch.randn_like(out)
    out.backward(grad)  # dL/dW = grad^T @ onehot, summed over the leading dims
    assert torch.allclose(weight.grad, grad.flatten(0, 1).T @ onehot.flatten(0, 1), atol=1e-12)


def test_sample_categorical_index_is_the_sampled_class():
    logits = torch.randn(50, 4, 7)
    onehot, index = sample_categorical(logits)
    assert index.shape == (50, 4) and index.dtype == torch.int64
    assert torch.equal(onehot.detach().argmax(-1), index)


def test_sample_categorical_is_the_same_with_and_without_gradients():
    # The no-grad path skips the straight-through terms; the draw itself must not change.
    logits = torch.randn(64, 4, 7, requires_grad=True)
    u = torch.rand(64, 4, 1)
    onehot, index = sample_categorical(logits, u)
    with torch.no_grad():
        plain, plain_index = sample_categorical(logits, u)
    assert onehot.requires_grad and not plain.requires_grad
    assert torch.equal(plain, onehot.detach()) and torch.equal(plain_index, index)
    # Inverse-CDF: a draw of 0 picks the first class with mass, a draw near 1 the last.
    edge = torch.tensor([[0.0], [1.0 - 1e-7]])
    _, edge_index = sample_categorical(torch.zeros(2, 5), edge)
    assert edge_index.tolist() == [0, 4]


def test_onehot_matmul_without_gradients_equals_the_product():
    G, K, out = 3, 5, 4
    index = torch.randint(0, K, (7, G))
    onehot = torch.nn.functional.one_hot(index, K).double().flatten(-2)
    weight = torch.randn(out, G * K, dtype=torch.double, requires_grad=True)
    with torch.no_grad():
        assert torch.allclose(onehot_matmul(onehot, index, weight), onehot @ weight.T, atol=1e-12)
    frozen = weight.detach()  # a frozen layer (the world model during imagination)
    assert torch.allclose(onehot_matmul(onehot, index, frozen), onehot @ frozen.T, atol=1e-12)
