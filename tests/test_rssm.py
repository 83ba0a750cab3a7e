"""RSSM: shapes, resets at is_first, unimix, imagination."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dreamer.networks import MLP, ContinueHead, RewardHead
from dreamer.rssm import RSSM, LayerNormGRUCell, State, imagine_rollout

B, T, E, A = 3, 6, 10, 2


@pytest.fixture
def rssm(rssm_config) -> RSSM:
    return RSSM(rssm_config, action_dim=A, embed_dim=E)


def _inputs(reset_at: int | None = None):
    embed = torch.randn(B, T, E)
    prev_action = torch.nn.functional.one_hot(torch.randint(0, A, (B, T)), A).float()
    is_first = torch.zeros(B, T, dtype=torch.bool)
    is_first[:, 0] = True
    if reset_at is not None:
        is_first[0, reset_at] = True  # batch element 0 starts a new episode at reset_at
    return embed, prev_action, is_first


def test_observe_shapes(rssm, rssm_config):
    G, K, D = rssm_config.stoch, rssm_config.classes, rssm_config.deter
    states, post, prior = rssm.observe(*_inputs())
    assert states.deter.shape == (B, T, D)
    assert states.stoch.shape == (B, T, G * K)
    assert states.feat.shape == (B, T, D + G * K) == (B, T, rssm.feat_dim)
    assert post.shape == prior.shape == (B, T, G, K)
    assert states.flatten().deter.shape == (B * T, D)
    # Stochastic state is an exact one-hot per latent variable.
    stoch = states.stoch.detach().unflatten(-1, (G, K))
    assert torch.equal(stoch.sum(-1), torch.ones(B, T, G))
    assert set(stoch.unique().tolist()) <= {0.0, 1.0}


def test_obs_step_and_imagine_step_shapes(rssm, rssm_config):
    G, K, D = rssm_config.stoch, rssm_config.classes, rssm_config.deter
    init = rssm.initial_state(B)
    assert init.deter.shape == (B, D) and init.stoch.shape == (B, G * K)
    state, post, prior = rssm.obs_step(init, torch.zeros(B, A), torch.randn(B, E))
    assert state.deter.shape == (B, D) and state.stoch.shape == (B, G * K)
    assert post.shape == prior.shape == (B, G, K)
    nxt = rssm.imagine_step(state, torch.zeros(B, A))
    assert nxt.deter.shape == (B, D) and nxt.stoch.shape == (B, G * K)


def test_imagine_rollout_shapes_with_heads(rssm, rssm_config):
    H, N = 3, 5
    feat_dim = rssm.feat_dim
    reward_head = RewardHead(feat_dim, units=32, layers=1, num_bins=255)
    cont_head = ContinueHead(feat_dim, units=32, layers=1)
    start = State(torch.randn(N, rssm_config.deter), torch.zeros(N, rssm.stoch_dim))
    seen = []

    def policy(state):
        seen.append(state.feat.shape)
        return torch.nn.functional.one_hot(torch.randint(0, A, (N,)), A).float()

    traj = imagine_rollout(rssm, start, policy, H, reward_head, cont_head)
    assert seen == [(N, feat_dim)] * H
    assert traj.states.deter.shape == (H + 1, N, rssm_config.deter)
    assert traj.states.stoch.shape == (H + 1, N, rssm.stoch_dim)
    assert traj.feats.shape == (H + 1, N, feat_dim)
    assert traj.actions.shape == (H, N, A)
    assert traj.reward_logits.shape == (H, N, 255)
    assert traj.cont_logits.shape == (H, N)
    assert torch.equal(traj.states.deter[0], start.deter)  # index 0 is the start state
    plain = imagine_rollout(rssm, start, policy, H)
    assert plain.reward_logits is None and plain.cont_logits is None


def test_sampled_states_carry_the_classes_of_their_one_hots(rssm, rssm_config):
    G, K = rssm_config.stoch, rssm_config.classes
    embed = torch.randn(B, T, E)
    is_first = torch.zeros(B, T)
    states, _, _ = rssm.observe(embed, torch.zeros(B, T, A), is_first)

    def policy(state):
        return torch.zeros(state.deter.shape[0], A)

    traj = imagine_rollout(rssm, states.detach().flatten(), policy, horizon=4)
    for s in (states, traj.states):
        onehot = s.stoch.detach().unflatten(-1, (G, K))
        assert torch.equal(onehot.argmax(-1), s.index)
        assert torch.equal(onehot.sum(-1), torch.ones_like(onehot[..., 0]))


@pytest.mark.parametrize("t", [2, 4])
def test_observe_reset_blocks_gradient_from_earlier_steps(rssm, t):
    embed, prev_action, is_first = _inputs(reset_at=t)
    embed.requires_grad_(True)
    states, post, _ = rssm.observe(embed, prev_action, is_first)
    w = torch.randn(B, rssm.feat_dim)
    ((states.feat[:, t] * w).sum() + (post[:, t] * torch.randn_like(post[:, t])).sum()).backward()
    grad = embed.grad.abs().sum(-1)  # (B, T)
    # Element 0 was reset at t: nothing before t can reach its posterior state at t.
    assert torch.equal(grad[0, :t], torch.zeros(t))
    assert grad[0, t] > 0
    # Elements 1 and 2 were not reset: earlier embeddings do matter.
    assert (grad[1:, :t] > 0).all()
    assert (grad[:, t + 1 :] == 0).all()  # causality


def test_observe_reset_ignores_state_and_previous_action(rssm):
    t = 3
    embed, prev_action, is_first = _inputs(reset_at=t)
    torch.manual_seed(5)
    states, post, prior = rssm.observe(embed, prev_action, is_first)
    torch.manual_seed(5)
    uniform = torch.rand(B, T, rssm.config.stoch, 1)  # observe's noise
    # A single obs_step from the initial state on that step alone gives the same state.
    one, one_post, one_prior = rssm.obs_step(
        rssm.initial_state(B), prev_action[:, t], embed[:, t], torch.ones(B, dtype=torch.bool)
    )
    assert torch.allclose(states.deter[0, t], one.deter[0], atol=1e-6)
    assert torch.allclose(post[0, t], one_post[0], atol=1e-5)
    assert torch.allclose(prior[0, t], one_prior[0], atol=1e-5)
    assert torch.equal(rssm._sample(one_post, uniform[:, t])[0][0], states.stoch[0, t].detach())
    assert not torch.allclose(states.deter[1, t], one.deter[1], atol=1e-3)  # not reset
    # The previous action at a reset step is ignored (zeroed), the state history too.
    other_action = prev_action.clone()
    other_action[0, t] = 1.0 - other_action[0, t]
    other_embed = embed.clone()
    other_embed[0, :t] = torch.randn(t, E)
    again, _, _ = rssm.observe(other_embed, other_action, is_first)
    assert torch.allclose(again.deter[0, t], states.deter[0, t], atol=1e-6)
    # obs_step's is_first does the same: the state passed in is discarded.
    junk = State(torch.randn(B, rssm.config.deter), torch.ones(B, rssm.stoch_dim))
    reset, _, _ = rssm.obs_step(junk, torch.ones(B, A), embed[:, t], torch.ones(B))
    assert torch.allclose(reset.deter, one.deter, atol=1e-6)


def test_learned_initial_state_is_tanh_and_the_priors_mode(rssm_config):
    rssm = RSSM(rssm_config, A, E)
    assert rssm.initial_deter.requires_grad
    with torch.no_grad():
        rssm.initial_deter.fill_(0.5)
    init = rssm.initial_state(2)
    h0 = torch.full((2, 32), 0.5).tanh()
    assert torch.allclose(init.deter, h0)
    # z_0 is the prior's mode at h_0 (2023 official): one class per latent, its argmax
    G, K = rssm_config.stoch, rssm_config.classes
    mode = rssm.prior_logits(h0).argmax(-1)  # (2, G)
    assert torch.equal(init.stoch.unflatten(-1, (G, K)).argmax(-1), mode)
    assert torch.equal(init.stoch.sum(-1), torch.full((2,), float(G)))
    assert torch.equal(init.index, mode)
    # h_0 is trained through everything that reads it; z_0 (a mode) carries no gradient
    assert not init.stoch.requires_grad and init.deter.requires_grad
    states, post, _ = rssm.observe(*_inputs())
    (states.feat.sum() + post.sum()).backward()
    assert rssm.initial_deter.grad.abs().sum() > 0


def test_zeros_initial_state_is_never_trained(rssm_config):
    import gymnasium as gym
    from conftest import tiny_config

    from dreamer.agent import DreamerAgent
    from dreamer.bench import synthetic_batch

    config = tiny_config()
    config.world_model.rssm.initial = "zeros"
    env = gym.make("CartPole-v1")
    agent = DreamerAgent(env.observation_space, env.action_space, config)
    rssm = agent.world_model.rssm
    assert "initial_deter" not in dict(rssm.named_parameters())  # no optimiser can see it
    for _ in range(2):  # the old bug: the first update re-enabled a frozen h_0
        agent.train_step(synthetic_batch(config, 4, 2, True))
    init = rssm.initial_state(2)
    assert torch.equal(init.deter, torch.zeros(2, config.world_model.rssm.deter))
    assert not init.stoch.any()


def test_observe_equals_obs_step_away_from_resets(rssm):
    embed, prev_action, is_first = _inputs()
    with torch.no_grad():
        states, post, prior = rssm.observe(embed, prev_action, is_first)
        for t in range(1, T):  # is_first only at t = 0
            previous = states.map(lambda x, t=t: x[:, t - 1])
            one, one_post, one_prior = rssm.obs_step(previous, prev_action[:, t], embed[:, t])
            assert torch.allclose(one.deter, states.deter[:, t], atol=1e-6)
            assert torch.allclose(one_post, post[:, t], atol=1e-5)
            assert torch.allclose(one_prior, prior[:, t], atol=1e-5)


def test_fast_observe_equals_the_plain_loop(rssm):
    from dreamer.utils import plain_maths

    inputs = _inputs(reset_at=2)
    torch.manual_seed(3)
    fast = rssm.observe(*inputs)
    with plain_maths():
        torch.manual_seed(3)
        plain = rssm.observe(*inputs)
    for x, y in zip(fast[0], plain[0], strict=True):
        assert torch.allclose(x, y, atol=1e-6)
    assert torch.allclose(fast[1], plain[1], atol=1e-5)
    assert torch.allclose(fast[2], plain[2], atol=1e-5)


def test_continuous_actions_enter_the_gru_scaled_into_the_clip(rssm):
    action = torch.tensor([[0.5, -3.0], [2.0, 2.0]], requires_grad=True)
    clipped = rssm.clip_action(action)
    assert torch.allclose(clipped, torch.tensor([[0.5, -1.0], [1.0, 1.0]]))
    clipped.sum().backward()  # the scale c / max(c, |a|) carries no gradient
    assert torch.allclose(action.grad, torch.tensor([[1.0, 1 / 3], [0.5, 0.5]]))


def test_rssm_logits_are_unimixed(rssm, rssm_config):
    K, u = rssm_config.classes, rssm_config.unimix
    with torch.no_grad():  # make the raw distributions extremely peaked
        rssm.posterior_net[-1].weight.mul_(1000)
        rssm.prior_net[-1].weight.mul_(1000)
    _, post, prior = rssm.observe(*_inputs())
    for logits in (post, prior):
        probs = logits.exp()
        assert torch.allclose(probs.sum(-1), torch.ones(probs.shape[:-1]), atol=1e-5)
        assert probs.min().item() >= u / K - 1e-6
        assert probs.max().item() > 0.95  # peaked, so the floor is what holds the minimum up


def test_state_input_gives_the_dense_layer_output_and_weight_gradients(rssm, rssm_config):
    """A head fed a State (one-hot gathers) matches the same head fed the concatenated feat."""
    N, G, K = 7, rssm_config.stoch, rssm_config.classes
    head = MLP(rssm.feat_dim, units=16, layers=2, out_dim=3)
    index = torch.randint(0, K, (N, G))
    stoch = torch.nn.functional.one_hot(index, K).float().flatten(-2)
    state = State(torch.randn(N, rssm_config.deter), stoch, index)
    w = torch.randn(N, 3)
    outs, grads = [], []
    for x in (state.feat, state):
        head.zero_grad()
        outs.append(head(x))
        (outs[-1] * w).sum().backward()
        grads.append([p.grad.clone() for p in head.parameters()])
    assert torch.allclose(outs[0], outs[1], atol=1e-5)
    for dense, gathered in zip(*grads, strict=True):
        assert torch.allclose(dense, gathered, atol=1e-5)


def test_observe_and_imagine_step_clip_continuous_actions(rssm_config):
    rssm = RSSM(rssm_config, A, E)  # continuous actions: the clip applies
    embed, _, is_first = _inputs()
    big, unit = torch.full((B, T, A), 5.0), torch.ones(B, T, A)
    for x, y in ((big, unit), (-big, -unit)):
        torch.manual_seed(1)
        states_big, _, _ = rssm.observe(embed, x, is_first)
        torch.manual_seed(1)
        states_unit, _, _ = rssm.observe(embed, y, is_first)
        assert torch.allclose(states_big.deter, states_unit.deter, atol=1e-6)
        start = states_unit.map(lambda s: s[:, 0])
        torch.manual_seed(2)
        a = rssm.imagine_step(start, x[:, 0])
        torch.manual_seed(2)
        b = rssm.imagine_step(start, y[:, 0])
        assert torch.allclose(a.deter, b.deter, atol=1e-6)
    discrete = RSSM(rssm_config, A, E, discrete_actions=True)
    assert torch.equal(discrete.clip_action(big), big)  # one-hot actions skip the clip


def test_gru_cell_matches_numpy_official_form():
    # [r, c, u] = LN(W [x, h]); r = sig(r); c = tanh(r * c); u = sig(u - 1); h' = u c + (1 - u) h
    torch.manual_seed(0)
    cell = LayerNormGRUCell(3, 4)
    with torch.no_grad():  # a non-trivial LayerNorm affine
        cell.norm.weight.uniform_(0.5, 1.5)
        cell.norm.bias.uniform_(-0.5, 0.5)
    x, h = torch.randn(5, 3), torch.randn(5, 4)
    W, g, b = (
        p.detach().double().numpy() for p in (cell.linear.weight, cell.norm.weight, cell.norm.bias)
    )
    z = np.concatenate([x.double().numpy(), h.double().numpy()], -1) @ W.T  # (5, 12)
    z = (z - z.mean(-1, keepdims=True)) / np.sqrt(z.var(-1, keepdims=True) + 1e-3) * g + b
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    reset, cand, update = np.split(z, 3, -1)
    cand = np.tanh(sig(reset) * cand)
    update = sig(update - 1.0)
    expected = update * cand + (1 - update) * h.double().numpy()
    np.testing.assert_allclose(cell(x, h).detach().numpy(), expected, rtol=1e-5, atol=1e-6)
    # at a zero normed input the update gate is sigmoid(-1) = 0.269: the cell mostly copies h
    with torch.no_grad():
        cell.linear.weight.zero_()
        cell.norm.bias.zero_()
    u = 1 / (1 + np.exp(1.0))
    torch.testing.assert_close(cell(x, h), (u * 0.0 + (1 - u) * h).float())
