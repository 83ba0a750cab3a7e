"""DreamerAgent: world model + actor-critic trained in imagination (paper Fig. 1, Methods).

One update (`train_step`):
  1. World model on a replayed batch (B, T):  L = L_pred + b_dyn L_dyn + b_rep L_rep  (Eq. 5).
  2. From all B*T posterior states (detached), dream H steps with the actor (world model frozen).
  3. Lambda-returns R_t (Eq. 7) from predicted rewards, continues and critic values.
  4. Actor: -sg((R_t - v_t) / S) log pi(a_t|s_t) - eta H[pi]  (REINFORCE, Eq. 11), or
     -(R_t - v_t) / S - eta H[pi] with R_t and v_t backpropagated through the dynamics.
  5. Critic: twohot CE toward sg(R_t) plus CE toward the slow critic's prediction (Eq. 10);
     then the slow critic moves 2% toward the critic.
Every imagined step t is weighted by gamma^t times the product of predicted continues up to it.
The losses of steps 3-5 are the functions of `actor_critic.py`.
"""

from __future__ import annotations

import copy
import os
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from . import actor_critic as losses_ac
from .checkpoint import RUN_FORMAT, atomic_torch_save, load_checkpoint_file
from .config import (
    DreamerConfig,
    WorldModelConfig,
    config_diff,
    config_from_dict,
    config_to_dict,
    validate,
)
from .envs import space_info, spaces_from_info, to_env_action
from .networks import Actor, ContinueHead, Critic, Decoder, Encoder, RewardHead, init_weights_
from .rssm import RSSM, State, Trajectory, imagine_rollout
from .utils import (
    PercentileNormalizer,
    TwohotEncoder,
    binary_cross_entropy_logits,
    kl_terms,
    lambda_returns,
    symlog,
)

CHECKPOINT_FORMAT = "dreamer-agent-v2"


class WorldModel(nn.Module):
    """Encoder, RSSM, decoder, reward and continue heads with their losses."""

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        config: WorldModelConfig,
        weight_init: str = "official",
        discrete_actions: bool = False,
    ):
        super().__init__()
        c = config
        self.config = c
        self.encoder = Encoder(obs_dim, c.units, c.layers)
        self.rssm = RSSM(c.rssm, action_dim, self.encoder.out_dim, discrete_actions)
        feat = self.rssm.feat_dim
        self.decoder = Decoder(feat, obs_dim, c.units, c.layers)
        self.reward_head = RewardHead(feat, c.units, c.layers, c.num_bins)
        self.continue_head = ContinueHead(feat, c.units, c.layers)
        self.twohot = TwohotEncoder(c.num_bins)
        init_weights_(self, weight_init)
        # Loss scales keyed exactly like the losses (asserted in `loss`).
        self.scales = {
            "dec": c.dec_scale,
            "rew": c.rew_scale,
            "con": c.con_scale,
            "dyn": c.kl.dyn_weight,
            "rep": c.kl.rep_weight,
        }

    def loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor], State, Tensor]:
        """World-model loss on a (B, T) batch -> (total, per-term means, posteriors, KL)."""
        obs = batch["obs"]  # (B, T, O)
        embed = self.encoder(obs)  # (B, T, E), all steps at once
        states, post, prior = self.rssm.observe(embed, batch["prev_action"], batch["is_first"])
        feat = states.feat  # (B, T, D + G*K)
        losses = {}
        # L_dec = ||x^_t - symlog(x_t)||^2
        losses["dec"] = (self.decoder(feat).float() - symlog(obs)).square().sum(-1)
        # L_rew = twohot CE on symlog(r_t)
        losses["rew"] = self.twohot.loss(self.reward_head(feat), batch["reward"])
        # L_con = BCE toward c_t = 1 - terminated_t
        losses["con"] = binary_cross_entropy_logits(
            self.continue_head(feat), 1.0 - batch["is_terminal"]
        )
        # L_dyn = max(1, KL[sg(q) || p]),  L_rep = max(1, KL[q || sg(p)])
        losses["dyn"], losses["rep"] = kl_terms(post, prior, self.config.kl.free_bits)
        assert losses.keys() == self.scales.keys(), "every loss needs a scale"
        means = {key: value.mean() for key, value in losses.items()}
        total = sum(self.scales[key] * value for key, value in means.items())
        with torch.no_grad():
            kl = (post.exp() * (post - prior)).sum((-2, -1)).mean()
        return total, means, states, kl


class DreamerAgent(nn.Module):
    """World model + actor + critic (+ slow critic, return normaliser) and their optimisers."""

    def __init__(
        self,
        observation_space: Any,
        action_space: Any,
        config: DreamerConfig | None = None,
        device: str | torch.device = "cpu",
    ):
        super().__init__()
        self.config = config = validate(config or DreamerConfig())
        self.spaces = space_info(observation_space, action_space)
        self.discrete = self.spaces["discrete"]
        obs_dim, action_dim = self.spaces["obs_dim"], self.spaces["action_dim"]
        ac = config.actor_critic
        self.world_model = WorldModel(
            obs_dim, action_dim, config.world_model, config.weight_init, self.discrete
        )
        feat = self.world_model.rssm.feat_dim
        self.actor = Actor(
            feat, action_dim, self.discrete, ac.units, ac.layers, ac.unimix, ac.min_std, ac.max_std
        )
        self.critic = Critic(feat, ac.units, ac.layers, ac.num_bins)
        init_weights_(self.actor, config.weight_init)
        init_weights_(self.critic, config.weight_init)
        self.slow_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.retnorm = PercentileNormalizer(ac.retnorm_decay, ac.retnorm_low, ac.retnorm_high)
        self.value_twohot = TwohotEncoder(ac.num_bins)
        # validate() already checked the choices; these guard code that skips it
        if ac.actor_grad not in ("auto", "reinforce", "dynamics"):
            raise ValueError(f"actor_grad must be auto, reinforce or dynamics, not {ac.actor_grad}")
        auto = "reinforce" if self.discrete else "dynamics"
        self.actor_grad = auto if ac.actor_grad == "auto" else ac.actor_grad
        if ac.imag_cont not in ("prob", "mode"):
            raise ValueError(f"imag_cont must be prob or mode, not {ac.imag_cont}")
        if config.train.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be fp32 or bf16, not {config.train.precision}")
        self.device = torch.device(device)
        self.to(self.device)
        wm = config.world_model
        self.wm_opt = self._adam(self.world_model.parameters(), wm.lr, wm.eps)
        self.actor_opt = self._adam(self.actor.parameters(), ac.actor_lr, ac.eps)
        self.critic_opt = self._adam(self.critic.parameters(), ac.critic_lr, ac.eps)
        self.updates = 0
        self.skipped_updates = 0  # updates whose loss or gradient was not finite
        self._act_state: tuple[State, Tensor] | None = None

    def _adam(self, params: Any, lr: float, eps: float) -> torch.optim.Adam:
        # foreach: one kernel per op over all tensors instead of a Python loop per parameter.
        return torch.optim.Adam(params, lr=lr, eps=eps, foreach=True)

    # -- acting ---------------------------------------------------------------------------------

    def initial_state(self, batch_size: int = 1) -> tuple[State, Tensor]:
        """Recurrent acting state: (model state, previous action)."""
        latent = self.world_model.rssm.initial_state(batch_size)
        return latent, torch.zeros(batch_size, self.spaces["action_dim"], device=self.device)

    @torch.no_grad()
    def policy(
        self,
        obs: Any,
        state: tuple[State, Tensor] | None,
        is_first: Any,
        explore: bool = True,
    ) -> tuple[Tensor, tuple[State, Tensor]]:
        """action, state = policy(obs, state, is_first): one filtering step, then pi(a|s).

        obs (N, O), is_first (N,). The RSSM step at time t consumes a_{t-1} from `state`,
        exactly as in training. Returns the model action (one-hot or in [-1, 1]) and the new
        state; use `to_env_action` for the environment.
        """
        obs = torch.as_tensor(np.asarray(obs), dtype=torch.float32, device=self.device)
        obs = obs.reshape(-1, self.spaces["obs_dim"])
        is_first = torch.as_tensor(np.asarray(is_first), device=self.device).reshape(-1)
        if state is None:
            state = self.initial_state(obs.shape[0])
            is_first = torch.ones_like(is_first, dtype=torch.bool)
        latent, prev_action = state
        wm = self.world_model
        latent, _, _ = wm.rssm.obs_step(latent, prev_action, wm.encoder(obs), is_first)
        dist = self.actor(latent)
        action = dist.sample() if explore else dist.mode()
        return action, (latent, action)

    def to_env_action(self, action: Tensor) -> np.ndarray:
        """Model actions (N, A) -> environment actions (`envs.to_env_action`)."""
        return to_env_action(action.cpu().numpy(), self.spaces)

    def act(self, obs: Any, is_first: bool, explore: bool = True) -> Any:
        """Single-env convenience: keeps the recurrent state, resets when is_first."""
        state = None if is_first else self._act_state
        action, self._act_state = self.policy(obs, state, [is_first], explore)
        env_action = self.to_env_action(action)[0]
        return int(env_action) if self.discrete else env_action

    # -- training -------------------------------------------------------------------------------

    def autocast(self) -> Any:
        """bf16 autocast when `train.precision` is bf16, else a no-op context."""
        enabled = self.config.train.precision == "bf16"
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    def step_optimizer(self, optimizer: torch.optim.Optimizer, loss: Tensor, clip: float) -> Tensor:
        """Backprop into this optimiser's parameters only, clip the global grad norm, and step
        only if loss and norm are finite.

        `backward(inputs=params)` leaves every other module's gradients untouched: the actor's
        loss flows through the world model and the critic without training them.
        """
        params = [p for group in optimizer.param_groups for p in group["params"]]
        optimizer.zero_grad(set_to_none=True)
        loss.backward(inputs=params)
        norm = torch.nn.utils.clip_grad_norm_(params, clip, foreach=True)
        if torch.isfinite(norm) and torch.isfinite(loss):
            optimizer.step()
        else:
            self.skipped_updates += 1
        optimizer.zero_grad(set_to_none=True)  # no stale gradients between steps
        return norm

    def batch_to_torch(self, batch: dict[str, np.ndarray]) -> dict[str, Tensor]:
        return {
            key: torch.as_tensor(value, device=self.device).float() for key, value in batch.items()
        }

    def train_step(self, batch: dict[str, Any]) -> dict[str, float]:
        """One update of world model, actor and critic on a (B, T) replay batch -> metrics."""
        if isinstance(next(iter(batch.values())), np.ndarray):
            batch = self.batch_to_torch(batch)
        metrics: dict[str, Tensor] = {}
        with self.autocast():
            wm_loss, wm_losses, posts, kl = self.world_model.loss(batch)
        skipped = self.skipped_updates
        metrics["grad_norm/world_model"] = self.step_optimizer(
            self.wm_opt, wm_loss, self.config.world_model.grad_clip
        )
        metrics.update({f"loss/{key}": value.detach() for key, value in wm_losses.items()})
        metrics["kl"] = kl
        if self.skipped_updates > skipped:
            # non-finite world model: its states would poison the actor and critic too
            self.updates += 1
            return {key: float(value) for key, value in metrics.items()}
        metrics.update(self.train_actor_critic(posts.detach(), batch))
        self.updates += 1
        keys = list(metrics)
        values = torch.stack([metrics[k].detach().float() for k in keys]).tolist()  # one sync
        return dict(zip(keys, values, strict=True))

    def imagine(self, start: State) -> Trajectory:
        """Dream H steps from `start` (N, ...) with a_t ~ pi(a | sg(s_t)).

        The actor reads sg(s_t), as in the official 2023 code: with dynamics backprop the
        return's gradient reaches an action through the world model, not through later actor
        inputs. REINFORCE needs no graph through the dream at all.
        """
        wm, horizon = self.world_model, self.config.actor_critic.horizon

        def policy(state: State) -> Tensor:
            if torch.is_grad_enabled():  # REINFORCE dreams have no graph to cut
                state = state.detach()
            return self.actor(state).sample()

        def rollout() -> Trajectory:
            heads = (wm.reward_head, wm.continue_head)
            return imagine_rollout(wm.rssm, start, policy, horizon, *heads)

        if self.actor_grad == "reinforce":
            with torch.no_grad():
                return rollout()
        return rollout()

    def imagined_continues(self, logits: Tensor) -> Tensor:
        """c_t from the continue head's logits: its probability, or its mode (0 or 1)."""
        if self.config.actor_critic.imag_cont == "mode":
            return (logits.float() > 0).float()
        return torch.sigmoid(logits.float())

    def train_actor_critic(self, posts: State, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Actor and critic from dreams that start at every replayed posterior (B, T, ...).

        The world model is never trained here: each optimiser step backpropagates into its own
        parameters only (`_step`).
        """
        ac = self.config.actor_critic
        reinforce = self.actor_grad == "reinforce"
        start = posts.flatten()  # (N = B*T, ...): every posterior state starts a dream
        with self.autocast():
            traj = self.imagine(start)
            states = traj.states  # (H + 1, N, ...)
            rewards = self.world_model.twohot.decode_logits(traj.reward_logits)  # (H, N)
            # c_1..c_H; no gradient through the continue head (the 2023 code uses its mode)
            cont = self.imagined_continues(traj.cont_logits).detach()  # (H, N)
            if reinforce:  # one critic pass serves the targets and the critic loss
                value_logits = self.critic(states.detach())  # (H + 1, N, bins)
                values = self.value_twohot.decode_logits(value_logits.detach())
            else:  # the return's gradient flows through the critic's input states
                values = self.value_twohot.decode_logits(self.critic(states))  # (H + 1, N)
            returns = lambda_returns(rewards, values, cont, ac.gamma, ac.lam)  # (H, N)
            start_cont = 1.0 - batch["is_terminal"].flatten()  # (N,)
            weight = losses_ac.imagination_weights(start_cont, cont, ac.gamma)  # (H, N)
            self.retnorm.update(returns)
            scale = self.retnorm.scale
            adv = losses_ac.advantage(returns, values[:-1], scale)  # (H, N)
            starts = states.map(lambda x: x[:-1].detach())  # sg(s_0..s_{H-1})
            dist = self.actor(starts)
            entropy = dist.entropy()  # (H, N)
            if reinforce:
                log_prob = dist.log_prob(traj.actions.detach())
                actor_loss = losses_ac.reinforce_actor_loss(
                    log_prob, entropy, adv, weight, ac.entropy
                )
            else:
                actor_loss = losses_ac.dynamics_actor_loss(adv, entropy, weight, ac.entropy)
        actor_norm = self.step_optimizer(self.actor_opt, actor_loss, ac.grad_clip)

        with self.autocast():
            logits = value_logits[:-1] if reinforce else self.critic(starts)  # (H, N, bins)
            with torch.no_grad():
                slow = self.value_twohot.decode_logits(self.slow_critic(starts))  # (H, N)
            critic_loss = losses_ac.critic_loss(
                self.value_twohot, logits, returns, slow, weight, ac.slow_critic_reg
            )
            if ac.replay_critic_scale > 0:
                # step 0 of every dream is a replayed posterior: reuse its critic outputs
                B, T = batch["reward"].shape
                replay_loss = losses_ac.replay_critic_loss(
                    self.value_twohot,
                    logits[0].view(B, T, -1),
                    slow[0].view(B, T),
                    batch,
                    returns[0].detach().view(B, T),
                    ac.gamma,
                    ac.lam,
                    ac.slow_critic_reg,
                )
                critic_loss = critic_loss + ac.replay_critic_scale * replay_loss
        critic_norm = self.step_optimizer(self.critic_opt, critic_loss, ac.grad_clip)
        self._update_slow_critic(ac.slow_critic_rate)
        return {
            "loss/actor": actor_loss.detach(),
            "loss/critic": critic_loss.detach(),
            "actor/entropy": entropy.mean().detach(),
            "actor/return": returns.mean().detach(),
            "actor/value": values.mean().detach(),
            "actor/imag_reward": rewards.mean().detach(),
            "actor/imag_cont": cont.mean(),
            "actor/weight": weight.mean(),
            "actor/return_scale": scale.detach(),
            "grad_norm/actor": actor_norm,
            "grad_norm/critic": critic_norm,
        }

    @torch.no_grad()
    def _update_slow_critic(self, rate: float) -> None:
        """slow <- (1 - rate) * slow + rate * critic."""
        slow, fast = list(self.slow_critic.parameters()), list(self.critic.parameters())
        torch._foreach_lerp_(slow, fast, rate)

    # -- persistence ----------------------------------------------------------------------------

    def checkpoint_state(self) -> dict:
        """Everything of the agent as plain state_dicts (no pickled modules)."""
        return {
            "format": CHECKPOINT_FORMAT,
            "config": config_to_dict(self.config),
            "spaces": self.spaces,
            "model": self.state_dict(),
            "wm_opt": self.wm_opt.state_dict(),
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "updates": self.updates,
            "skipped_updates": self.skipped_updates,
        }

    def load_checkpoint_state(self, state: dict, strict_config: bool = True) -> None:
        """Restore from `checkpoint_state`; a different config or env fails with the diffs."""
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError("not a dreamer agent checkpoint")
        if state["spaces"] != self.spaces:
            raise ValueError(
                f"checkpoint is for other spaces ({state['spaces']}), not {self.spaces}"
            )
        diffs = config_diff(state["config"], config_to_dict(self.config))
        if strict_config and diffs:
            raise ValueError("checkpoint config differs: " + "; ".join(diffs))
        self.load_state_dict(state["model"])
        self.wm_opt.load_state_dict(state["wm_opt"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.updates = state["updates"]
        self.skipped_updates = state["skipped_updates"]

    def save(self, path: str | os.PathLike) -> None:
        """Atomic save: write a temp file, then rename over `path`."""
        atomic_torch_save(self.checkpoint_state(), path)

    def load(self, path: str | os.PathLike) -> None:
        self.load_checkpoint_state(load_checkpoint_file(path))

    @classmethod
    def from_checkpoint(
        cls, path: str | os.PathLike, device: str | torch.device = "cpu"
    ) -> DreamerAgent:
        """The agent of a run checkpoint (latest.pt) or an agent checkpoint (best.pt, `save`),
        rebuilt from its stored config and spaces: no env needed. Ready to `act`.
        """
        state = load_checkpoint_file(path)
        if isinstance(state, dict) and state.get("format") == RUN_FORMAT:
            state = state["agent"]
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{os.fspath(path)} is not a dreamer checkpoint")
        observation_space, action_space = spaces_from_info(state["spaces"])
        config = config_from_dict(DreamerConfig, state["config"])
        agent = cls(observation_space, action_space, config, device)
        agent.load_checkpoint_state(state)
        return agent.eval()
