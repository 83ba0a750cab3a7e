"""The actor and critic losses on imagined trajectories (paper section "Behavior learning").

Every function here is one equation. The agent (`agent.DreamerAgent.train_actor_critic`) dreams,
then calls them in order: returns and weights, the actor loss, the critic loss.

Symbols (time on dim 0; N = B*T dreams, one from every replayed posterior state):

    symbol   shape      meaning
    s_t      (H+1, N)   model state; s_0 is a replayed posterior, s_1..s_H are dreamed
    a_t      (H, N, A)  action chosen in s_t by the actor
    r_t, c_t (H, N)     reward and continue predicted in s_t, t = 1..H
    v_t      (H+1, N)   critic value of s_t (decoded twohot)
    R_t      (H, N)     lambda-return from s_t, t = 0..H-1 (`utils.lambda_returns`)
    w_t      (H, N)     weight of step t: discounted probability that the episode still runs
    S        ()         return scale max(1, P95 - P5) (`utils.PercentileNormalizer`)
"""

from __future__ import annotations

import torch
from torch import Tensor

from .utils import TwohotEncoder, replay_lambda_returns


def imagination_weights(start_cont: Tensor, cont: Tensor, gamma: float) -> Tensor:
    """w_t = c_0 * prod_{i=1..t} (gamma * c_i) = cumprod(gamma * [c_0, ..., c_{H-1}]) / gamma.

    start_cont (N,): c_0 = 1 - is_terminal of the replayed start (a terminal start weighs 0);
    cont (H, N): c_1..c_H. Step t carries gamma^t and the chance that no predicted episode end
    came before it (both official versions). Returns (H, N), without gradient.
    """
    c = torch.cat([start_cont[None].to(cont.dtype), cont[:-1]])  # (H, N): c_0..c_{H-1}
    return (c * gamma).cumprod(0).div(gamma).detach()


def advantage(returns: Tensor, values: Tensor, scale: Tensor) -> Tensor:
    """A_t = (R_t - v_t) / S  (paper Eq. 11): returns (H, N), values (H, N) of s_0..s_{H-1}."""
    return (returns - values) / scale


def reinforce_actor_loss(
    log_prob: Tensor, entropy: Tensor, adv: Tensor, weight: Tensor, eta: float
) -> Tensor:
    """L(theta) = -mean_t w_t [sg(A_t) ln pi(a_t | s_t) + eta H[pi(. | s_t)]]  (REINFORCE).

    The gradient is -w_t sg(A_t) grad ln pi(a_t | s_t) (the critic is the baseline inside A_t)
    plus the entropy bonus; nothing flows into the advantage or the weights.
    """
    return -(weight.detach() * (adv.detach() * log_prob + eta * entropy)).mean()


def dynamics_actor_loss(adv: Tensor, entropy: Tensor, weight: Tensor, eta: float) -> Tensor:
    """L(theta) = -mean_t w_t [(R_t - v_t) / S + eta H[pi(. | s_t)]]  (dynamics backprop).

    R_t and v_t carry gradients back through the dreamed states, the world model and the
    reparameterised actions into the actor (2023 recipe for continuous actions; the baseline
    v_t is not detached, as in the official 2023 code).
    """
    return -(weight.detach() * (adv + eta * entropy)).mean()


def critic_loss(
    twohot: TwohotEncoder,
    logits: Tensor,
    returns: Tensor,
    slow_values: Tensor,
    weight: Tensor,
    slow_reg: float,
) -> Tensor:
    """L(psi) = mean_t w_t [CE(v(s_t), twohot(sg R_t)) + reg * CE(v(s_t), twohot(v_slow(s_t)))].

    logits (H, N, bins) of s_0..s_{H-1}; returns, slow_values, weight (H, N). The second term
    pulls the critic toward its slow EMA copy, which keeps the bootstrapped targets from chasing
    themselves.
    """
    loss = twohot.loss(logits, returns.detach())
    loss = loss + slow_reg * twohot.loss(logits, slow_values.detach())
    return (weight.detach() * loss).mean()


def replay_critic_loss(
    twohot: TwohotEncoder,
    logits: Tensor,
    slow_values: Tensor,
    batch: dict[str, Tensor],
    boot: Tensor,
    gamma: float,
    lam: float,
    slow_reg: float,
) -> Tensor:
    """Critic loss on the replayed sequence itself (2025 recipe, weight 0.3 in the official code).

    Targets are lambda-returns of the real rewards and terminations along the replayed window,
    bootstrapped with the imagined return from each replayed state (`utils.replay_lambda_returns`):
    real outcomes reach the critic without waiting for imagined values to catch up.
    logits (B, T, bins), slow_values (B, T), boot (B, T); batch holds reward, is_terminal,
    is_last (B, T). An episode's last step gets no loss, nor does the window's last step
    (its target is its own bootstrap).
    """
    reward, term, last = (batch[k].transpose(0, 1) for k in ("reward", "is_terminal", "is_last"))
    target = replay_lambda_returns(reward, boot.transpose(0, 1), term, last, gamma, lam)  # (T, B)
    loss = twohot.loss(logits, target.transpose(0, 1).detach())
    loss = loss + slow_reg * twohot.loss(logits, slow_values.detach())
    weight = 1.0 - batch["is_last"]  # (B, T)
    return (weight * loss)[:, :-1].mean()
