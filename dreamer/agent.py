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

import contextlib
import copy
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel as DDP

from . import actor_critic as losses_ac
from .checkpoint import RUN_FORMAT, atomic_torch_save, load_checkpoint_file
from .config import (
    REPLAY_GRAD_NEEDS_REINFORCE,
    ConfigError,
    DreamerConfig,
    ReplayConfig,
    WorldModelConfig,
    config_diff,
    config_from_dict,
    config_to_dict,
    validate,
)
from .distributed import mean_across_ranks
from .envs import obs_arrays, space_info, spaces_from_info, to_env_action
from .networks import (
    Actor,
    ContinueHead,
    Critic,
    Decoder,
    Encoder,
    RewardHead,
    add_hidden_biases_,
    init_weights_,
)
from .optim import LaProp
from .rssm import RSSM, State, Trajectory, imagine_rollout
from .utils import (
    PercentileNormalizer,
    TwohotEncoder,
    binary_cross_entropy_logits,
    kl_terms,
    lambda_returns,
)
from .vision import MultiDecoder, MultiEncoder, observations_to_torch

CHECKPOINT_FORMAT = "dreamer-agent-v2"


def priority_terms(replay: ReplayConfig) -> tuple[str, ...]:
    """The world-model loss terms whose per-step sum is a step's replay priority: none for
    uniform replay; 'model' the official signal (decoder and both KL terms), 'world' all five."""
    if replay.priority_frac == 0:
        return ()
    if replay.priority_signal == "model":
        return ("dec", "dyn", "rep")
    return ("dec", "rew", "con", "dyn", "rep")


def last_steps(posts: State, batch: dict[str, Tensor], k: int) -> tuple[State, dict[str, Tensor]]:
    """The last k steps of every replayed window: posteriors (B, k, ...) and the batch's
    reward, is_terminal and is_last (B, k). k = 0, or k >= T, keeps all T (official
    `imag_last`). The last steps have the longest context behind their posteriors."""
    T = batch["reward"].shape[1]
    if k == 0 or k >= T:
        return posts, batch
    keys = ("reward", "is_terminal", "is_last")
    return posts.map(lambda x: x[:, -k:]), {key: batch[key][:, -k:] for key in keys}


class WorldModel(nn.Module):
    """Encoder, RSSM, decoder, reward and continue heads with their losses.

    `obs`: the size O of a vector observation (the MLP `Encoder` and `Decoder`), or the
    {batch key: shape} of images and Dict observations (`vision.MultiEncoder` and
    `MultiDecoder`). Either way the encoder gives (..., E) and the decoder a loss (...), so the
    RSSM and the heads never see the difference.
    """

    def __init__(
        self,
        obs: int | dict[str, list[int]],
        action_dim: int,
        config: WorldModelConfig,
        weight_init: str = "official",
        discrete_actions: bool = False,
        twohot: str = "symlog",
        gamma: float = 0.997,
        priority_terms: tuple[str, ...] = (),
    ):
        super().__init__()
        c = config
        self.config = c
        # per-step losses summed into each step's replay priority (none: replay is uniform)
        self.priority_terms = priority_terms
        self.obs_shapes = None if isinstance(obs, int) else dict(obs)
        if self.obs_shapes is None:
            self.encoder: nn.Module = Encoder(obs, c.units, c.layers)
        else:
            self.encoder = MultiEncoder(self.obs_shapes, c.units, c.layers, c.cnn)
        self.rssm = RSSM(c.rssm, action_dim, self.encoder.out_dim, discrete_actions)
        feat = self.rssm.feat_dim
        if self.obs_shapes is None:
            self.decoder: nn.Module = Decoder(feat, obs, c.units, c.layers, c.dec_symlog)
        else:
            self.decoder = MultiDecoder(feat, self.obs_shapes, c.units, c.layers, c.cnn)
        head_layers = c.layers if c.head_layers is None else c.head_layers
        self.reward_head = RewardHead(feat, c.units, head_layers, c.num_bins)
        self.continue_head = ContinueHead(feat, c.units, head_layers)
        self.twohot = TwohotEncoder(c.num_bins, spacing=twohot)
        # c_t = 1 - terminated_t, or gamma (1 - terminated_t) for the 'discounted' target
        self.cont_scale = gamma if c.cont_target == "discounted" else 1.0
        init_weights_(self, weight_init)
        # Loss scales keyed exactly like the losses (asserted in `loss`).
        self.scales = {
            "dec": c.dec_scale,
            "rew": c.rew_scale,
            "con": c.con_scale,
            "dyn": c.kl.dyn_weight,
            "rep": c.kl.rep_weight,
        }

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor], State, Tensor]:
        return self.loss(batch)  # what DistributedDataParallel calls

    def loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor], State, Tensor]:
        """World-model loss on a (B, T) batch -> (total, per-term means, posteriors, KL).

        With `priority_terms` the means also hold 'priority': the sum of those terms per step,
        (B, T) without gradient, each step's new replay priority.
        """
        obs = self.observation(batch)  # (B, T, O), or {key: (B, T, H, W, C) or (B, T, N)}
        embed = self.encoder(obs)  # (B, T, E), all steps at once
        states, post, prior = self.rssm.observe(embed, batch["prev_action"], batch["is_first"])
        feat = states.feat  # (B, T, D + G*K)
        losses = {}
        # L_dec = ||x^_t - symlog(x_t)||^2 (images: ||x^_t - (x_t / 255 - 0.5)||^2), (B, T)
        losses["dec"] = self.decoder.loss(feat, obs)
        # L_rew = twohot CE on symlog(r_t)
        losses["rew"] = self.twohot.loss(self.reward_head(feat), batch["reward"])
        # L_con = BCE toward c_t = 1 - terminated_t (times gamma for the discounted target)
        terminal = batch["is_terminal"]
        losses["con"] = binary_cross_entropy_logits(
            self.continue_head(feat), self.cont_scale * (1.0 - terminal)
        )
        weight = self.config.con_terminal_weight
        if weight != 1.0:  # a terminal step counts `weight` times (official: once)
            losses["con"] = losses["con"] * (1.0 + (weight - 1.0) * terminal)
        # L_dyn = max(1, KL[sg(q) || p]),  L_rep = max(1, KL[q || sg(p)])
        losses["dyn"], losses["rep"] = kl_terms(post, prior, self.config.kl.free_bits)
        assert losses.keys() == self.scales.keys(), "every loss needs a scale"
        means = {key: value.mean() for key, value in losses.items()}
        total = sum(self.scales[key] * value for key, value in means.items())
        if self.priority_terms:  # official 'model' signal: the unscaled dec + dyn + rep
            means["priority"] = sum(losses[key] for key in self.priority_terms).detach()
        with torch.no_grad():
            kl = (post.exp() * (post - prior)).sum((-2, -1)).mean()
        return total, means, states, kl

    def observation(self, batch: dict[str, Tensor]) -> Tensor | dict[str, Tensor]:
        """The observation part of a batch: the vector, or the dict of the keys it is made of."""
        if self.obs_shapes is None:
            return batch["obs"]
        return {key: batch[key] for key in self.obs_shapes}


class BehaviorLosses(nn.Module):
    """Actor and critic as one module whose forward is `actor_critic_losses`: the unit
    DistributedDataParallel wraps (one forward, one backward per update)."""

    def __init__(self, agent: DreamerAgent):
        super().__init__()
        self.actor, self.critic = agent.actor, agent.critic
        self.losses = agent.actor_critic_losses  # a bound method: no module cycle

    def forward(
        self, posts: State, batch: dict[str, Tensor]
    ) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        return self.losses(posts, batch)


class DreamerAgent(nn.Module):
    """World model + actor + critic (+ slow critic, return normaliser) and their optimisers."""

    def __init__(
        self,
        observation_space: Any,
        action_space: Any,
        config: DreamerConfig | None = None,
        device: str | torch.device = "cpu",
        compile: bool | str | None = False,
        cuda_graph: bool = False,
    ):
        super().__init__()
        self.config = config = validate(config or DreamerConfig())
        self.spaces = space_info(observation_space, action_space)
        self.discrete = self.spaces["discrete"]
        vector = self.spaces["obs_dim"] is not None
        obs = self.spaces["obs_dim"] if vector else self.spaces["obs_shapes"]  # size, or shapes
        action_dim = self.spaces["action_dim"]
        ac = config.actor_critic
        self.world_model = WorldModel(
            obs,
            action_dim,
            config.world_model,
            config.weight_init,
            self.discrete,
            config.twohot,
            ac.gamma,
            priority_terms(config.replay),
        )
        feat = self.world_model.rssm.feat_dim
        self.actor = Actor(
            feat, action_dim, self.discrete, ac.units, ac.layers, ac.unimix, ac.min_std, ac.max_std
        )
        self.critic = Critic(feat, ac.units, ac.layers, ac.num_bins)
        init_weights_(self.actor, config.weight_init)
        init_weights_(self.critic, config.weight_init)
        with torch.no_grad():  # 2025 code: the actor starts near uniform (outscale 0.01)
            self.actor.net[-1].weight.mul_(ac.actor_outscale)
        if config.hidden_bias:  # zero at first: the same function, a new parameter each
            for module in (self.world_model, self.actor, self.critic):
                add_hidden_biases_(module)
        self.slow_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.retnorm = PercentileNormalizer(ac.retnorm_decay, ac.retnorm_low, ac.retnorm_high)
        self.value_twohot = TwohotEncoder(ac.num_bins, spacing=config.twohot)
        # gamma of imagination: 1 when the continue head already predicts gamma * c
        self.imag_gamma = 1.0 if config.world_model.cont_target == "discounted" else ac.gamma
        # validate() already checked the choices; these guard code that skips it
        if ac.actor_grad not in ("auto", "reinforce", "dynamics"):
            raise ValueError(f"actor_grad must be auto, reinforce or dynamics, not {ac.actor_grad}")
        auto = "reinforce" if self.discrete else "dynamics"
        self.actor_grad = auto if ac.actor_grad == "auto" else ac.actor_grad
        if ac.replay_critic_grad and self.actor_grad != "reinforce":
            raise ConfigError(REPLAY_GRAD_NEEDS_REINFORCE)
        if ac.imag_cont not in ("prob", "mode"):
            raise ValueError(f"imag_cont must be prob or mode, not {ac.imag_cont}")
        if config.train.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be fp32 or bf16, not {config.train.precision}")
        self.device = torch.device(device)
        if cuda_graph and self.device.type != "cuda":
            raise ValueError(f"cuda_graph needs a CUDA device, not {self.device}")
        self.cuda_graph = cuda_graph
        self.to(self.device)
        wm = config.world_model
        self.wm_opt = self._adam(self.world_model.parameters(), wm.lr, wm.eps)
        self.actor_opt = self._adam(self.actor.parameters(), ac.actor_lr, ac.eps)
        self.critic_opt = self._adam(self.critic.parameters(), ac.critic_lr, ac.eps)
        self.updates = 0
        self.last_priority: np.ndarray | None = None  # (B, T) of the last update, if prioritized
        self.skipped_updates = 0  # updates whose loss or gradient was not finite
        self._act_state: tuple[State, Tensor] | None = None
        # The loss functions `train_step` calls: the eager methods, or compiled (`--compile`).
        self.world_model_loss_fn = self.world_model.loss
        self.actor_critic_loss_fn = self.actor_critic_losses
        self.reduce_across_ranks: Any = None  # set by `data_parallel`
        self.compiled: str | None = None  # what `--compile` took: "steps", "losses" or nothing
        if compile:
            self.compile_update("steps" if compile is True else compile)
        self._graph: torch.cuda.CUDAGraph | None = None
        self._graph_warmup = 3  # eager updates before recording (torch's CUDA graph notes)

    def compile_update(self, scope: str = "steps") -> None:
        """torch.compile part of the update, forward and backward: inductor fuses the many
        small elementwise ops into a few kernels. With `cuda_graph` the fused kernels are
        recorded too. The eager methods stay the reference (tests/test_compile.py pins each
        scope equal to them).

        "steps": the RSSM's two loop bodies (a filtering step, a dreamed step), each compiled
        once for all steps. "losses": both whole loss functions, the unrolled loops included
        (minutes to compile on a GPU host, a quarter-hour on a laptop).
        """
        if scope == "steps":
            self.world_model.rssm.compile_steps()
        elif scope == "losses":
            self.world_model_loss_fn = torch.compile(self.world_model.loss)
            self.actor_critic_loss_fn = torch.compile(self.actor_critic_losses)
        else:
            raise ValueError(f"compile scope must be steps or losses, not {scope!r}")
        self.compiled = scope

    @contextlib.contextmanager
    def eager(self) -> Iterator[None]:
        """The eager methods inside, whatever `compile_update` did (FLOP counting, comparisons)."""
        saved = self.world_model_loss_fn, self.actor_critic_loss_fn
        rssm = self.world_model.rssm
        steps = rssm.filter_step_fn, rssm.imagine_step_fn
        self.world_model_loss_fn, self.actor_critic_loss_fn = (
            self.world_model.loss,
            self.actor_critic_losses,
        )
        rssm.eager_steps()
        try:
            yield
        finally:
            self.world_model_loss_fn, self.actor_critic_loss_fn = saved
            rssm.filter_step_fn, rssm.imagine_step_fn = steps

    def data_parallel(self) -> None:
        """Average gradients across torchrun ranks (`distributed.py`): both loss functions run
        through DistributedDataParallel, which all-reduces gradients during each backward pass,
        and the return scale's percentiles are averaged too, so every rank steps alike.
        """
        if self.compiled or self.cuda_graph:
            raise ValueError("data-parallel training runs eager: drop --compile / --cuda-graph")
        if self.config.actor_critic.replay_critic_grad:  # two DDP modules in one backward
            raise ValueError("data-parallel training does not support replay_critic_grad yet")
        # every rank starts from rank 0's weights, slow critic and buffers included
        for tensor in self.state_dict().values():
            torch.distributed.broadcast(tensor, src=0)
        ids = [self.device.index] if self.device.type == "cuda" else None
        wm = DDP(self.world_model, device_ids=ids)
        ac = DDP(BehaviorLosses(self), device_ids=ids)
        # bound methods, not modules: the agent's state_dict must not gain DDP's copies
        self.world_model_loss_fn, self.actor_critic_loss_fn = wm.__call__, ac.__call__
        self.reduce_across_ranks = mean_across_ranks

    def _adam(self, params: Any, lr: float, eps: float) -> torch.optim.Optimizer:
        """The module's optimiser: Adam (2023) or LaProp with AGC and warm-up (2025)."""
        c = self.config
        if c.optimizer == "laprop":  # its own eps (1e-20, official); the modules' are Adam's
            return LaProp(params, lr=lr, agc=c.agc, warmup=c.warmup)
        # fused: one kernel for the whole step, and it can skip a non-finite step on the device;
        # capturable: its step counter lives on the device, as a CUDA graph needs
        return torch.optim.Adam(params, lr=lr, eps=eps, fused=True, capturable=self.cuda_graph)

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

        obs (N, O), an image (N, H, W, C) or a dict of them as the env gives it (one env's
        observation is N = 1), is_first (N,). The RSSM step at time t consumes a_{t-1} from
        `state`, exactly as in training. Returns the model action (one-hot or in [-1, 1]) and
        the new state; use `to_env_action` for the environment.
        """
        if self.spaces["obs_dim"] is None:
            obs = observations_to_torch(obs_arrays(obs), self.spaces["obs_shapes"], self.device)
            batch_size = next(iter(obs.values())).shape[0]
        else:
            obs = torch.as_tensor(np.asarray(obs), dtype=torch.float32, device=self.device)
            obs = obs.reshape(-1, self.spaces["obs_dim"])
            batch_size = obs.shape[0]
        is_first = torch.as_tensor(np.asarray(is_first), device=self.device).reshape(-1)
        if state is None:
            state = self.initial_state(batch_size)
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
        # a CUDA graph must not hold autocast's cached weight casts (torch's CUDA graph notes)
        cache = not self.cuda_graph
        return torch.autocast(
            self.device.type, dtype=torch.bfloat16, enabled=enabled, cache_enabled=cache
        )

    def step_optimizer(self, optimizer: torch.optim.Optimizer, loss: Tensor, clip: float) -> Tensor:
        """`step_optimizers` for one optimiser and its loss -> its gradient norm."""
        return self.step_optimizers([(optimizer, loss, clip)])[0][0]

    def step_optimizers(
        self, steps: list[tuple[torch.optim.Optimizer, Tensor, float]], skip: Tensor | None = None
    ) -> tuple[list[Tensor], Tensor]:
        """One backward pass of the summed losses into the optimisers' parameters only; then
        each optimiser clips its global gradient norm and steps unless its loss or norm is not
        finite (or `skip` is set).

        `backward(inputs=params)` leaves every other module's gradients untouched: the actor's
        loss flows through the world model without training it. Summing is exact when no
        loss reaches another's parameters (true of actor and critic, see `actor_critic_losses`).
        The finiteness check stays on the device: fused Adam skips its step where `found_inf`
        is 1 (the flag torch's GradScaler sets), so an update never waits for the host and can
        be recorded as a CUDA graph. Returns each gradient norm before clipping, and whether any
        step was skipped (a bool tensor).
        """
        groups = [[p for g in opt.param_groups for p in g["params"]] for opt, _, _ in steps]
        for opt, _, _ in steps:
            opt.zero_grad(set_to_none=True)
        total = sum(loss for _, loss, _ in steps)
        total.backward(inputs=[p for params in groups for p in params])
        skipped = torch.zeros((), dtype=torch.bool, device=self.device)
        norms = []
        agc = self.config.optimizer == "laprop"  # AGC inside LaProp replaces the global clip
        for (opt, loss, clip), params in zip(steps, groups, strict=True):
            max_norm = float("inf") if agc else clip  # inf: measure the norm, clip nothing
            norm = torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=True)
            bad = ~(torch.isfinite(norm) & torch.isfinite(loss))
            if skip is not None:
                bad = bad | skip
            opt.found_inf = bad.float()  # read by the fused kernel: 1 = leave everything as is
            opt.step()
            del opt.found_inf
            opt.zero_grad(set_to_none=True)  # no stale gradients between steps
            norms.append(norm)
            skipped = skipped | bad
        return norms, skipped

    def batch_to_torch(self, batch: dict[str, np.ndarray]) -> dict[str, Tensor]:
        """numpy batch -> float tensors on the device; uint8 images stay uint8 (4x fewer bytes
        to move; the encoder scales them). `step_id` names replay steps; it is not data."""
        return {key: self._to_device(value) for key, value in batch.items() if key != "step_id"}

    def _to_device(self, value: np.ndarray) -> Tensor:
        tensor = torch.as_tensor(value, device=self.device)
        return tensor if tensor.dtype == torch.uint8 else tensor.float()

    def train_step(self, batch: dict[str, Any]) -> dict[str, float]:
        """One update of world model, actor and critic on a (B, T) replay batch -> metrics.

        An update with a non-finite loss or gradient changes nothing and reports the world
        model's metrics only (`skipped_updates` counts them).
        """
        if isinstance(next(iter(batch.values())), np.ndarray):
            batch = self.batch_to_torch(batch)
        metrics = self.graphed_update(batch) if self.cuda_graph else self.update(batch)
        metrics = dict(metrics)  # a CUDA graph's recorded dict stays whole
        priority = metrics.pop("priority", None)  # (B, T), with prioritized replay
        self.last_priority = None if priority is None else priority.float().cpu().numpy()
        keys = list(metrics)
        values = torch.stack([metrics[k].detach().float() for k in keys]).tolist()  # one sync
        result = dict(zip(keys, values, strict=True))
        self.updates += 1
        if result.pop("skipped"):
            self.skipped_updates += 1
            # only the world model's metrics (its losses, kl, grad norm): they show what went wrong
            wm_keys = [f"loss/{key}" for key in self.world_model.scales]
            wm_keys += ["kl", "grad_norm/world_model"]
            return {key: result[key] for key in wm_keys}
        return result

    def update(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """World model step, then actor and critic from its posteriors -> metrics as tensors.

        Never waits for the host: every decision (skip a non-finite step) is made on the device.
        """
        with self.autocast():
            wm_loss, wm_losses, posts, kl = self.world_model_loss_fn(batch)
        wm_losses = dict(wm_losses)
        priority = wm_losses.pop("priority", None)  # (B, T) new replay priorities, if any
        extra = {} if priority is None else {"priority": priority}
        if self.config.actor_critic.replay_critic_grad:
            return {**self.joint_update(batch, wm_loss, wm_losses, posts, kl), **extra}
        (wm_norm,), wm_skipped = self.step_optimizers(
            [(self.wm_opt, wm_loss, self.config.world_model.grad_clip)]
        )
        metrics = {f"loss/{key}": value.detach() for key, value in wm_losses.items()}
        metrics.update({"kl": kl, "grad_norm/world_model": wm_norm})
        # a non-finite world model would poison the actor and critic too: skip them with it
        ac_metrics, ac_skipped = self.train_actor_critic(posts.detach(), batch, wm_skipped)
        return {**metrics, **ac_metrics, "skipped": wm_skipped | ac_skipped, **extra}

    def joint_update(
        self,
        batch: dict[str, Tensor],
        wm_loss: Tensor,
        wm_losses: dict[str, Tensor],
        posts: State,
        kl: Tensor,
    ) -> dict[str, Tensor]:
        """`update` of the 2025 code: world model, actor and critic losses from the same
        parameters, one backward pass of their sum, then every optimiser steps.

        The replay critic loss reads the posteriors with their graph, so its gradient trains
        the world model as well as the critic (`replay_critic_grad`); the dreams start from
        sg(posteriors), so no other actor or critic loss reaches the model. A non-finite loss
        or gradient skips each optimiser it reaches (the critic's reaches the world model's).
        """
        ac, wm = self.config.actor_critic, self.config.world_model
        actor_loss, critic_loss, metrics = self.actor_critic_loss_fn(posts, batch)
        (wm_norm, actor_norm, critic_norm), skipped = self.step_optimizers(
            [
                (self.wm_opt, wm_loss, wm.grad_clip),
                (self.actor_opt, actor_loss, ac.grad_clip),
                (self.critic_opt, critic_loss, ac.grad_clip),
            ]
        )
        self._update_slow_critic(ac.slow_critic_rate)
        metrics = {
            **{f"loss/{key}": value.detach() for key, value in wm_losses.items()},
            **metrics,
            "kl": kl,
            "grad_norm/world_model": wm_norm,
            "grad_norm/actor": actor_norm,
            "grad_norm/critic": critic_norm,
        }
        return {**metrics, "skipped": skipped}

    def graphed_update(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """`update` replayed from a CUDA graph: thousands of kernel launches become one.

        The first updates run eagerly on a side stream (they allocate cuBLAS workspaces and the
        optimiser state); then one update is recorded, and every later call copies its batch into
        the recorded input tensors and replays. Same kernels, same random streams (the graph
        advances the generator's offset), only the launch overhead is gone.
        """
        if self._graph is None and self._graph_warmup > 0:
            self._graph_warmup -= 1
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                metrics = self.update(batch)
            torch.cuda.current_stream().wait_stream(side)
            return metrics
        if self._graph is None:
            self._graph_batch = {key: value.clone() for key, value in batch.items()}
            self._graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self._graph):  # records, computes nothing
                self._graph_metrics = self.update(self._graph_batch)
        for key, value in batch.items():
            self._graph_batch[key].copy_(value)
        self._graph.replay()
        return self._graph_metrics

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

    def critic_values(self, states: State) -> Tensor:
        """v(s_t) with the critic's parameters stopped: v_{sg(psi)}(s_t), gradients to s_t only.

        The actor's return reads the critic through this, so the actor's loss never trains the
        critic and one backward pass can serve both losses (`train_actor_critic`).
        """
        frozen = {name: p.detach() for name, p in self.critic.named_parameters()}
        logits = torch.func.functional_call(self.critic, frozen, (states,))
        return self.value_twohot.decode_logits(logits)

    def actor_critic_losses(
        self, posts: State, batch: dict[str, Tensor]
    ) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """(actor loss, critic loss, metrics) from dreams that start at every replayed
        posterior (B, T, ...): dream, lambda-returns and weights, then the two losses.

        The actor loss reaches no critic parameter (REINFORCE detaches its advantage; dynamics
        backprop reads `critic_values`) and the critic loss no actor parameter (its targets are
        detached). One function, so `torch.compile` can take the whole of it (`compile_losses`).
        """
        ac = self.config.actor_critic
        reinforce = self.actor_grad == "reinforce"
        posts, batch = last_steps(posts, batch, ac.imag_last)  # (B, K, ...)
        start = posts.flatten()  # (N = B*K, ...): every kept posterior state starts a dream
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
                values = self.critic_values(states)  # (H + 1, N)
            returns = lambda_returns(rewards, values, cont, self.imag_gamma, ac.lam)  # (H, N)
            start_cont = 1.0 - batch["is_terminal"].flatten()  # (N,)
            weight = losses_ac.imagination_weights(start_cont, cont, self.imag_gamma)  # (H, N)
            self.retnorm.update(returns, self.reduce_across_ranks)
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

            logits = value_logits[:-1] if reinforce else self.critic(starts)  # (H, N, bins)
            with torch.no_grad():
                slow = self.value_twohot.decode_logits(self.slow_critic(starts))  # (H, N)
            critic_loss = losses_ac.critic_loss(
                self.value_twohot, logits, returns, slow, weight, ac.slow_critic_reg
            )
            if ac.replay_critic_scale > 0:
                B, T = batch["reward"].shape
                if ac.replay_critic_grad:  # its own pass, so its gradient reaches the model
                    replay_logits = self.critic(posts)  # (B, T, bins)
                else:  # step 0 of every dream is a replayed posterior: reuse its outputs
                    replay_logits = logits[0].view(B, T, -1)
                replay_loss = losses_ac.replay_critic_loss(
                    self.value_twohot,
                    replay_logits,
                    slow[0].view(B, T),
                    batch,
                    returns[0].detach().view(B, T),
                    ac.gamma,
                    ac.lam,
                    ac.slow_critic_reg,
                )
                critic_loss = critic_loss + ac.replay_critic_scale * replay_loss
        metrics = {
            "loss/actor": actor_loss.detach(),
            "loss/critic": critic_loss.detach(),
            "actor/entropy": entropy.mean().detach(),
            "actor/return": returns.mean().detach(),
            "actor/value": values.mean().detach(),
            "actor/imag_reward": rewards.mean().detach(),
            "actor/imag_cont": cont.mean(),
            "actor/weight": weight.mean(),
            "actor/return_scale": scale.detach(),
        }
        return actor_loss, critic_loss, metrics

    def train_actor_critic(
        self, posts: State, batch: dict[str, Tensor], skip: Tensor | None = None
    ) -> tuple[dict[str, Tensor], Tensor]:
        """One step of actor and critic -> (metrics, skipped); the world model is never trained.

        The losses share no parameters, so one backward pass of their sum gives each optimiser
        exactly its own loss's gradient; each then clips and steps its own (`step_optimizers`).
        """
        ac = self.config.actor_critic
        actor_loss, critic_loss, metrics = self.actor_critic_loss_fn(posts, batch)
        (actor_norm, critic_norm), skipped = self.step_optimizers(
            [
                (self.actor_opt, actor_loss, ac.grad_clip),
                (self.critic_opt, critic_loss, ac.grad_clip),
            ],
            skip,
        )
        self._update_slow_critic(ac.slow_critic_rate)
        metrics = {**metrics, "grad_norm/actor": actor_norm, "grad_norm/critic": critic_norm}
        return metrics, skipped

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
        # fields added since the checkpoint was written take their defaults on both sides
        stored = config_to_dict(config_from_dict(DreamerConfig, state["config"]))
        diffs = config_diff(stored, config_to_dict(self.config))
        if strict_config and diffs:
            raise ValueError("checkpoint config differs: " + "; ".join(diffs))
        self.load_state_dict(state["model"])
        for opt, key in [(self.wm_opt, "wm_opt"), (self.actor_opt, "actor_opt"),
                         (self.critic_opt, "critic_opt")]:  # fmt: skip
            opt.load_state_dict(state[key])
            if not isinstance(opt, torch.optim.Adam):
                continue
            for group in opt.param_groups:  # this agent's choices, not the saving agent's
                group.update(fused=True, foreach=None, capturable=self.cuda_graph)
                for p in group["params"]:  # fused Adam keeps its step counter on the device
                    if "step" in opt.state.get(p, {}):
                        opt.state[p]["step"] = opt.state[p]["step"].to(p.device, torch.float32)
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
