"""DreamerAgent and WorldModel on CartPole-v1 and Pendulum-v1 spaces, with tiny networks."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import tiny_config
from gymnasium import spaces

from dreamer.actor_critic import replay_critic_loss
from dreamer.agent import DreamerAgent, WorldModel
from dreamer.config import RSSMConfig, WorldModelConfig
from dreamer.envs import random_model_action
from dreamer.networks import init_weights_
from dreamer.replay_buffer import SequenceReplayBuffer

METRIC_KEYS = {
    "loss/dec",
    "loss/rew",
    "loss/con",
    "loss/dyn",
    "loss/rep",
    "loss/actor",
    "loss/critic",
    "kl",
    "actor/entropy",
    "actor/return_scale",
    "grad_norm/world_model",
    "grad_norm/actor",
    "grad_norm/critic",
}


def _spaces(env_id: str):
    env = gym.make(env_id)
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


def _collect(env_id: str, steps: int, seq_len: int, seed: int = 0) -> SequenceReplayBuffer:
    """Random-policy episodes stored with the library's convention (obs, a_t, r_t, flags)."""
    env = gym.make(env_id)
    rng = np.random.default_rng(seed)
    buf = SequenceReplayBuffer(capacity=10_000, seq_len=seq_len)
    obs, _ = env.reset(seed=seed)
    reward, first, terminated = 0.0, True, False
    for _ in range(steps):
        action = random_model_action(env.action_space, rng)
        buf.add(obs, action, reward, first, terminated)
        if isinstance(env.action_space, spaces.Discrete):
            env_action = int(action.argmax())
        else:
            low, high = env.action_space.low, env.action_space.high
            env_action = low + (action + 1) / 2 * (high - low)
        obs, reward, terminated, truncated, _ = env.step(env_action)
        first = False
        if terminated or truncated:
            buf.add(obs, np.zeros_like(action), reward, False, terminated, truncated)
            obs, _ = env.reset()
            reward, first, terminated = 0.0, True, False
    env.close()
    return buf


@pytest.fixture(scope="module")
def cartpole_batch() -> dict:
    return _collect("CartPole-v1", 120, 8).sample(4, np.random.default_rng(0))


@pytest.fixture(scope="module")
def pendulum_batch() -> dict:
    return _collect("Pendulum-v1", 60, 8).sample(4, np.random.default_rng(0))


@pytest.fixture
def cartpole(config) -> DreamerAgent:
    return DreamerAgent(*_spaces("CartPole-v1"), config)


@pytest.fixture
def pendulum(config) -> DreamerAgent:
    return DreamerAgent(*_spaces("Pendulum-v1"), config)


def _params(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in module.named_parameters()}


# -- acting ------------------------------------------------------------------------------------


def test_discrete_policy_and_act(cartpole):
    assert cartpole.discrete and cartpole.actor_grad == "reinforce"
    obs = np.random.randn(5, 4).astype(np.float32)
    action, (latent, prev) = cartpole.policy(obs, None, np.ones(5, bool))
    assert action.shape == (5, 2)
    assert torch.equal(action.sum(-1), torch.ones(5))
    assert set(action.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(prev, action)
    assert latent.deter.shape == (5, 32) and latent.stoch.shape == (5, 16)
    env_actions = cartpole.to_env_action(action)
    assert env_actions.shape == (5,)
    assert np.array_equal(env_actions, action.argmax(-1).numpy())
    for step in range(6):
        a = cartpole.act(obs[0], is_first=step == 0, explore=step % 2 == 0)
        assert isinstance(a, int) and a in (0, 1)


def test_continuous_policy_range_and_rescaling(pendulum):
    assert not pendulum.discrete and pendulum.actor_grad == "dynamics"
    obs = np.random.randn(64, 3).astype(np.float32) * 5
    mode, _ = pendulum.policy(obs, None, np.ones(64, bool), explore=False)
    assert mode.shape == (64, 1) and mode.abs().max() <= 1.0  # tanh mean
    # Samples are not clipped (REINFORCE scores what was drawn); the env conversion clips.
    sample, _ = pendulum.policy(obs, None, np.ones(64, bool), explore=True)
    env_action = pendulum.to_env_action(sample)
    assert np.all(np.abs(env_action) <= 2.0)
    outside = sample.abs() > 1.0
    assert np.allclose(env_action[outside.numpy()], 2.0 * np.sign(sample[outside].numpy()))
    env_action = pendulum.to_env_action(torch.tensor([[-1.0], [1.0], [0.0], [0.5], [7.0]]))
    assert np.allclose(env_action[:, 0], [-2.0, 2.0, 0.0, 1.0, 2.0])
    for step in range(6):
        a = pendulum.act(obs[step], is_first=step == 0)
        assert a.shape == (1,) and -2.0 <= a[0] <= 2.0


def test_policy_feeds_its_previous_action_to_the_next_step(cartpole):
    obs = np.random.randn(2, 3, 4).astype(np.float32)
    a0, state = cartpole.policy(obs[0], None, np.ones(3, bool))
    a1, (latent1, prev1) = cartpole.policy(obs[1], state, np.zeros(3, bool))
    assert torch.equal(prev1, a1)
    # Recompute step 1 by hand from the step-0 latent and the step-0 action.
    wm = cartpole.world_model
    with torch.no_grad():
        deter = wm.rssm.recurrent(state[0], a0)
    assert torch.allclose(latent1.deter, deter, atol=1e-6)
    with torch.no_grad():
        deter_other = wm.rssm.recurrent(state[0], 1.0 - a0)
    assert not torch.allclose(latent1.deter, deter_other, atol=1e-4)


def test_actor_grad_resolution(config):
    config.actor_critic.actor_grad = "reinforce"
    assert DreamerAgent(*_spaces("Pendulum-v1"), config).actor_grad == "reinforce"
    config.actor_critic.actor_grad = "dynamics"
    assert DreamerAgent(*_spaces("CartPole-v1"), config).actor_grad == "dynamics"
    config.actor_critic.actor_grad = "magic"
    with pytest.raises(ValueError, match="actor_grad"):
        DreamerAgent(*_spaces("CartPole-v1"), config)


def test_imagined_continues_probability_or_mode(config):
    logits = torch.tensor([-3.0, -0.1, 0.1, 4.0])
    agent = DreamerAgent(*_spaces("CartPole-v1"), config)
    assert torch.allclose(agent.imagined_continues(logits), torch.sigmoid(logits))
    config.actor_critic.imag_cont = "mode"
    agent = DreamerAgent(*_spaces("CartPole-v1"), config)
    assert torch.equal(agent.imagined_continues(logits), torch.tensor([0.0, 0.0, 1.0, 1.0]))
    config.actor_critic.imag_cont = "mean"
    with pytest.raises(ValueError, match="imag_cont"):
        DreamerAgent(*_spaces("CartPole-v1"), config)


def test_reward_head_and_critic_start_at_zero(cartpole):
    feat = torch.randn(7, cartpole.world_model.rssm.feat_dim) * 3
    wm = cartpole.world_model
    for head, twohot in (
        (wm.reward_head, wm.twohot),
        (cartpole.critic, cartpole.value_twohot),
        (cartpole.slow_critic, cartpole.value_twohot),
    ):
        logits = head(feat)
        assert logits.shape == (7, 255)
        assert torch.equal(logits, torch.zeros_like(logits))
        assert torch.equal(twohot.decode_logits(logits), torch.zeros(7))


@pytest.mark.parametrize(
    "obs_space, act_space, name",
    [
        (spaces.Dict({"x": spaces.Discrete(3)}), spaces.Discrete(2), "key 'x' of type Discrete"),
        (spaces.Tuple((spaces.Discrete(3), spaces.Discrete(2))), spaces.Discrete(2), "Tuple"),
        (spaces.Text(8), spaces.Discrete(2), "Text"),
        (spaces.Box(0, 1, (64, 64, 3), np.float32), spaces.Discrete(2), r"\(64, 64, 3\)"),
        (spaces.Box(0, 255, (64, 64), np.uint8), spaces.Discrete(2), r"\(64, 64\)"),
        (spaces.Box(-1, 1, (4,)), spaces.MultiBinary(3), "MultiBinary"),
        (spaces.Box(-1, 1, (4,)), spaces.MultiDiscrete([2, 3]), "MultiDiscrete"),
        (spaces.Box(-1, 1, (4,)), spaces.Box(-np.inf, np.inf, (2,)), "infinite"),
    ],
)
def test_unsupported_spaces_raise(config, obs_space, act_space, name):
    with pytest.raises(ValueError, match=name):
        DreamerAgent(obs_space, act_space, config)


# -- training ----------------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_train_step_returns_finite_metrics(config, env_id, cartpole_batch, pendulum_batch):
    agent = DreamerAgent(*_spaces(env_id), config)
    batch = cartpole_batch if env_id == "CartPole-v1" else pendulum_batch
    wm_before = _params(agent.world_model)
    metrics = agent.train_step(batch)
    assert METRIC_KEYS <= set(metrics)
    assert all(isinstance(v, float) and math.isfinite(v) for v in metrics.values())
    assert metrics["loss/dyn"] >= 1.0 and metrics["loss/rep"] >= 1.0  # free bits
    assert metrics["loss/rew"] == pytest.approx(math.log(255), rel=1e-4)  # zero-init head
    assert metrics["actor/return_scale"] >= 1.0
    assert agent.updates == 1 and agent.skipped_updates == 0
    wm_after = _params(agent.world_model)
    changed = [n for n in wm_before if not torch.equal(wm_before[n], wm_after[n])]
    out_layer = f"reward_head.net.{len(agent.world_model.reward_head.net) - 1}.weight"
    assert out_layer in changed and len(changed) > len(wm_before) // 2


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_actor_critic_update_leaves_world_model_alone(
    config, env_id, cartpole_batch, pendulum_batch
):
    agent = DreamerAgent(*_spaces(env_id), config)
    batch = agent.batch_to_torch(cartpole_batch if env_id == "CartPole-v1" else pendulum_batch)
    with torch.no_grad():
        _, _, posts, _ = agent.world_model.loss(batch)
    wm_before, actor_before = _params(agent.world_model), _params(agent.actor)
    critic_before = _params(agent.critic)
    metrics, _ = agent.train_actor_critic(posts.detach(), batch)
    assert torch.isfinite(metrics["loss/actor"]) and metrics["grad_norm/actor"] > 0
    for name, p in agent.world_model.named_parameters():
        assert p.grad is None, name  # no gradient reached the world model...
        assert torch.equal(p, wm_before[name]), name  # ...and it did not move
        assert p.requires_grad  # still trainable by its own optimiser
    assert all(p.requires_grad for p in agent.critic.parameters())
    assert any(not torch.equal(p, actor_before[n]) for n, p in agent.actor.named_parameters())
    assert any(not torch.equal(p, critic_before[n]) for n, p in agent.critic.named_parameters())


def test_replay_critic_loss_masks_episode_ends(cartpole, cartpole_batch):
    # Zero-initialised critic: uniform logits, so each CE term is log(255) whatever the target;
    # the loss is then (1 + slow reg) * log(255) * the share of unmasked steps 0..T-2.
    batch = cartpole.batch_to_torch(cartpole_batch)
    assert batch["is_last"][:, :-1].any(), "the fixture should hold an episode end"
    with torch.no_grad():
        _, _, posts, _ = cartpole.world_model.loss(batch)
    B, T = batch["reward"].shape
    boot = torch.randn(B, T)
    starts = posts.detach()
    logits = cartpole.critic(starts)  # (B, T, bins)
    with torch.no_grad():
        slow = cartpole.value_twohot.decode_logits(cartpole.slow_critic(starts))
    ac = cartpole.config.actor_critic
    loss = replay_critic_loss(
        cartpole.value_twohot, logits, slow, batch, boot, ac.gamma, ac.lam, ac.slow_critic_reg
    )
    share = (1.0 - batch["is_last"][:, :-1]).mean()
    reg = cartpole.config.actor_critic.slow_critic_reg
    assert loss.item() == pytest.approx((1 + reg) * math.log(255) * share.item(), rel=1e-5)
    loss.backward()
    assert cartpole.critic.net[-1].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("replay_scale", [0.0, 0.3])
def test_imag_last_dreams_and_replays_only_the_last_k_steps(config, cartpole_batch, replay_scale):
    # With imag_last = K, B*K dreams start, and the actor and critic losses ignore every earlier
    # step: scrambling the first T - K posteriors and rewards leaves both losses exactly as they
    # were, while scrambling one of the last K changes them.
    config.actor_critic.imag_last, config.actor_critic.replay_critic_scale = 3, replay_scale
    agent = DreamerAgent(*_spaces("CartPole-v1"), config)
    batch = agent.batch_to_torch(cartpole_batch)
    with torch.no_grad():
        _, _, posts, _ = agent.world_model.loss(batch)
    B, T = batch["reward"].shape
    starts = []
    dream = agent.imagine
    agent.imagine = lambda start: starts.append(start.deter.shape[0]) or dream(start)

    def losses(posts, batch):
        torch.manual_seed(0)
        actor_loss, critic_loss, _ = agent.actor_critic_losses(posts, batch)
        return actor_loss.item(), critic_loss.item()

    def scramble(t):  # fresh posteriors and rewards at step t
        deter = posts.deter.clone()
        deter[:, t] = torch.randn_like(deter[:, t])
        reward = batch["reward"].clone()
        reward[:, t] += 5.0
        return posts._replace(deter=deter), {**batch, "reward": reward}

    base = losses(posts, batch)
    assert starts == [B * 3]
    assert losses(*scramble(T - 4)) == base
    assert losses(*scramble(T - 2)) != base


def test_replay_critic_loss_changes_only_the_critic_step(config, cartpole_batch):
    agents = []
    for scale in (0.0, 0.3):
        config.actor_critic.replay_critic_scale = scale
        torch.manual_seed(0)
        agent = DreamerAgent(*_spaces("CartPole-v1"), config)
        torch.manual_seed(1)
        agent.train_step(cartpole_batch)
        agents.append(agent)
    off, on = agents
    for name, p in _params(on.actor).items():
        assert torch.equal(p, _params(off.actor)[name]), name  # the actor step comes first
    critic_off = _params(off.critic)
    assert any(not torch.equal(p, critic_off[n]) for n, p in _params(on.critic).items())


def test_slow_critic_moves_two_percent_toward_critic(cartpole, cartpole_batch):
    cartpole.train_step(cartpole_batch)  # critic and slow critic now differ
    cartpole.train_step(cartpole_batch)
    slow_old = _params(cartpole.slow_critic)
    cartpole.train_step(cartpole_batch)
    slow_new, critic_new = _params(cartpole.slow_critic), _params(cartpole.critic)
    rate = cartpole.config.actor_critic.slow_critic_rate
    assert rate == 0.02
    moved = 0
    for name in slow_old:
        expected = slow_old[name] + rate * (critic_new[name] - slow_old[name])
        assert torch.allclose(slow_new[name], expected, atol=1e-7, rtol=1e-6), name
        moved += not torch.equal(slow_new[name], slow_old[name])
    assert moved > 0
    assert all(not p.requires_grad for p in cartpole.slow_critic.parameters())


def test_continue_target_ignores_truncation(config, cartpole_batch):
    wm = WorldModel(4, 2, config.world_model)
    with torch.no_grad():  # predict "continue" with certainty everywhere
        wm.continue_head.net[-1].weight.zero_()
        wm.continue_head.net[-1].bias.fill_(20.0)
    batch = {k: torch.as_tensor(v).float() for k, v in cartpole_batch.items()}
    batch["is_terminal"] = torch.zeros_like(batch["is_terminal"])
    batch["is_last"] = torch.ones_like(batch["is_last"])  # every step truncated
    _, losses, _, _ = wm.loss(batch)
    assert losses["con"].item() < 1e-6
    batch["is_terminal"][:, -1] = 1.0
    _, losses, _, _ = wm.loss(batch)
    assert losses["con"].item() > 20.0 / 8 - 0.1  # one of 8 steps costs ~20 nats


@pytest.mark.parametrize(
    ("signal", "terms"),
    [("model", ["dec", "dyn", "rep"]), ("world", ["dec", "rew", "con", "dyn", "rep"])],
)
def test_replay_priority_is_the_per_step_sum_of_its_loss_terms(
    config, cartpole_batch, signal, terms
):
    config.replay.priority_frac, config.replay.priority_signal = 0.5, signal
    agent = DreamerAgent(*_spaces("CartPole-v1"), config)
    batch = agent.batch_to_torch(cartpole_batch)
    _, means, _, _ = agent.world_model.loss(batch)
    priority = means.pop("priority")
    assert priority.shape == batch["reward"].shape and not priority.requires_grad  # (B, T)
    # the mean over steps of a per-step sum is the sum of the terms' means
    torch.testing.assert_close(priority.mean(), sum(means[k] for k in terms).detach())
    agent.train_step(cartpole_batch)
    assert agent.last_priority.shape == batch["reward"].shape
    assert (
        np.isfinite(agent.last_priority).all() and (agent.last_priority >= 2.0).all()
    )  # 2 free nats


def test_uniform_replay_computes_no_priority(cartpole, cartpole_batch):
    _, means, _, _ = cartpole.world_model.loss(cartpole.batch_to_torch(cartpole_batch))
    assert "priority" not in means
    cartpole.train_step(cartpole_batch)
    assert cartpole.last_priority is None


# -- persistence -------------------------------------------------------------------------------


def test_save_load_roundtrip(cartpole, cartpole_batch, tmp_path):
    cartpole.train_step(cartpole_batch)
    path = tmp_path / "agent.pt"
    cartpole.save(path)
    torch.manual_seed(123)
    fresh = DreamerAgent(*_spaces("CartPole-v1"), tiny_config())
    a, b = cartpole.state_dict(), fresh.state_dict()
    assert not all(torch.equal(a[k], b[k]) for k in a)  # really a different agent before
    fresh.load(path)
    b = fresh.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert fresh.updates == 1
    exp_avg = [s["exp_avg"] for s in cartpole.wm_opt.state_dict()["state"].values()]
    exp_avg2 = [s["exp_avg"] for s in fresh.wm_opt.state_dict()["state"].values()]
    assert len(exp_avg) > 0 and all(
        torch.equal(x, y) for x, y in zip(exp_avg, exp_avg2, strict=True)
    )
    obs = np.random.randn(16, 4).astype(np.float32)
    outputs = []
    for agent in (cartpole, fresh):
        torch.manual_seed(7)
        action, (latent, _) = agent.policy(obs, None, np.ones(16, bool), explore=False)
        dist = agent.actor(latent.feat)
        outputs.append((action, latent.deter, dist.logits))
    for x, y in zip(*outputs, strict=True):
        assert torch.equal(x, y)


def test_load_rejects_other_config_spaces_and_corrupt_files(cartpole, tmp_path):
    path = tmp_path / "agent.pt"
    cartpole.save(path)
    other = tiny_config()
    other.actor_critic.horizon = 5
    other.world_model.lr = 3e-4
    with pytest.raises(ValueError, match="actor_critic.horizon") as info:
        DreamerAgent(*_spaces("CartPole-v1"), other).load(path)
    assert "world_model.lr" in str(info.value)
    with pytest.raises(ValueError, match="spaces"):
        DreamerAgent(*_spaces("Pendulum-v1"), tiny_config()).load(path)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="corrupt"):
        cartpole.load(bad)
    with pytest.raises(FileNotFoundError):
        cartpole.load(tmp_path / "missing.pt")


# -- learning ----------------------------------------------------------------------------------


def test_world_model_overfits_one_batch():
    """Measured: 7.9 -> 1.5 (x5.3) in 150 Adam steps, about 3 s; the floor is ~1.2
    (free bits 0.6 + twohot entropy), so a factor of 3 leaves a wide margin."""
    batch = _collect("CartPole-v1", 400, 16).sample(8, np.random.default_rng(0))
    batch = {k: torch.as_tensor(v).float() for k, v in batch.items()}
    config = WorldModelConfig(
        rssm=RSSMConfig(deter=64, stoch=8, classes=8, units=64), units=64, layers=1
    )
    wm = WorldModel(4, 2, config)
    opt = torch.optim.Adam(wm.parameters(), lr=1e-3)
    losses, parts = [], []
    for _ in range(150):
        total, means, _, _ = wm.loss(batch)
        opt.zero_grad()
        total.backward()
        opt.step()
        losses.append(total.item())
        parts.append({k: v.item() for k, v in means.items()})
    assert all(math.isfinite(x) for x in losses)
    assert losses[0] / losses[-1] >= 3.0, (losses[0], losses[-1])
    assert parts[-1]["rew"] < 0.5 * parts[0]["rew"]
    assert parts[-1]["dec"] < 0.5 * parts[0]["dec"]
    assert parts[-1]["con"] < 0.5 * parts[0]["con"]


def test_official_init_statistics():
    env = gym.make("Pendulum-v1")
    config = tiny_config()
    config.world_model.units = config.actor_critic.units = 256
    torch.manual_seed(0)
    agent = DreamerAgent(env.observation_space, env.action_space, config)
    hidden = agent.world_model.decoder.net[0]  # (256, feat) hidden layer: truncated normal
    fan = (hidden.in_features + hidden.out_features) / 2
    w = hidden.weight.detach()
    assert w.std().item() == pytest.approx(math.sqrt(1 / fan), rel=0.05)  # Var[W] = 1 / fan
    assert w.abs().max().item() <= 2 * math.sqrt(1 / fan) / 0.8796 + 1e-6  # cut at 2 sigma
    out = agent.world_model.decoder.net[-1]  # output layer: uniform of the same variance
    fan = (out.in_features + out.out_features) / 2
    limit = math.sqrt(3 / fan)
    assert out.weight.abs().max().item() <= limit and out.weight.abs().max().item() > 0.8 * limit
    assert torch.equal(out.bias, torch.zeros_like(out.bias))
    assert getattr(agent.actor.net[-1], "out_splits", 1) == 2  # the actor's mean and std
    for zero in (agent.world_model.reward_head.net[-1], agent.critic.net[-1]):
        assert not zero.weight.any() and not zero.bias.any()
    config.weight_init = "torch"
    torch.manual_seed(0)
    default = DreamerAgent(env.observation_space, env.action_space, config)
    assert not torch.equal(default.world_model.decoder.net[0].weight, hidden.weight)


def test_split_output_layer_takes_each_parts_own_fan():
    # 8 inputs -> 2 parts of 32 outputs: each part's fan is (8 + 32) / 2 = 20, so U(+-sqrt(3/20))
    # (0.387); one fan for the whole layer, (8 + 64) / 2 = 36, would cap |W| at sqrt(3/36) (0.289)
    layer = torch.nn.Linear(8, 64)
    layer.output_layer, layer.out_splits = True, 2
    torch.manual_seed(0)
    init_weights_(layer)
    for part in layer.weight.detach().chunk(2):
        assert math.sqrt(3 / 36) < part.abs().max().item() <= math.sqrt(3 / 20)


def test_evaluation_samples_the_policy_by_default(monkeypatch, tmp_path):
    from dreamer.train import Trainer

    trainer = Trainer("CartPole-v1", tiny_config(), str(tmp_path), progress=False)
    assert trainer.config.train.eval_policy == "sample"
    calls = []
    policy = trainer.agent.policy

    def spy(obs, state, is_first, explore=True):
        calls.append(explore)
        return policy(obs, state, is_first, explore)

    monkeypatch.setattr(trainer.agent, "policy", spy)
    trainer.evaluate(2)
    assert calls and all(calls)
    trainer.config.train.eval_policy = "mode"
    calls.clear()
    trainer.evaluate(2)
    assert calls and not any(calls)


def test_evaluate_command_reads_both_rules_from_a_run_checkpoint(tmp_path, capsys):
    import json

    from dreamer.evaluate import main as evaluate_main
    from dreamer.train import Trainer

    trainer = Trainer("CartPole-v1", tiny_config(), str(tmp_path), progress=False)
    trainer.save_latest()
    assert evaluate_main(["--checkpoint", trainer.latest_path, "--episodes", "2"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["policy"] for x in lines] == ["sample", "mode"]
    assert all(x["env"] == "CartPole-v1" and x["mean"] >= 8 for x in lines)  # CartPole >= 8 steps
    assert evaluate_main(["--checkpoint", str(tmp_path / "missing.pt")]) == 2


def test_training_loop_feeds_losses_back_as_replay_priorities(tmp_path):
    from dreamer.plotting import read_metrics
    from dreamer.train import Trainer

    config = tiny_config()
    config.replay.priority_frac = 0.5
    config.train.steps, config.train.eval_every, config.train.log_every = 60, 1000, 20
    config.train.train_ratio = 32  # one update per env step at B*T = 32
    trainer = Trainer("CartPole-v1", config, str(tmp_path), progress=False)
    trainer.run()
    stored = trainer.replay._priority[: len(trainer.replay)]
    trained = np.isfinite(stored) & (stored > 0)
    # every update reports its B*T losses back: most stored steps now rank by a real loss
    assert trained.mean() > 0.5 and (stored[trained] >= 2.0).all()  # dyn + rep >= 2 free nats
    rows = read_metrics(trainer.metrics_path)
    shares = [r["replay/terminal_share"] for r in rows if r.get("replay/terminal_share") != ""]
    assert shares and all(0.0 <= float(s) <= 1.0 for s in shares)


@pytest.mark.parametrize("symlog_target", [True, False])
def test_decoder_target_symlog_or_raw(symlog_target):
    """With a constant output c the loss is sum (c - target)^2, the target symlog(x) (numpy's
    sign * log1p) or x itself; `predict` maps c back to observation units."""
    config = WorldModelConfig(units=8, layers=1, dec_symlog=symlog_target)
    config.rssm = RSSMConfig(deter=8, stoch=2, classes=3, units=8)
    wm = WorldModel(4, 2, config)
    c = np.array([0.5, -1.0, 2.0, 0.0], dtype=np.float32)
    with torch.no_grad():
        wm.decoder.net[-1].weight.zero_()
        wm.decoder.net[-1].bias.copy_(torch.as_tensor(c))
    obs = np.array([[2.4, -0.3, 0.0, 7.0], [0.1, 3.0, -2.2, 0.0]], dtype=np.float32)
    feat = torch.randn(2, wm.rssm.feat_dim)
    target = np.sign(obs) * np.log1p(np.abs(obs)) if symlog_target else obs
    expected = ((c - target) ** 2).sum(-1)
    loss = wm.decoder.loss(feat, torch.as_tensor(obs)).detach()
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    predicted = np.sign(c) * np.expm1(np.abs(c)) if symlog_target else c
    np.testing.assert_allclose(wm.decoder.predict(feat)[0].detach(), predicted, rtol=1e-5)


@pytest.mark.parametrize("weight", [1.0, 10.0])
def test_terminal_steps_weigh_con_terminal_weight_in_the_continue_loss(
    config, cartpole_batch, weight
):
    """Continue logit fixed at L: a continuing step costs log(1 + e^-L), a terminal one
    log(1 + e^L), counted `weight` times; the mean is over all B*T steps."""
    config.world_model.con_terminal_weight = weight
    wm = WorldModel(4, 2, config.world_model)
    L = 1.5
    with torch.no_grad():
        wm.continue_head.net[-1].weight.zero_()
        wm.continue_head.net[-1].bias.fill_(L)
    batch = {k: torch.as_tensor(v).float() for k, v in cartpole_batch.items()}
    batch["is_terminal"] = torch.zeros_like(batch["is_terminal"])
    batch["is_terminal"][0, -1] = batch["is_terminal"][2, 3] = 1.0
    _, losses, _, _ = wm.loss(batch)
    n = batch["is_terminal"].numel()
    expected = ((n - 2) * math.log1p(math.exp(-L)) + 2 * weight * math.log1p(math.exp(L))) / n
    assert losses["con"].item() == pytest.approx(expected, rel=1e-5)
