"""Configuration dataclasses, one per concern, nested in `DreamerConfig`.

Paper: Hafner et al., "Mastering Diverse Domains through World Models" (Nature 2025;
arXiv 2301.04104). The defaults follow the **2023 recipe** (arXiv v1): separate Adam optimisers,
KL weights 0.5 / 0.1, REINFORCE for discrete and dynamics backprop for continuous actions; one
exception, imagined continues are the continue head's probability (current code) rather than
its 0/1 mode (`actor_critic.imag_cont`). Where the 2025 recipe differs the field comment says
so. Sizes default to the paper's XS preset (GRU 256, dense 256, 32x32 latents); the numbered
scripts override what differs per environment.

Every remaining difference from the official code (2023 and current) is a field here with its
reason in the departures table of docs/walkthrough.md.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RSSMConfig:
    """Recurrent state-space model sizes (paper section "World model learning")."""

    deter: int = 256  # h_t: GRU units (XS preset; paper S: 512)
    stoch: int = 32  # G: number of categorical latent variables
    classes: int = 32  # K: classes per categorical variable
    units: int = 256  # hidden units of the input and posterior/prior MLPs
    unimix: float = 0.01  # uniform mix into the categorical probs: 1% (paper: "unimix")
    # 'learned': h_0 = tanh(learned vector), z_0 = the prior's mode at h_0 (2023 official);
    # 'zeros': h_0 = 0 and z_0 = 0, not trained (current official code).
    initial: str = "learned"
    # Continuous actions enter the GRU scaled to |a| <= action_clip (scale without gradient),
    # so an unclipped policy sample cannot push the model off its training range (2023: 1.0).
    action_clip: float = 1.0


@dataclass
class KLBalanceConfig:
    """KL balancing with free bits (paper Eq. 5). 2025 code: dyn_weight = 1.0."""

    dyn_weight: float = 0.5  # beta_dyn: trains the prior toward sg(posterior)
    rep_weight: float = 0.1  # beta_rep: trains the posterior toward sg(prior)
    free_bits: float = 1.0  # nats; clipped per time step after summing over the G variables


@dataclass
class WorldModelConfig:
    """Encoder, decoder, reward and continue heads, and the world-model optimiser."""

    rssm: RSSMConfig = field(default_factory=RSSMConfig)
    kl: KLBalanceConfig = field(default_factory=KLBalanceConfig)
    units: int = 256  # hidden units of encoder, decoder and heads
    layers: int = 2  # hidden layers of each MLP
    num_bins: int = 255  # twohot bins for the reward head
    dec_scale: float = 1.0  # beta_pred for the decoder term
    rew_scale: float = 1.0  # beta_pred for the reward term
    con_scale: float = 1.0  # beta_pred for the continue term
    lr: float = 1e-4  # Adam learning rate (2023); 2025: one LaProp 4e-5 for all
    eps: float = 1e-8  # Adam epsilon
    grad_clip: float = 1000.0  # global grad-norm clip


@dataclass
class ActorCriticConfig:
    """Imagination, lambda-returns, actor and critic (paper section "Critic/Actor learning")."""

    horizon: int = 15  # H: imagined steps from every replayed posterior state
    gamma: float = 0.997  # 1 - 1/333
    lam: float = 0.95  # lambda of the lambda-returns
    units: int = 256  # hidden units of actor and critic
    layers: int = 2  # hidden layers of actor and critic
    num_bins: int = 255  # twohot bins for the critic
    entropy: float = 3e-4  # eta: entropy bonus of the actor
    unimix: float = 0.01  # uniform mix of the discrete actor
    min_std: float = 0.1  # continuous actor std in [min_std, max_std]
    max_std: float = 1.0
    # 'auto' = REINFORCE for discrete, dynamics backprop for continuous (2023 recipe).
    actor_grad: str = "auto"  # 'auto' | 'reinforce' | 'dynamics'
    # Continues c_t in imagination: the continue head's probability ('prob', 2025 code) or its
    # mode, 1 unless termination is more likely than not ('mode', 2023 code).
    imag_cont: str = "prob"  # 'prob' | 'mode'
    slow_critic_rate: float = 0.02  # EMA rate of the slow critic per update
    slow_critic_reg: float = 1.0  # weight of CE toward the slow critic's prediction
    # Critic loss on replayed sequences (real rewards and terminations, bootstrapped with the
    # imagined returns), added with this weight: 0 in the 2023 recipe, 0.3 in the 2025 recipe.
    replay_critic_scale: float = 0.0
    retnorm_decay: float = 0.99  # EMA decay of the return percentiles
    retnorm_low: float = 0.05  # P5
    retnorm_high: float = 0.95  # P95
    actor_lr: float = 3e-5
    critic_lr: float = 3e-5
    eps: float = 1e-5
    grad_clip: float = 100.0


@dataclass
class ReplayConfig:
    """Sequence replay (paper: batch 16 x 64)."""

    capacity: int = 1_000_000  # FIFO ring buffer size in steps
    batch_size: int = 16  # B
    seq_len: int = 64  # T


@dataclass
class TrainConfig:
    """Environment interaction and the training schedule."""

    steps: int = 100_000  # environment steps in total
    prefill: int = 1_000  # random-policy steps before the first update
    train_ratio: float = 512.0  # replayed steps (B*T per update) per env step; 2025 code: 32
    eval_every: int = 2_000  # env steps between evaluations
    eval_episodes: int = 10  # episodes per evaluation (separate env instances)
    # How evaluation acts: 'sample' the policy (both official versions) or take its 'mode'.
    eval_policy: str = "sample"
    log_every: int = 500  # env steps between metric rows
    checkpoint_every: int = 5_000  # env steps between 'latest' checkpoints
    precision: str = "fp32"  # 'fp32' | 'bf16' (autocast)
    threshold: float | None = None  # eval return that counts as solved (for summaries)


@dataclass
class DreamerConfig:
    """Everything one run needs. Scripts override only what differs per environment."""

    world_model: WorldModelConfig = field(default_factory=WorldModelConfig)
    actor_critic: ActorCriticConfig = field(default_factory=ActorCriticConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    # Weight init of every Linear: 'official' = the 2023 code's (variance 1 / mean(fan_in,
    # fan_out), truncated normal for hidden and uniform for output layers, zero biases);
    # 'torch' = PyTorch's default.
    weight_init: str = "official"


def config_to_dict(config: Any) -> dict:
    """A nested plain dict (JSON-ready) of a config dataclass."""
    return dataclasses.asdict(config)


def config_from_dict(cls: type, data: dict) -> Any:
    """Rebuild a (nested) config dataclass; unknown keys fail loudly."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(fields)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys: {sorted(unknown)}")
    kwargs = {}
    for name, value in data.items():
        sub = _dataclass_type(fields[name])
        kwargs[name] = config_from_dict(sub, value) if sub is not None else value
    return cls(**kwargs)


def override(config: Any, **changes: Any) -> Any:
    """Set dotted keys, e.g. override(cfg, **{"replay.seq_len": 32}); unknown keys fail."""
    for key, value in changes.items():
        target = config
        *path, last = key.split(".")
        for part in path:
            target = getattr(target, part)
        if not hasattr(target, last):
            raise ValueError(f"unknown config key '{key}'")
        setattr(target, last, value)
    return config


def config_diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Human-readable differences between two nested config dicts."""
    diffs = []
    for key in sorted(set(a) | set(b)):
        name = f"{prefix}{key}"
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            diffs += config_diff(va, vb, name + ".")
        elif va != vb:
            diffs.append(f"{name}: {va!r} != {vb!r}")
    return diffs


_TYPES = {
    "RSSMConfig": RSSMConfig,
    "KLBalanceConfig": KLBalanceConfig,
    "WorldModelConfig": WorldModelConfig,
    "ActorCriticConfig": ActorCriticConfig,
    "ReplayConfig": ReplayConfig,
    "TrainConfig": TrainConfig,
}


def _dataclass_type(f: dataclasses.Field) -> type | None:
    return _TYPES.get(f.type if isinstance(f.type, str) else getattr(f.type, "__name__", ""))
