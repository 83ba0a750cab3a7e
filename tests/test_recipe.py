"""The 2025 recipe's pieces (`config.RECIPE_2025`, `--recipe 2025`), each against an independent
computation: symexp twohot bins against numpy, the discounted continue target against torch's
BCE, the replay critic's gradient into the world model, the actor's output scale, head depth."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import load_top_level, tiny_config
from test_agent import _collect, _spaces

from dreamer import cli
from dreamer.agent import DreamerAgent
from dreamer.config import (
    RECIPE_2025,
    ConfigError,
    apply_recipe,
    classic_control,
    leaf_values,
    override,
    validate,
)
from dreamer.utils import TwohotEncoder, lambda_returns


@pytest.fixture(scope="module")
def cartpole_batch() -> dict:
    return _collect("CartPole-v1", 120, 8).sample(4, np.random.default_rng(0))


def _recipe_agent(**changes) -> DreamerAgent:
    config = tiny_config()
    apply_recipe(config, "2025")
    # keep the tiny sizes of the test config
    override(config, **{"world_model.layers": 1, "actor_critic.layers": 1}, **changes)
    override(config, **{"replay.seq_len": 8, "actor_critic.horizon": 3})
    return DreamerAgent(*_spaces("CartPole-v1"), validate(config))


# -- symexp twohot bins -----------------------------------------------------------------------


def test_symexp_bins_interpolate_in_raw_space():
    twohot = TwohotEncoder(255, spacing="symexp")
    points = np.linspace(-20, 20, 255)
    bins = np.sign(points) * np.expm1(np.abs(points))  # symexp, in float64
    assert np.allclose(twohot.bins.double().numpy(), bins, rtol=1e-6)
    assert twohot.bins[127] == 0.0  # the middle bin is exactly zero
    for value in [0.3, -2.0, 17.0, 250.0, -4e4]:
        k = np.searchsorted(bins, value, side="right") - 1  # bins[k] <= value < bins[k + 1]
        upper = (value - bins[k]) / (bins[k + 1] - bins[k])  # by hand, in raw space
        weights = twohot.encode(torch.tensor([value]))[0].double().numpy()
        assert weights[k] == pytest.approx(1 - upper, abs=1e-5)
        assert weights[k + 1] == pytest.approx(upper, abs=1e-5)
        assert weights.sum() == pytest.approx(1.0) and np.count_nonzero(weights) <= 2
        # E[bin] is the value itself: decode needs no symexp
        assert twohot.decode(torch.tensor(weights)[None]).item() == pytest.approx(value, rel=1e-5)
    # a bin's own value is one-hot, uniform probabilities decode to exactly 0, out of range clips
    assert twohot.encode(twohot.bins[200:201])[0, 200].item() == pytest.approx(1.0)
    assert twohot.decode(torch.full((1, 255), 1 / 255)).item() == 0.0
    assert twohot.decode(twohot.encode(torch.tensor([1e12])))[0] == twohot.bins[-1]


def test_symexp_and_symlog_bins_agree_on_the_bins_but_not_between_them():
    """Both spacings put bins at the same raw values; they split a value between them
    differently (linear in symlog space vs in raw space)."""
    symlog, symexp = TwohotEncoder(255), TwohotEncoder(255, spacing="symexp")
    value = torch.tensor([5.0])
    a, b = symlog.encode(value), symexp.encode(value)
    assert torch.equal(a.nonzero(), b.nonzero())  # the same two neighbours
    assert not torch.allclose(a, b)
    assert symlog.decode(a).item() == pytest.approx(5.0, rel=1e-5)
    assert symexp.decode(b).item() == pytest.approx(5.0, rel=1e-5)


# -- discounted continue target ---------------------------------------------------------------


def test_discounted_continue_target_is_bce_toward_gamma_times_continue(cartpole_batch):
    agent = _recipe_agent()
    assert agent.world_model.config.cont_target == "discounted" and agent.imag_gamma == 1.0
    batch = agent.batch_to_torch(cartpole_batch)
    assert batch["is_terminal"].any(), "the fixture should hold a termination"
    _, losses, states, _ = agent.world_model.loss(batch)
    logits = agent.world_model.continue_head(states.feat)
    target = 0.997 * (1.0 - batch["is_terminal"])
    expected = F.binary_cross_entropy_with_logits(logits, target)
    assert losses["con"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_lambda_returns_with_the_discount_inside_the_continues():
    """Imagination with the discounted target passes gamma * c as continues and gamma 1."""
    g = torch.Generator().manual_seed(0)
    rewards, cont = torch.rand(6, 5, generator=g), torch.rand(6, 5, generator=g)
    values = torch.randn(7, 5, generator=g)
    a = lambda_returns(rewards, values, cont, 0.997, 0.95)
    b = lambda_returns(rewards, values, 0.997 * cont, 1.0, 0.95)
    assert torch.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("recipe", ["2025", "2023"])
def test_imagination_discounts_by_the_recipes_continue_target(monkeypatch, cartpole_batch, recipe):
    """2025 (discounted target): continues = sigmoid(continue logits), which learn gamma * c,
    and gamma 1 in the returns and weights; 2023: the same continues, gamma 0.997 outside."""
    import dreamer.agent as agent_module

    agent = (
        _recipe_agent()
        if recipe == "2025"
        else DreamerAgent(*_spaces("CartPole-v1"), tiny_config())
    )
    calls, dreams = [], []
    real_returns, real_imagine = agent_module.lambda_returns, agent.imagine

    def spy_returns(rewards, values, cont, gamma, lam):
        calls.append((cont.detach().clone(), gamma))
        return real_returns(rewards, values, cont, gamma, lam)

    def spy_imagine(start):
        dreams.append(real_imagine(start))
        return dreams[-1]

    monkeypatch.setattr(agent_module, "lambda_returns", spy_returns)
    monkeypatch.setattr(agent, "imagine", spy_imagine)
    batch = agent.batch_to_torch(cartpole_batch)
    with torch.no_grad():
        _, _, posts, _ = agent.world_model.loss(batch)
    agent.actor_critic_losses(posts.detach(), batch)
    ((cont, gamma),), (traj,) = calls, dreams  # one dream, one call
    assert gamma == (1.0 if recipe == "2025" else 0.997)
    torch.testing.assert_close(cont, torch.sigmoid(traj.cont_logits.float()))


# -- the replay critic's gradient into the world model ----------------------------------------


@pytest.mark.parametrize("grad", [False, True])
def test_replay_critic_gradient_reaches_the_world_model_only_when_asked(grad, cartpole_batch):
    agent = _recipe_agent(**{"actor_critic.replay_critic_grad": grad})
    with torch.no_grad():  # a zero output layer (the critic's start) passes back no gradient
        agent.critic.net[-1].weight.normal_()
    batch = agent.batch_to_torch(cartpole_batch)
    _, _, posts, _ = agent.world_model.loss(batch)
    actor_loss, critic_loss, _ = agent.actor_critic_losses(posts, batch)
    params = list(agent.world_model.encoder.parameters())
    critic_grads = torch.autograd.grad(critic_loss, params, retain_graph=True, allow_unused=True)
    actor_grads = torch.autograd.grad(actor_loss, params, allow_unused=True)
    reached = any(g is not None and g.abs().sum() > 0 for g in critic_grads)
    assert reached == grad
    assert all(g is None for g in actor_grads)  # the dreams start from sg(posteriors)


def test_joint_update_trains_every_module_once(cartpole_batch):
    agent = _recipe_agent(warmup=0)  # the warm-up's first step has learning rate 0
    before = {k: v.clone() for k, v in agent.state_dict().items()}
    metrics = agent.train_step(cartpole_batch)
    assert all(math.isfinite(v) for v in metrics.values())
    for name in ("world_model.encoder", "actor.net", "critic.net"):
        moved = [not torch.equal(v, before[k]) for k, v in agent.state_dict().items()
                 if k.startswith(name)]  # fmt: skip
        assert any(moved), name
    assert agent.updates == 1 and metrics["grad_norm/critic"] > 0


def test_replay_critic_grad_needs_a_reinforce_actor():
    config = tiny_config()
    override(config, **{"actor_critic.replay_critic_scale": 0.3})
    override(config, **{"actor_critic.replay_critic_grad": True})
    with pytest.raises(ConfigError, match="REINFORCE"):  # continuous + auto = dynamics
        DreamerAgent(*_spaces("Pendulum-v1"), config)
    override(config, **{"actor_critic.actor_grad": "dynamics"})
    with pytest.raises(ConfigError, match="REINFORCE"):
        validate(config)


# -- sizes and init ---------------------------------------------------------------------------


def test_actor_output_scale_and_head_layers():
    torch.manual_seed(0)
    plain = DreamerAgent(*_spaces("CartPole-v1"), tiny_config())
    torch.manual_seed(0)
    config = override(tiny_config(), **{"actor_critic.actor_outscale": 0.01})
    scaled = DreamerAgent(*_spaces("CartPole-v1"), config)
    assert torch.allclose(scaled.actor.net[-1].weight, 0.01 * plain.actor.net[-1].weight)
    config = override(tiny_config(), **{"world_model.head_layers": 0, "world_model.layers": 2})
    wm = DreamerAgent(*_spaces("CartPole-v1"), config).world_model
    linears = [m for m in wm.continue_head.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 1  # a linear head over the model state
    enc = [m for m in wm.encoder.modules() if isinstance(m, torch.nn.Linear)]
    assert len(enc) == 2


# -- the preset -------------------------------------------------------------------------------


def test_recipe_sets_every_field_and_keeps_the_rest(capsys):
    config = tiny_config()
    apply_recipe(config, "2025")
    values = leaf_values(config)
    assert all(values[key] == value for key, value in RECIPE_2025.items())
    assert config.world_model.rssm.deter == tiny_config().world_model.rssm.deter  # sizes stay
    with pytest.raises(ConfigError, match="unknown recipe"):
        apply_recipe(config, "2031")
    args = cli.build_parser("x", "CartPole-v1").parse_args(["--recipe", "2025", "--quick"])
    config = cli.apply_args(tiny_config(), args)
    assert config.optimizer == "laprop" and config.twohot == "symexp"
    assert config.replay.seq_len == 16  # --quick shrinks after the recipe
    status = cli.main(["--env", "CartPole-v1", "--recipe", "2031"])
    assert status == 2 and "invalid choice" in capsys.readouterr().err


def test_an_old_checkpoint_without_the_new_fields_loads(tmp_path):
    agent = DreamerAgent(*_spaces("CartPole-v1"), tiny_config())
    state = agent.checkpoint_state()
    for key in ("twohot", "optimizer"):
        del state["config"][key]
    del state["config"]["world_model"]["cont_target"]
    fresh = DreamerAgent(*_spaces("CartPole-v1"), tiny_config())
    fresh.load_checkpoint_state(state)  # the missing fields compare as their defaults
    assert all(
        torch.equal(a, b) for a, b in zip(fresh.parameters(), agent.parameters(), strict=True)
    )


def test_a_bias_free_first_layer_sees_only_its_inputs_direction():
    """2023's hidden layers have no bias before the LayerNorm: LN(W k x) = LN(W x) for k > 0
    (up to the norm's eps), so the encoder cannot tell a cart at 1.2 m from one at 2.4 m when
    the other inputs are scaled alike. A bias breaks the symmetry."""
    from dreamer.networks import MLP

    torch.manual_seed(0)
    mlp = MLP(4, 64, 1)
    x = torch.tensor([[1.2, 0.1, 0.05, -0.1]])
    torch.testing.assert_close(mlp(x), mlp(2 * x), atol=0.02, rtol=0)
    mlp.add_hidden_biases()
    torch.testing.assert_close(mlp(x), mlp(2 * x), atol=0.02, rtol=0)  # zero bias: same function
    with torch.no_grad():
        mlp[0].bias.normal_()
    assert (mlp(x) - mlp(2 * x)).abs().max() > 0.1


def test_hidden_biases_are_trained_and_keep_the_function_at_first(cartpole_batch):
    config = tiny_config()
    torch.manual_seed(1)
    plain = DreamerAgent(*_spaces("CartPole-v1"), config)
    config.hidden_bias = True
    torch.manual_seed(1)
    biased = DreamerAgent(*_spaces("CartPole-v1"), config)
    batch = plain.batch_to_torch(cartpole_batch)
    torch.manual_seed(2)
    loss_plain = plain.world_model.loss(batch)[0]
    torch.manual_seed(2)
    loss_biased = biased.world_model.loss(batch)[0]
    torch.testing.assert_close(loss_biased, loss_plain)  # zero biases change nothing yet
    first = biased.world_model.encoder.net[0]
    assert first.bias is not None and plain.world_model.encoder.net[0].bias is None
    assert any(p is first.bias for group in biased.wm_opt.param_groups for p in group["params"])
    assert biased.actor.net[0].bias is not None and biased.slow_critic.net[0].bias is not None
    biased.train_step(cartpole_batch)
    assert first.bias.abs().max() > 0  # it learns


# What each classic-control script sets beyond `classic_control()`: its budget, evaluation
# interval and threshold, plus the choices not yet shared by all four (issue: one recipe).
SCRIPT_EXTRAS = {
    "02_dreamer_cartpole.py": set(),
    "03_dreamer_pendulum.py": set(),
    "05_dreamer_acrobot.py": set(),
    "06_dreamer_lunar_lander.py": {
        "train.train_ratio",
        "actor_critic.replay_critic_scale",
        "actor_critic.horizon",
        "world_model.rssm.deter",
        "world_model.rssm.units",
        "world_model.units",
        "actor_critic.units",
    },
}


@pytest.mark.parametrize("script", sorted(SCRIPT_EXTRAS))
def test_classic_control_scripts_share_one_recipe(script):
    """A script's config differs from the shared preset in its budget and threshold and in the
    fields listed above, nowhere else: a new per-task setting has to be declared here."""
    module = load_top_level(script)
    factory = next(v for k, v in vars(module).items() if k.endswith("_config") and callable(v))
    shared, own = leaf_values(classic_control()), leaf_values(factory())
    differ = {key for key in shared if shared[key] != own[key]}
    assert differ == {"train.steps", "train.eval_every", "train.threshold"} | SCRIPT_EXTRAS[script]
    assert shared["world_model.rssm.deter"] == 256 and shared["train.train_ratio"] == 128
