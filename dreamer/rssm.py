"""Recurrent state-space model (RSSM) and imagination (paper section "World model learning").

Glossary
    h_t       `deter`   deterministic GRU memory, (B, D)
    z_t       `stoch`   G categorical variables of K classes, one-hot, flattened to (B, G*K)
    s_t       `feat`    model state [h_t, z_t], (B, D + G*K)
    q(z|h,e)  posterior, used when the observation embedding e_t is known
    p(z|h)    prior (dynamics predictor), used for dreaming
    sg(.)     `.detach()`

Sequence model:  h_t = GRU(h_{t-1}, Linear+Norm+SiLU([z_{t-1}, a_{t-1}]))
Posterior:       z_t ~ q(z_t | h_t, e_t)      Prior:  z^_t ~ p(z^_t | h_t)

The state is reset to the initial state, and the previous action to zero, wherever `is_first`
is set (`RSSM.reset`, the one place that does it), so a replayed sequence never carries memory
across an episode boundary.

Speed: `observe` runs the encoder once over the whole sequence before the loop, computes the
prior of every step in one batched call after it, draws the sampling noise up front and hoists
the input-only halves of two Linears out of the loop. `observe_plain` is the same filter as a
loop of `obs_step`; `utils.plain_maths()` selects it, and a test pins the two equal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import RSSMConfig
from .utils import fast_paths_enabled, onehot_matmul, sample_categorical, unimix_logits


class State(NamedTuple):
    """Model state s_t = (h_t, z_t); any leading dims.

    `index` holds the sampled class of each latent when z_t is a sample (None for the zero
    initial state or hand-made states). Layers that read s_t use it to skip the zeros of the
    one-hot (`utils.onehot_matmul`); the values are the same either way.
    """

    deter: Tensor  # (..., D)
    stoch: Tensor  # (..., G*K) one-hot, flattened
    index: Tensor | None = None  # (..., G) int64: the class of each one-hot group

    @property
    def feat(self) -> Tensor:
        return torch.cat([self.deter, self.stoch], -1)  # (..., D + G*K)

    @property
    def gatherable(self) -> bool:
        """Its classes are known and z_t carries no gradient: layers may gather, not multiply."""
        return fast_paths_enabled() and self.index is not None and not self.stoch.requires_grad

    def map(self, fn: Callable[[Tensor], Tensor]) -> State:
        """Apply `fn` to every tensor, e.g. a slice over the leading dims."""
        return State(*(None if x is None else fn(x) for x in self))

    def detach(self) -> State:
        return self.map(Tensor.detach)

    def flatten(self) -> State:
        """(B, T, ...) -> (B*T, ...)."""
        return self.map(lambda x: x.flatten(0, -2))


class LayerNormGRUCell(nn.Module):
    """GRU with one fused Linear over [x, h], LayerNorm, and update-gate bias -1.

    The -1 bias makes the cell copy its memory at initialisation (update gate ~0.27), which
    eases learning long dependencies (DreamerV3 official GRU cell, normed variant).
    """

    def __init__(self, in_dim: int, deter: int):
        super().__init__()
        self.linear = nn.Linear(in_dim + deter, 3 * deter, bias=False)
        self.norm = nn.LayerNorm(3 * deter, eps=1e-3)

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        parts = self.norm(self.linear(torch.cat([x, h], -1)))
        reset, cand, update = parts.chunk(3, -1)
        reset = torch.sigmoid(reset)
        cand = torch.tanh(reset * cand)
        update = torch.sigmoid(update - 1.0)
        # update * cand + (1 - update) * h in one kernel, in h's dtype: under bf16 autocast the
        # gates are bf16 while the memory h stays float32 (lerp does not promote dtypes)
        return torch.lerp(h, cand.to(h.dtype), update.to(h.dtype))


def _mlp_logits(in_dim: int, units: int, out_dim: int) -> nn.Sequential:
    out = nn.Linear(units, out_dim)
    out.output_layer = True  # `networks.init_weights_`: the official uniform init of outputs
    return nn.Sequential(
        nn.Linear(in_dim, units, bias=False), nn.LayerNorm(units, eps=1e-3), nn.SiLU(), out
    )


def _after_first(layers: nn.Sequential, x: Tensor) -> Tensor:
    """`layers[1:](x)` without building a new Sequential at every step of a loop."""
    for layer in list(layers)[1:]:
        x = layer(x)
    return x


class RSSM(nn.Module):
    """GRU deterministic state + categorical stochastic state (paper Eq. 3-4)."""

    def __init__(
        self, config: RSSMConfig, action_dim: int, embed_dim: int, discrete_actions: bool = False
    ):
        super().__init__()
        # one-hot actions are already in [0, 1]: the continuous action clip would be a no-op
        self.clip = 0.0 if discrete_actions else config.action_clip
        self.config = config
        c = config
        self.stoch_dim = c.stoch * c.classes
        self.feat_dim = c.deter + self.stoch_dim
        self.action_dim = action_dim
        self.img_in = nn.Sequential(
            nn.Linear(self.stoch_dim + action_dim, c.units, bias=False),
            nn.LayerNorm(c.units, eps=1e-3),
            nn.SiLU(),
        )
        self.gru = LayerNormGRUCell(c.units, c.deter)
        self.prior_net = _mlp_logits(c.deter, c.units, self.stoch_dim)
        self.posterior_net = _mlp_logits(c.deter + embed_dim, c.units, self.stoch_dim)
        if c.initial == "learned":
            self.initial_deter = nn.Parameter(torch.zeros(c.deter))
        elif c.initial == "zeros":  # a buffer: no optimiser can ever move it
            self.register_buffer("initial_deter", torch.zeros(c.deter))
        else:
            raise ValueError(f"rssm.initial must be 'learned' or 'zeros', not {c.initial!r}")
        # The step functions the loops call: the eager methods, or compiled (`compile_steps`).
        self.filter_step_fn = self.filter_step
        self.imagine_step_fn = self.imagine_step

    def compile_steps(self) -> None:
        """torch.compile one filtering step and one dreamed step, the two loop bodies.

        Every step of a loop has the same shapes, so each body compiles once (the filter twice:
        its first step has no sampled classes yet), in seconds, and its many small elementwise
        ops run as a few fused kernels at every step; compiling the whole unrolled update
        instead takes minutes to a quarter of an hour. The eager methods stay
        the reference (tests/test_compile.py pins the two equal).
        """
        self.filter_step_fn = torch.compile(self.filter_step, dynamic=False)
        self.imagine_step_fn = torch.compile(self.imagine_step, dynamic=False)

    def eager_steps(self) -> None:
        """Undo `compile_steps`."""
        self.filter_step_fn, self.imagine_step_fn = self.filter_step, self.imagine_step

    # -- pieces -------------------------------------------------------------------------------

    def _logits(self, raw: Tensor) -> Tensor:
        """(..., G*K) raw -> (..., G, K) unimixed log-probs."""
        raw = raw.unflatten(-1, (self.config.stoch, self.config.classes))
        return unimix_logits(raw.float(), self.config.unimix)

    def _sample(self, logits: Tensor, uniform: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(..., G, K) logits -> (..., G*K) straight-through one-hot sample, (..., G) classes."""
        onehot, index = sample_categorical(logits, uniform)
        return onehot.flatten(-2), index

    def initial_state(self, batch_size: int) -> State:
        """s_0 for `batch_size` rows.

        'learned': h_0 = tanh(w), z_0 = mode of p(z | h_0) (2023 official; z_0 carries no
        gradient). 'zeros': h_0 = 0, z_0 = 0 (current official code).
        """
        deter = torch.tanh(self.initial_deter)[None]  # (1, D)
        if self.config.initial == "zeros":
            stoch = deter.new_zeros(1, self.stoch_dim)
            return State(deter.expand(batch_size, -1), stoch.expand(batch_size, -1))
        index = self.prior_logits(deter).argmax(-1)  # (1, G): the prior's mode
        classes = torch.arange(self.config.classes, device=index.device)
        # one-hot by comparison: F.one_hot checks its input's range on the host
        stoch = (index[..., None] == classes).to(deter.dtype).flatten(-2)  # (1, G*K)
        return State(
            deter.expand(batch_size, -1),
            stoch.expand(batch_size, -1),
            index.expand(batch_size, -1),
        )

    def reset(
        self, state: State, prev_action: Tensor, first: Tensor, initial: State
    ) -> tuple[State, Tensor]:
        """Where first (B, 1) is True: s_{t-1} <- s_0 and a_{t-1} <- 0; elsewhere unchanged.

        `prev_action` may also be any linear image of the action (observe passes W_a a).
        """
        deter = torch.where(first, initial.deter, state.deter)
        stoch = torch.where(first, initial.stoch, state.stoch)
        index = None
        if state.index is not None and initial.index is not None:
            index = torch.where(first, initial.index, state.index)
        return State(deter, stoch, index), prev_action.masked_fill(first, 0.0)

    def clip_action(self, action: Tensor) -> Tensor:
        """a * sg(c / max(c, |a|)): continuous actions scaled into [-c, c] (2023 official).

        The scale carries no gradient, so dynamics backprop still reaches the actor. One-hot
        actions skip it (`discrete_actions`): they are already in [0, 1].
        """
        c = self.clip
        if c <= 0:
            return action
        return action * (c / torch.clamp(action.abs(), min=c)).detach()

    def recurrent(self, state: State, action: Tensor) -> Tensor:
        """h_t = GRU(h_{t-1}, [z_{t-1}, a_{t-1}])."""
        action = self.clip_action(action)
        if state.gatherable:  # W [z, a] = W_z z + W_a a, W_z z a gather of one column per latent
            weight, S = self.img_in[0].weight, self.stoch_dim
            z_part = onehot_matmul(state.stoch, state.index, weight[:, :S])
            x = _after_first(self.img_in, z_part + F.linear(action, weight[:, S:]))
        else:
            x = self.img_in(torch.cat([state.stoch, action], -1))
        return self.gru(x, state.deter)

    def prior_logits(self, deter: Tensor) -> Tensor:
        """p(z_t | h_t): (..., D) -> (..., G, K)."""
        return self._logits(self.prior_net(deter))

    def posterior_logits(self, deter: Tensor, embed: Tensor) -> Tensor:
        """q(z_t | h_t, e_t): -> (..., G, K)."""
        return self._logits(self.posterior_net(torch.cat([deter, embed], -1)))

    # -- public steps ---------------------------------------------------------------------------

    def obs_step(
        self,
        state: State,
        prev_action: Tensor,
        embed: Tensor,
        is_first: Tensor | None = None,
    ) -> tuple[State, Tensor, Tensor]:
        """One filtering step with the real observation -> (posterior state, post, prior logits)."""
        if is_first is not None and bool(is_first.any()):  # s_0 costs a prior pass: only if used
            initial = self.initial_state(state.deter.shape[0])
            first = is_first.bool().unsqueeze(-1)  # (B, 1)
            state, prev_action = self.reset(state, prev_action, first, initial)
        deter = self.recurrent(state, prev_action)
        post_logits = self.posterior_logits(deter, embed)
        state = State(deter, *self._sample(post_logits))
        return state, post_logits, self.prior_logits(deter)

    def imagine_step(self, state: State, action: Tensor, uniform: Tensor | None = None) -> State:
        """One dreamed step: h_t from (s_{t-1}, a_{t-1}), then z^_t sampled from the prior."""
        deter = self.recurrent(state, action)
        return State(deter, *self._sample(self.prior_logits(deter), uniform))

    def filter_step(
        self,
        state: State,
        action_part: Tensor,
        embed_part: Tensor,
        first: Tensor,
        initial: State,
        uniform: Tensor,
    ) -> tuple[State, Tensor]:
        """`observe`'s loop body: one filtering step from the hoisted input products.

        action_part = W_a a_{t-1} and embed_part = W_e e_t (B, units), computed for all t at once.
        Returns the posterior state and its logits (B, G, K).
        """
        S, D = self.stoch_dim, self.config.deter
        img_w, post_w = self.img_in[0].weight, self.posterior_net[0].weight
        # W_a (0 * a) = 0 * W_a a: resetting the action's product resets the action
        state, action_part = self.reset(state, action_part, first, initial)
        x = _after_first(self.img_in, F.linear(state.stoch, img_w[:, :S]) + action_part)
        deter = self.gru(x, state.deter)  # (B, D): h_t = GRU(h_{t-1}, [z_{t-1}, a_{t-1}])
        post = _after_first(self.posterior_net, F.linear(deter, post_w[:, :D]) + embed_part)
        post = self._logits(post)
        return State(deter, *self._sample(post, uniform)), post  # z_t ~ q(z_t | h_t, e_t)

    def observe(
        self,
        embed: Tensor,
        prev_action: Tensor,
        is_first: Tensor,
        state: State | None = None,
    ) -> tuple[State, Tensor, Tensor]:
        """Filter a whole sequence; inputs (B, T, ...), resetting wherever is_first (B, T).

        Returns posterior states (B, T, ...), posterior logits and prior logits (B, T, G, K).
        """
        if not fast_paths_enabled():
            return self.observe_plain(embed, prev_action, is_first, state)
        B, T = embed.shape[:2]
        initial = self.initial_state(B)
        state = state if state is not None else initial
        # Noise for every step drawn at once: the loop body is pure network work.
        uniform = torch.rand(B, T, self.config.stoch, 1, device=embed.device)
        # Hoist the input-only halves of two Linears out of the loop: W [z, a] = W_z z + W_a a
        # and W [h, e] = W_h h + W_e e, with the a- and e-parts done for all T in one matmul.
        img_w = self.img_in[0].weight  # (units, G*K + A)
        post_w = self.posterior_net[0].weight  # (units, D + E)
        S, D = self.stoch_dim, self.config.deter
        action_part = F.linear(self.clip_action(prev_action), img_w[:, S:])  # (B, T, units)
        embed_part = F.linear(embed, post_w[:, D:])  # (B, T, units)
        first = is_first.bool().unsqueeze(-1)  # (B, T, 1)
        state = State(state.deter, state.stoch)  # the loop multiplies z, it never gathers
        deters, stochs, indices, posts = [], [], [], []
        for t in range(T):
            state, post = self.filter_step_fn(
                state, action_part[:, t], embed_part[:, t], first[:, t], initial, uniform[:, t]
            )
            deters.append(state.deter)
            stochs.append(state.stoch)
            indices.append(state.index)
            posts.append(post)
        deter = torch.stack(deters, 1)  # (B, T, D)
        states = State(deter, torch.stack(stochs, 1), torch.stack(indices, 1))  # (B, T, G*K)
        prior = self.prior_logits(deter)  # (B, T, G, K), batched outside the loop
        return states, torch.stack(posts, 1), prior

    def observe_plain(
        self,
        embed: Tensor,
        prev_action: Tensor,
        is_first: Tensor,
        state: State | None = None,
    ) -> tuple[State, Tensor, Tensor]:
        """`observe` as the textbook loop of `obs_step` (same noise, same values)."""
        B, T = embed.shape[:2]
        initial = self.initial_state(B)
        state = state if state is not None else initial
        uniform = torch.rand(B, T, self.config.stoch, 1, device=embed.device)
        first = is_first.bool().unsqueeze(-1)  # (B, T, 1)
        steps, posts, priors = [], [], []
        for t in range(T):
            state, action = self.reset(state, prev_action[:, t], first[:, t], initial)
            deter = self.recurrent(state, action)  # h_t = GRU(h_{t-1}, [z_{t-1}, a_{t-1}])
            post = self.posterior_logits(deter, embed[:, t])
            state = State(deter, *self._sample(post, uniform[:, t]))  # z_t ~ q(z_t | h_t, e_t)
            steps.append(state)
            posts.append(post)
            priors.append(self.prior_logits(deter))
        states = State(*(torch.stack(xs, 1) for xs in zip(*steps, strict=True)))
        return states, torch.stack(posts, 1), torch.stack(priors, 1)


@dataclass
class Trajectory:
    """An imagined rollout. Index 0 is the (replayed) start state."""

    states: State  # (H + 1, N, ...)
    actions: Tensor  # (H, N, A): a_t chosen in s_t
    reward_logits: Tensor | None = None  # (H, N, bins): r_{t+1} predicted in s_{t+1}
    cont_logits: Tensor | None = None  # (H, N): c_{t+1} predicted in s_{t+1}

    @property
    def feats(self) -> Tensor:
        return self.states.feat  # (H + 1, N, D + G*K)


def imagine_rollout(
    rssm: RSSM,
    start_states: State,
    policy: Callable[[State], Tensor],
    horizon: int,
    reward_head: nn.Module | None = None,
    continue_head: nn.Module | None = None,
) -> Trajectory:
    """Dream `horizon` steps from `start_states` (N, ...) with actions a_t = policy(s_t).

    The prior rolls forward; reward and continue heads (if given) are applied to states 1..H in
    one batched call after the loop. Gradients flow through actions and states unless the
    caller runs this under torch.no_grad (REINFORCE) or freezes the world model.
    """
    N = start_states.deter.shape[0]
    c = rssm.config
    uniform = torch.rand(horizon, N, c.stoch, 1, device=start_states.deter.device)
    state = start_states
    steps, actions = [state], []
    for t in range(horizon):
        action = policy(state)  # (N, A)
        state = rssm.imagine_step_fn(state, action, uniform[t])
        steps.append(state)
        actions.append(action)
    # (H + 1, N, ...); the start's classes are kept only if it has them
    index = None if start_states.index is None else torch.stack([s.index for s in steps])
    states = State(
        torch.stack([s.deter for s in steps]), torch.stack([s.stoch for s in steps]), index
    )
    traj = Trajectory(states, torch.stack(actions))
    later = states.map(lambda x: x[1:])  # s_1..s_H
    if reward_head is not None:
        traj.reward_logits = reward_head(later)
    if continue_head is not None:
        traj.cont_logits = continue_head(later)
    return traj
