"""The maths of DreamerV3: symlog, twohot, KL balancing, lambda-returns, return normalisation.

Paper: Hafner et al., "Mastering Diverse Domains through World Models" (arXiv 2301.04104,
Nature 2025). Equation numbers refer to the 2023 preprint (v1). Nothing here knows about
environments, logging or plotting.

Shapes: G latent variables, K classes each, H imagination horizon, N = B*T starts.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import KLBalanceConfig

__all__ = [
    "symlog",
    "symexp",
    "TwohotEncoder",
    "KLBalanceConfig",
    "categorical_kl",
    "kl_terms",
    "kl_balanced_loss",
    "unimix_logits",
    "sample_onehot",
    "sample_categorical",
    "onehot_matmul",
    "lambda_returns",
    "PercentileNormalizer",
    "plain_maths",
    "fast_paths_enabled",
]

# Speed tricks (one-hot gathers, a hoisted RSSM unroll) compute the same values as the plain
# products of the paper. `plain_maths()` turns them all off, so a reader can step through the
# textbook version and the tests can pin the two equal.
_FAST_PATHS = True


def fast_paths_enabled() -> bool:
    """True unless inside `plain_maths()`."""
    return _FAST_PATHS


@contextlib.contextmanager
def plain_maths() -> Iterator[None]:
    """Inside this block every layer computes the plain maths, e.g. W [z, a] as one product."""
    global _FAST_PATHS
    previous, _FAST_PATHS = _FAST_PATHS, False
    try:
        yield
    finally:
        _FAST_PATHS = previous


def symlog(x: Tensor) -> Tensor:
    """symlog(x) = sign(x) * ln(|x| + 1) (paper Eq. 1): compresses large magnitudes."""
    return torch.sign(x) * torch.log1p(torch.abs(x))


def symexp(x: Tensor) -> Tensor:
    """symexp(x) = sign(x) * (exp(|x|) - 1), the inverse of symlog (paper Eq. 2)."""
    return torch.sign(x) * torch.expm1(torch.abs(x))


class TwohotEncoder(nn.Module):
    """Twohot targets over 255 bins (paper Eq. 9-10), in one of two spacings.

    'symlog' (paper, 2023 code): bins `linspace(low, high)` *in symlog space*; a value is split
    between its two neighbouring bins so that the expected bin equals symlog(value) exactly, and
    `decode` takes symexp of that expectation. The default [-20, 20] covers raw values up to
    about +-5e8 (a common bug builds them as linspace(symlog(-20), symlog(20)), capping at 20).
    'symexp' (2025 code): the bins themselves are raw values, symexp(linspace(low, high)), and
    the split interpolates in raw space: the expected bin equals the value exactly, and `decode`
    is that expectation, with no symexp after it.
    """

    def __init__(
        self,
        num_bins: int = 255,
        low: float = -20.0,
        high: float = 20.0,
        spacing: str = "symlog",
    ) -> None:
        super().__init__()
        if num_bins < 2:
            raise ValueError("TwohotEncoder needs at least 2 bins")
        if spacing not in ("symlog", "symexp"):
            raise ValueError(f"twohot spacing must be 'symlog' or 'symexp', not {spacing!r}")
        self.num_bins, self.low, self.high, self.spacing = num_bins, low, high, spacing
        bins = torch.linspace(low, high, num_bins)
        if low == -high:  # float32 linspace is not exactly antisymmetric: make it so (bin 0 = 0)
            bins = (bins - bins.flip(0)) / 2
        if spacing == "symexp":
            bins = symexp(bins)  # raw values, dense near 0 and sparse far out
        self.register_buffer("bins", bins, persistent=False)

    def encode(self, values: Tensor) -> Tensor:
        """(*S,) raw values -> (*S, num_bins) twohot weights (of symlog(values) for 'symlog')."""
        if self.spacing == "symlog":
            x = symlog(values.float()).clamp(self.low, self.high)
            pos = (x - self.low) / (self.high - self.low) * (self.num_bins - 1)  # fractional bin
            # NaN inputs keep NaN weights (so the NaN guard sees them) but a valid index
            below = pos.nan_to_num(0.0).floor().clamp(0, self.num_bins - 2)
            frac = (pos - below).unsqueeze(-1)  # weight of the upper neighbour
        else:  # raw-space interpolation between the symexp-spaced neighbours
            x = values.float().clamp(self.bins[0], self.bins[-1])
            below = torch.searchsorted(self.bins, x.nan_to_num(0.0).contiguous(), right=True) - 1
            below = below.clamp(0, self.num_bins - 2)
            low, high = self.bins[below], self.bins[below + 1]
            frac = ((x - low) / (high - low)).unsqueeze(-1)
        below = below.long().unsqueeze(-1)
        target = torch.zeros(*values.shape, self.num_bins, device=values.device)
        target.scatter_(-1, below, 1.0 - frac)
        target.scatter_add_(-1, below + 1, frac)
        return target

    def loss(self, logits: Tensor, values: Tensor) -> Tensor:
        """Cross-entropy of softmax(logits) against twohot(values); shape of `values`."""
        log_probs = torch.log_softmax(logits.float(), dim=-1)
        return -(self.encode(values) * log_probs).sum(-1)

    def decode(self, probs: Tensor) -> Tensor:
        """(*S, num_bins) probabilities -> (*S,) raw values: symexp(E[bin]) or E[bin].

        Mirrored bins are summed in pairs (as the official code does), so uniform probabilities
        over symmetric bins, e.g. a zero-initialised head, decode to exactly 0.
        """
        weighted = probs.float() * self.bins
        half = self.num_bins // 2
        pairs = weighted[..., :half].flip(-1) + weighted[..., self.num_bins - half :]
        expected = pairs.sum(-1) + weighted[..., half : self.num_bins - half].sum(-1)
        return symexp(expected) if self.spacing == "symlog" else expected

    def decode_logits(self, logits: Tensor) -> Tensor:
        """decode(softmax(logits))."""
        return self.decode(torch.softmax(logits.float(), dim=-1))


def categorical_kl(p_logits: Tensor, q_logits: Tensor) -> Tensor:
    """KL[p || q] of (..., G, K) categoricals, summed over the G variables -> (...)."""
    p_log = torch.log_softmax(p_logits.float(), -1)
    q_log = torch.log_softmax(q_logits.float(), -1)
    return (p_log.exp() * (p_log - q_log)).sum((-2, -1))


def kl_terms(post_logits: Tensor, prior_logits: Tensor, free_bits: float) -> tuple[Tensor, Tensor]:
    """Per-step dynamics and representation losses (paper Eq. 5), shape (...).

    L_dyn = max(free, KL[sg(q) || p])  trains the prior;
    L_rep = max(free, KL[q || sg(p)])  trains the posterior.
    The clip is applied per step after summing over G, so below `free_bits` nats no gradient
    flows (the model is not pushed to collapse an already-good latent).
    """
    dyn = categorical_kl(post_logits.detach(), prior_logits)
    rep = categorical_kl(post_logits, prior_logits.detach())
    return dyn.clamp(min=free_bits), rep.clamp(min=free_bits)


def kl_balanced_loss(
    post_logits: Tensor, prior_logits: Tensor, config: KLBalanceConfig | None = None
) -> Tensor:
    """b_dyn * L_dyn + b_rep * L_rep averaged over all steps (paper Eq. 5); logits (..., G, K)."""
    config = config or KLBalanceConfig()
    dyn, rep = kl_terms(post_logits, prior_logits, config.free_bits)
    return (config.dyn_weight * dyn + config.rep_weight * rep).mean()


def unimix_logits(logits: Tensor, unimix: float) -> Tensor:
    """log((1 - u) * softmax(logits) + u / K): every class keeps probability >= u / K.

    Paper section "World model learning": the 1% uniform mix keeps KL and log-probs finite and
    stops the categorical from becoming deterministic.
    """
    if unimix <= 0.0:
        return torch.log_softmax(logits, -1)
    probs = torch.softmax(logits, -1)
    probs = (1.0 - unimix) * probs + unimix / logits.shape[-1]
    return torch.log(probs)


def sample_onehot(logits: Tensor, uniform: Tensor | None = None) -> Tensor:
    """One-hot sample with straight-through gradients: onehot + probs - sg(probs).

    Sampling inverts the CDF: the class is the number of cumulative probabilities below one
    uniform number per variable. That needs K times fewer random numbers than Gumbel-max and
    no logarithms, and avoids torch.multinomial. `uniform` (shape (..., 1), in [0, 1)) may be
    drawn in advance for a whole sequence to keep the per-step loop free of RNG calls.
    """
    return sample_categorical(logits, uniform)[0]


def sample_categorical(logits: Tensor, uniform: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """`sample_onehot` that also returns the sampled class of each variable, (...,) int64."""
    probs = torch.softmax(logits, -1)
    if uniform is None:
        uniform = torch.rand_like(logits[..., :1])
    cdf = probs.detach().cumsum(-1)  # (..., K)
    # The class is the number of cdf entries below the draw: one binary search per variable.
    # Scale by the total so float rounding of the cdf never leaves a draw past the last class.
    index = torch.searchsorted(cdf, uniform * cdf[..., -1:]).clamp_(max=logits.shape[-1] - 1)
    onehot = torch.zeros_like(logits).scatter_(-1, index, 1.0)
    if not probs.requires_grad:  # no straight-through path to build (e.g. REINFORCE dreams)
        return onehot, index.squeeze(-1)
    # (probs - sg(probs)) is exactly 0 forward, so the sample stays an exact one-hot in float32.
    return onehot + (probs - probs.detach()), index.squeeze(-1)


def onehot_matmul(onehot: Tensor, index: Tensor, weight: Tensor) -> Tensor:
    """F.linear(onehot, weight) for G one-hot variables, computed from their classes `index`.

    onehot (..., G*K) exact one-hots, index (..., G) int64 their classes, weight (out, G*K)
    -> (..., out). A one-hot selects one column per group, so the forward product is a sum of
    G gathered columns (torch's embedding_bag): G*out additions per row instead of G*K*out
    multiply-adds, 32x less work for 32x32 latents. The weight gradient is the plain product
    grad^T @ onehot (faster here than embedding_bag's sorting backward). No gradient reaches
    `onehot`: use this only where the state carries none.
    """
    if not (torch.is_grad_enabled() and weight.requires_grad):
        return _gather_columns(index, weight, onehot.shape[-1] // index.shape[-1])
    return _OneHotMatmul.apply(onehot, index, weight)


@functools.lru_cache(maxsize=64)
def _bag_layout(rows: int, groups: int, classes: int, device: torch.device) -> tuple:
    """Per-group offsets into the (G*K, out) table and the start of each row's bag."""
    offsets = torch.arange(groups, device=device) * classes  # class 0 of group g
    starts = torch.arange(0, rows * groups, groups, device=device)  # a bag of G per row
    return offsets, starts


def _gather_columns(index: Tensor, weight: Tensor, classes: int) -> Tensor:
    """sum_g weight[:, g*K + index_g] for every row: (..., G) classes -> (..., out)."""
    lead, groups = index.shape[:-1], index.shape[-1]
    offsets, starts = _bag_layout(index.numel() // groups, groups, classes, index.device)
    rows = (index + offsets).reshape(-1)  # (N*G,) row of the table for each latent
    table = weight.t().contiguous()  # (G*K, out)
    out = F.embedding_bag(rows, table, starts, mode="sum")  # (N, out)
    return out.reshape(*lead, weight.shape[0])


class _OneHotMatmul(torch.autograd.Function):
    @staticmethod
    def forward(ctx, onehot: Tensor, index: Tensor, weight: Tensor) -> Tensor:
        ctx.save_for_backward(onehot)
        return _gather_columns(index, weight, onehot.shape[-1] // index.shape[-1])

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[None, None, Tensor]:
        (onehot,) = ctx.saved_tensors
        grad = grad.reshape(-1, grad.shape[-1])  # (N, out)
        grad_weight = grad.t() @ onehot.reshape(-1, onehot.shape[-1]).to(grad.dtype)
        return None, None, grad_weight


def lambda_returns(
    rewards: Tensor,
    values: Tensor,
    continues: Tensor,
    gamma: float = 0.997,
    lam: float | Tensor = 0.95,
) -> Tensor:
    """TD(lambda) returns over an imagined trajectory (paper Eq. 7), time on dim 0.

    R_t = r_{t+1} + gamma * c_{t+1} * ((1 - lam) * v_{t+1} + lam * R_{t+1}),  R_H = v_H.

    rewards, continues: (H, ...) for steps 1..H (continues are probabilities, not yet times
    gamma); values: (H + 1, ...) for steps 0..H; lam a float or per step (H, ...).
    Returns (H, ...) for steps 0..H-1.
    """
    horizon = rewards.shape[0]
    if values.shape[0] != horizon + 1 or continues.shape[0] != horizon:
        raise ValueError("lambda_returns needs rewards/continues (H, ...) and values (H+1, ...)")
    discounts = gamma * continues
    # The non-recursive part: r_{t+1} + gamma c_{t+1} (1 - lam) v_{t+1}, in one batched op.
    base = rewards + discounts * (1.0 - lam) * values[1:]
    decay = discounts * lam  # (H, ...)
    returns = []
    last = values[-1]
    for t in reversed(range(horizon)):
        last = base[t] + decay[t] * last
        returns.append(last)
    return torch.stack(returns[::-1])


def replay_lambda_returns(
    rewards: Tensor,
    boot: Tensor,
    is_terminal: Tensor,
    is_last: Tensor,
    gamma: float = 0.997,
    lam: float = 0.95,
) -> Tensor:
    """TD(lambda) returns along a *replayed* sequence, time on dim 0 (2025 recipe, replay critic).

    R_t = r_{t+1} + gamma (1 - term_{t+1}) ((1 - l_{t+1}) boot_{t+1} + l_{t+1} R_{t+1}),
    l_{t+1} = lam (1 - last_{t+1}),  R_{T-1} = boot_{T-1}.

    All inputs (T, ...): rewards[t] = r_t received on arriving at x_t, boot[t] = the imagined
    lambda-return from x_t (what the critic learns in imagination), is_terminal/is_last flags of
    x_t. Real rewards and terminations carry the return along the sequence; at an episode's last
    step it stops following the sequence (the next step belongs to another episode) and
    bootstraps, or ends at a termination. Returns (T, ...) for steps 0..T-1.
    """
    if not rewards.shape == boot.shape == is_terminal.shape == is_last.shape:
        raise ValueError("replay_lambda_returns needs rewards, boot, flags of one shape (T, ...)")
    continues = 1.0 - is_terminal[1:].float()
    lams = lam * (1.0 - is_last[1:].float())  # lambda 0 after a last step: bootstrap there
    returns = lambda_returns(rewards[1:], boot, continues, gamma, lams)  # (T-1, ...)
    return torch.cat([returns, boot[-1:]])


class PercentileNormalizer(nn.Module):
    """Return scale S = max(1, EMA(P95) - EMA(P5)) (paper Eq. 11).

    Dividing advantages by S makes the entropy weight work across reward scales; the floor of 1
    keeps small, noisy returns from being amplified. EMAs start at 0 as in the official code.
    """

    def __init__(self, decay: float = 0.99, low: float = 0.05, high: float = 0.95) -> None:
        super().__init__()
        self.decay = decay
        self.register_buffer("quantiles", torch.tensor([low, high]))
        self.register_buffer("low", torch.zeros(()))
        self.register_buffer("high", torch.zeros(()))

    @torch.no_grad()
    def update(self, returns: Tensor, reduce: Callable[[Tensor], Tensor] | None = None) -> None:
        """Move the EMAs toward this batch's P5 and P95 (no host sync). `reduce`, if given,
        maps the (2,) percentiles to their mean across data-parallel ranks."""
        both = torch.quantile(returns.detach().float().flatten(), self.quantiles)
        lo, hi = reduce(both) if reduce is not None else both
        # a batch with non-finite returns (an update about to be skipped) leaves the EMAs alone
        keep = ~(torch.isfinite(lo) & torch.isfinite(hi))
        self.low.copy_(torch.where(keep, self.low, self.decay * self.low + (1 - self.decay) * lo))
        self.high.copy_(
            torch.where(keep, self.high, self.decay * self.high + (1 - self.decay) * hi)
        )

    @property
    def scale(self) -> Tensor:
        return torch.clamp(self.high - self.low, min=1.0)

    def normalize(self, x: Tensor) -> Tensor:
        return x / self.scale

    def forward(self, x: Tensor) -> Tensor:
        return self.normalize(x)


def binary_cross_entropy_logits(logits: Tensor, targets: Tensor) -> Tensor:
    """Per-element -log Bernoulli(targets; sigmoid(logits)) for the continue head."""
    return F.binary_cross_entropy_with_logits(logits.float(), targets.float(), reduction="none")
