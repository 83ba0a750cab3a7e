"""LaProp with adaptive gradient clipping and a linear warm-up: the 2025 recipe's optimiser.

The official current code chains, per parameter tensor p with gradient g at step t = 1, 2, ...:

    g  <- g / max(1, ||g|| / (agc * max(pmin, ||p||)))   adaptive gradient clipping (AGC)
    v  <- b2 v + (1 - b2) g^2                            second moment of the raw gradient
    u  =  g / (sqrt(v / (1 - b2^t)) + eps)               normalise first (LaProp) ...
    m  <- b1 m + (1 - b1) u                              ... then take momentum of that
    p  <- p - lr_t m / (1 - b1^t),  lr_t = lr min(1, (t - 1) / warmup)

Adam takes momentum of g and divides afterwards; LaProp divides first, so momentum and the
adaptive scale are decoupled and a tiny eps (1e-20) is safe. AGC bounds each tensor's step
relative to its own size (0.3 of its norm), which replaces the global grad-norm clip. The
warm-up starts from 0 as optax's linear schedule does: the first step leaves p unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor


class LaProp(torch.optim.Optimizer):
    """LaProp + AGC + linear warm-up (the defaults are the official 2025 ones).

    Like fused Adam, `step` skips the whole update where the `found_inf` attribute (a 0-dim
    tensor, set by the caller as torch's GradScaler does) is 1, without a host sync.
    """

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 4e-5,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-20,
        agc: float = 0.3,
        pmin: float = 1e-3,
        warmup: int = 1000,
    ):
        defaults = dict(lr=lr, betas=betas, eps=eps, agc=agc, pmin=pmin, warmup=warmup)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: None = None) -> None:  # type: ignore[override]
        found_inf = getattr(self, "found_inf", None)
        skip = None if found_inf is None else found_inf.bool()

        def commit(old: Tensor, new: Tensor) -> None:  # where(skip, old, new): NaN-proof
            old.copy_(new if skip is None else torch.where(skip, old, new))

        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=p.dtype, device=p.device)
                    state["v"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["m"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                g = clip_by_agc(p, p.grad, group["agc"], group["pmin"])
                t = state["step"] + 1
                v = state["v"].lerp(g * g, 1 - b2)  # b2 v + (1 - b2) g^2
                u = g / ((v / (1 - b2**t)).sqrt() + group["eps"])
                m = state["m"].lerp(u, 1 - b1)  # b1 m + (1 - b1) u
                warmup = group["warmup"]
                lr = group["lr"] * (torch.clamp((t - 1) / warmup, max=1.0) if warmup else 1.0)
                commit(p, p - lr * m / (1 - b1**t))
                commit(state["step"], t)
                commit(state["v"], v)
                commit(state["m"], m)


def clip_by_agc(param: Tensor, grad: Tensor, clip: float, pmin: float) -> Tensor:
    """g / max(1, ||g|| / (clip * max(pmin, ||p||))): the gradient's norm at most clip ||p||."""
    upper = clip * torch.clamp(param.norm(), min=pmin)
    return grad / torch.clamp(grad.norm() / upper, min=1.0)
