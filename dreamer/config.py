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
import difflib
import math
import typing
from dataclasses import dataclass, field
from typing import Any, Literal


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
    initial: Literal["learned", "zeros"] = "learned"
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
class CNNConfig:
    """Image encoder and decoder (paper: "Methods"; the official code's 2023 config).

    Encoder: stride-2 convolutions, each followed by the norm and SiLU, halve the image from
    `env.image_size` down to `minres` while the channels double from `depth`: 64 -> 32 -> 16 ->
    8 -> 4 with depth, 2 depth, 4 depth, 8 depth channels. The decoder mirrors it with
    transposed convolutions (`vision.py`).
    """

    depth: int = 24  # channels of the first conv; paper XS 24, S 32 (official 2023 'small')
    kernel: int = 4  # side of every conv kernel, stride 2 (official 2023: 4); must be even
    minres: int = 4  # the encoder stops halving at this side (official 2023: 4)
    # 'layer': LayerNorm over the channels of each pixel, then SiLU (official 2023 'layer')
    norm: Literal["layer", "none"] = "layer"


@dataclass
class WorldModelConfig:
    """Encoder, decoder, reward and continue heads, and the world-model optimiser."""

    rssm: RSSMConfig = field(default_factory=RSSMConfig)
    kl: KLBalanceConfig = field(default_factory=KLBalanceConfig)
    cnn: CNNConfig = field(default_factory=CNNConfig)  # used only for image observations
    units: int = 256  # hidden units of encoder, decoder and heads
    layers: int = 2  # hidden layers of each MLP
    num_bins: int = 255  # twohot bins for the reward head
    dec_scale: float = 1.0  # beta_pred for the decoder term
    rew_scale: float = 1.0  # beta_pred for the reward term
    con_scale: float = 1.0  # beta_pred for the continue term
    # Weight of a terminal step in the continue loss (official: 1, like any step). Ends are rare
    # (CartPole: 1 step in 100-700), so a blurred head predicts them far too seldom; > 1 asks it
    # to err toward ending. A departure (walkthrough).
    con_terminal_weight: float = 1.0
    # The vector decoder regresses symlog(x) (paper); False: x itself, so an error far from 0
    # costs as much as one near it (a departure, walkthrough). Images are unaffected.
    dec_symlog: bool = True
    # Continue target: 'binary' c_t = 1 - terminated_t (2023); 'discounted' c_t = gamma * (1 -
    # terminated_t) (2025 code): the head then predicts the discount, and imagination uses its
    # output as gamma * c (returns and weights take no further gamma).
    cont_target: Literal["binary", "discounted"] = "binary"
    # Hidden layers of the reward and continue heads (None: `layers`; 2025 code: 1).
    head_layers: int | None = None
    lr: float = 1e-4  # Adam learning rate (2023); 2025: one LaProp 4e-5 for all
    eps: float = 1e-8  # Adam epsilon
    grad_clip: float = 1000.0  # global grad-norm clip


@dataclass
class ActorCriticConfig:
    """Imagination, lambda-returns, actor and critic (paper section "Critic/Actor learning")."""

    horizon: int = 15  # H: imagined steps from every replayed posterior state
    # K: dream only from the last K posteriors of each replayed window (0 = all T, the official
    # default `imag_last: 0`); the replay critic loss reads the same K steps, as officially.
    imag_last: int = 0
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
    actor_grad: Literal["auto", "reinforce", "dynamics"] = "auto"
    # Continues c_t in imagination: the continue head's probability ('prob', 2025 code) or its
    # mode, 1 unless termination is more likely than not ('mode', 2023 code).
    imag_cont: Literal["prob", "mode"] = "prob"
    slow_critic_rate: float = 0.02  # EMA rate of the slow critic per update
    slow_critic_reg: float = 1.0  # weight of CE toward the slow critic's prediction
    # Critic loss on replayed sequences (real rewards and terminations, bootstrapped with the
    # imagined returns), added with this weight: 0 in the 2023 recipe, 0.3 in the 2025 recipe.
    replay_critic_scale: float = 0.0
    # The replay critic loss trains the world model too (2025 code: its gradient reaches the
    # replayed states); then one backward pass and one step serve all losses, as the 2025 code's
    # single optimiser does. Needs actor_grad 'reinforce' (no actor loss through the model).
    replay_critic_grad: bool = False
    # Init scale of the actor's output layer (2023: 1.0; 2025 code: 0.01, a near-uniform start).
    actor_outscale: float = 1.0
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
    # Prioritized replay, the official code's `replay.fracs.priority` and `replay.prio` (0 in
    # every official preset; its 2024 code fed it the world model's loss): the share of windows
    # drawn in proportion to their steps' priorities instead of uniformly (`replay_buffer.py`).
    priority_frac: float = 0.0
    # which per-step losses give a step's priority: 'model' = dec + dyn + rep (official), 'world'
    # = every world-model term, reward and continue included
    priority_signal: Literal["model", "world"] = "model"
    priority_exponent: float = 0.8  # p = loss ** exponent (official)
    # window score = maxfrac max(p) + (1 - maxfrac) mean(p) over its steps (official)
    priority_maxfrac: float = 0.5
    # Recency, the official `replay.fracs.recency` (0 in every official preset): the share of
    # windows drawn by age, an age a with weight 1 / (a + 1) ** exponent over the capacity,
    # squeezed onto the stored windows (official `recexp`: 1)
    recency_frac: float = 0.0
    recency_exponent: float = 1.0


@dataclass
class TrainConfig:
    """Environment interaction and the training schedule."""

    steps: int = 100_000  # environment steps in total
    prefill: int = 1_000  # random-policy steps before the first update
    # env steps each random prefill action is held (1: a fresh draw every step); held 2-8
    # steps, Acrobot's random pushes add up to swings that reach the goal
    prefill_hold: int = 1
    # at least this many episodes, random too, before the first update (0: `prefill` steps
    # alone decide): long episodes (Acrobot's 500) would otherwise give replay only two
    prefill_episodes: int = 0
    # the first N episodes act at random too (held as in the prefill) while updates already run
    # from `prefill` steps on: more random episodes in replay (Acrobot's goals), no later first
    # update (0: off)
    random_episodes: int = 0
    train_ratio: float = 512.0  # replayed steps (B*T per update) per env step; 2025 code: 32
    eval_every: int = 2_000  # env steps between evaluations
    eval_episodes: int = 10  # episodes per evaluation (separate env instances)
    # How evaluation acts: 'sample' the policy (both official versions) or take its 'mode'.
    eval_policy: Literal["sample", "mode"] = "sample"
    log_every: int = 500  # env steps between metric rows
    checkpoint_every: int = 5_000  # env steps between 'latest' checkpoints
    precision: Literal["fp32", "bf16"] = "fp32"  # bf16: autocast
    threshold: float | None = None  # eval return that counts as solved (for summaries)
    # parallel environments (gymnasium AsyncVectorEnv); the train ratio counts all their steps
    envs: int = 1


@dataclass
class EnvConfig:
    """How observations reach the agent: the env's own, or rendered frames (`wrappers.py`)."""

    # 'env': the env's observation as it is; 'pixels': frames of env.render() (rgb_array)
    # instead, so the agent never sees the state vector.
    obs: Literal["env", "pixels"] = "env"
    image_size: int = 64  # every image observation is resized to this square side (paper: 64)
    color: Literal["rgb", "gray"] = "rgb"  # 'gray': one luminance channel (official Atari option)
    # each agent action is applied this many times, rewards summed (official: Atari 4; DMC 2 in
    # the 2023 code, 1 in the current)
    action_repeat: int = 1


@dataclass
class DreamerConfig:
    """Everything one run needs. Scripts override only what differs per environment."""

    world_model: WorldModelConfig = field(default_factory=WorldModelConfig)
    actor_critic: ActorCriticConfig = field(default_factory=ActorCriticConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    # Weight init of every Linear: 'official' = the 2023 code's (variance 1 / mean(fan_in,
    # fan_out), truncated normal for hidden and uniform for output layers, zero biases);
    # 'torch' = PyTorch's default.
    weight_init: Literal["official", "torch"] = "official"
    # 'adam' (2023): Adam per module, global grad-norm clip `grad_clip`. 'laprop' (2025):
    # LaProp (`optim.py`, eps 1e-20) with adaptive gradient clipping instead of the global clip,
    # and a linear learning-rate warm-up from 0.
    optimizer: Literal["adam", "laprop"] = "adam"
    # A bias in every hidden Linear of the MLPs (encoder, decoder, heads, actor, critic) before
    # its norm: current official code. 2023: none, so the encoder's first layer is blind to the
    # scale of its input vector (networks.MLP.add_hidden_biases). The RSSM's layers keep none.
    hidden_bias: bool = False
    agc: float = 0.3  # laprop: each tensor's gradient norm at most agc * its norm
    warmup: int = 1_000  # laprop: updates of the linear warm-up (0: none)
    # Twohot bins of the reward head and critic: 'symlog' = uniform in symlog space (paper,
    # 2023 code); 'symexp' = symexp of those points, interpolated in raw space (2025 code).
    twohot: Literal["symlog", "symexp"] = "symlog"


def classic_control() -> DreamerConfig:
    """The recipe the four classic-control scripts (02, 03, 05, 06) share. Each script adds its
    env-step budget, evaluation interval and threshold, and, until one setting serves all four,
    the few choices only it makes (said in its file; docs/experiments.md has the runs)."""
    config = DreamerConfig()
    # The XS model's widths with a quarter of its latents (a physics state is 3-8 numbers). At
    # 128 units CartPole fell back after 475 on every seed and Acrobot seed 0 never found the goal;
    # at 256 the critic lags its targets less and both hold (1.3-2x the time per update).
    config.world_model.rssm = RSSMConfig(deter=256, stoch=16, classes=16, units=256)
    config.world_model.units = 256
    config.actor_critic.units = 256
    # Few updates per env step, so 3x the paper's world-model and critic rates (1e-4 / 3e-5).
    config.world_model.lr = 3e-4
    config.actor_critic.critic_lr = 1e-4
    # Early episodes last 10-30 steps; 32-step windows waste less compute on resets.
    config.replay.seq_len = 32
    config.train.train_ratio = 128  # 0.25 updates per env step at B*T = 512
    # The 2025 recipe's critic loss on replayed sequences: real rewards and terminations reach
    # the critic directly, so its value does not lag its own targets.
    config.actor_critic.replay_critic_scale = 0.3
    # A 30-step dream (paper: 15): CartPole's drift must be corrected dozens of steps before the
    # edge; on Acrobot the preset at 15 without the replay loss never found the goal in 20k steps;
    # Pendulum swings up sooner with it (five seeds at -200 by 5-6k; 6-7k at 15, actor lr 1e-4).
    config.actor_critic.horizon = 30
    # Each random prefill action held 4 env steps: Acrobot's random pushes then add up to swings
    # that reach its goal (4 of 5 seeds learned it within 20k, 2 of 4 without); Pendulum -200
    # by 5k on 5 of 5 seeds on a GPU (3 without); CartPole 475 by 8k on 4 of 5 (5 without).
    config.train.prefill_hold = 4
    # The first 10 episodes act at random too (held as above) while the updates already run:
    # Acrobot seed 1, which never met the goal without them, meets it in them and every bar, as
    # do seeds 0, 2, 3 and 4; Pendulum -200 by 5k on 5 of 5 as before; CartPole ends its 10th
    # episode inside the 1,000 prefill steps, so nothing changes there (LunarLander: on 3 seeds
    # of 5; on the other 2 it acts at random for fewer than 500 steps past the prefill).
    config.train.random_episodes = 10
    return config


# The learning recipe of the official current code (the 2025 paper), by dotted key. Sizes,
# the env-step budget and evaluation are not part of a recipe: they stay the script's.
RECIPE_2025: dict[str, Any] = {
    "hidden_bias": True,
    "optimizer": "laprop",  # one LaProp (per-parameter: one per module at one rate is the same)
    "agc": 0.3,
    "warmup": 1_000,
    "world_model.lr": 4e-5,
    "actor_critic.actor_lr": 4e-5,
    "actor_critic.critic_lr": 4e-5,
    "world_model.kl.dyn_weight": 1.0,
    "world_model.kl.rep_weight": 0.1,
    "world_model.layers": 3,  # encoder and decoder MLPs
    "world_model.head_layers": 1,  # reward and continue heads
    "world_model.cont_target": "discounted",
    "world_model.rssm.initial": "zeros",
    "actor_critic.layers": 3,
    "actor_critic.actor_grad": "reinforce",  # for continuous actions too
    "actor_critic.unimix": 0.0,  # the 2025 categorical actor has no uniform mix
    "actor_critic.actor_outscale": 0.01,
    "actor_critic.imag_cont": "prob",
    "actor_critic.horizon": 15,
    "actor_critic.replay_critic_scale": 0.3,
    "actor_critic.replay_critic_grad": True,
    "twohot": "symexp",
    "replay.seq_len": 64,
    "train.train_ratio": 32.0,
}

RECIPES: dict[str, dict[str, Any]] = {"2025": RECIPE_2025}


def apply_recipe(config: DreamerConfig, name: str) -> DreamerConfig:
    """Set every field of recipe `name` ('2025') on `config`, in place; other fields stay."""
    if name not in RECIPES:
        raise ConfigError(f"unknown recipe '{name}'; choose one of: {', '.join(RECIPES)}")
    return override(config, **RECIPES[name])


# Valid range of every numeric field, by dotted key: "[a, b]" includes an end, "(a, b)" excludes
# it. Types come from the annotations above; str fields list their choices as Literal[...].
# `validate` checks both, plus the cross-field rules in `_cross_field_errors`.
LIMITS: dict[str, str] = {
    "world_model.rssm.deter": "[1, inf)",
    "world_model.rssm.stoch": "[1, inf)",
    "world_model.rssm.classes": "[2, inf)",  # one class carries no information
    "world_model.rssm.units": "[1, inf)",
    "world_model.rssm.unimix": "[0, 1)",
    "world_model.rssm.action_clip": "[0, inf)",  # 0 = no clip
    "world_model.kl.dyn_weight": "[0, inf)",
    "world_model.kl.rep_weight": "[0, inf)",
    "world_model.kl.free_bits": "[0, inf)",
    "world_model.cnn.depth": "[1, inf)",
    "world_model.cnn.kernel": "[2, inf)",  # even: a stride-2 conv then halves the side exactly
    "world_model.cnn.minres": "[1, inf)",
    "world_model.units": "[1, inf)",
    "world_model.layers": "[1, inf)",
    "world_model.num_bins": "[2, inf)",  # twohot needs two neighbouring bins
    "world_model.dec_scale": "[0, inf)",
    "world_model.con_terminal_weight": "[0, inf)",
    "world_model.rew_scale": "[0, inf)",
    "world_model.con_scale": "[0, inf)",
    "world_model.head_layers": "[0, inf)",  # 0: a linear head
    "world_model.lr": "(0, inf)",
    "world_model.eps": "(0, inf)",
    "world_model.grad_clip": "(0, inf)",
    "actor_critic.horizon": "[1, inf)",
    "actor_critic.imag_last": "[0, inf)",  # 0: every step of the window
    "actor_critic.gamma": "(0, 1]",
    "actor_critic.lam": "[0, 1]",
    "actor_critic.units": "[1, inf)",
    "actor_critic.layers": "[1, inf)",
    "actor_critic.num_bins": "[2, inf)",
    "actor_critic.entropy": "[0, inf)",
    "actor_critic.unimix": "[0, 1)",
    "actor_critic.min_std": "(0, inf)",
    "actor_critic.max_std": "(0, inf)",
    "actor_critic.slow_critic_rate": "(0, 1]",
    "actor_critic.slow_critic_reg": "[0, inf)",
    "actor_critic.replay_critic_scale": "[0, inf)",
    "actor_critic.actor_outscale": "[0, inf)",
    "actor_critic.retnorm_decay": "[0, 1)",
    "actor_critic.retnorm_low": "[0, 1]",
    "actor_critic.retnorm_high": "[0, 1]",
    "actor_critic.actor_lr": "(0, inf)",
    "actor_critic.critic_lr": "(0, inf)",
    "actor_critic.eps": "(0, inf)",
    "actor_critic.grad_clip": "(0, inf)",
    "replay.capacity": "[2, inf)",
    "replay.batch_size": "[1, inf)",
    "replay.seq_len": "[2, inf)",  # one step has no transition for the dynamics to learn
    "replay.priority_frac": "[0, 1]",
    "replay.priority_exponent": "[0, inf)",
    "replay.priority_maxfrac": "[0, 1]",
    "replay.recency_frac": "[0, 1]",
    "replay.recency_exponent": "[0, inf)",
    "env.image_size": "[2, inf)",
    "env.action_repeat": "[1, inf)",
    "train.steps": "[1, inf)",
    "train.prefill": "[0, inf)",
    "train.prefill_hold": "[1, inf)",
    "train.prefill_episodes": "[0, inf)",
    "train.random_episodes": "[0, inf)",
    "train.train_ratio": "(0, inf)",
    "train.eval_every": "[1, inf)",
    "train.eval_episodes": "[1, inf)",
    "train.log_every": "[1, inf)",
    "train.checkpoint_every": "[1, inf)",
    "train.threshold": "(-inf, inf)",
    "train.envs": "[1, inf)",
    "agc": "(0, inf)",
    "warmup": "[0, inf)",
}


REPLAY_GRAD_NEEDS_REINFORCE = (
    "actor_critic.replay_critic_grad needs a REINFORCE actor (actor_grad 'reinforce', or 'auto' "
    "with discrete actions): with dynamics backprop the joint step would train the world model "
    "on the actor's loss"
)


class ConfigError(ValueError):
    """A bad config key or value; the message is one line naming the field and what is allowed."""


def config_to_dict(config: Any) -> dict:
    """A nested plain dict (JSON-ready) of a config dataclass."""
    return dataclasses.asdict(config)


def config_from_dict(cls: type, data: dict, prefix: str = "") -> Any:
    """Rebuild a (nested) config dataclass, checking every key and value; missing keys keep
    their defaults (older checkpoints)."""
    if not isinstance(data, dict):
        raise ConfigError(f"config section {prefix.rstrip('.') or cls.__name__} must be a dict")
    hints = _hints(cls)
    kwargs = {}
    for name, value in data.items():
        key = prefix + name
        if name not in hints:
            raise ConfigError(_unknown_key_message(key))
        if dataclasses.is_dataclass(hints[name]):
            kwargs[name] = config_from_dict(hints[name], value, key + ".")
        else:
            kwargs[name] = check_value(key, value)
    config = cls(**kwargs)
    if cls is DreamerConfig:
        validate(config)
    return config


def override(config: Any, **changes: Any) -> Any:
    """Set dotted keys, e.g. override(cfg, **{"replay.seq_len": 32}); each key and value is
    checked (unknown keys name the closest valid one). Cross-field rules: call `validate`."""
    for key, value in changes.items():
        target, hints = config, _hints(type(config))
        *path, last = key.split(".")
        for part in path:
            if part not in hints or not dataclasses.is_dataclass(hints[part]):
                raise ConfigError(_unknown_key_message(key))
            target = getattr(target, part)
            hints = _hints(type(target))
        if last not in hints:
            raise ConfigError(_unknown_key_message(key))
        if dataclasses.is_dataclass(hints[last]):
            example = next(iter(leaf_keys(hints[last])))
            raise ConfigError(
                f"'{key}' is a section: set one of its fields, e.g. '{key}.{example}'"
            )
        setattr(target, last, check_value(key, value))
    return config


def validate(config: DreamerConfig) -> DreamerConfig:
    """Check every field's type and range and the cross-field rules; the first problem raises
    ConfigError. Called wherever a config enters a run (command line, Trainer, agent, resume)."""
    for key, value in leaf_values(config).items():
        if type(check_value(key, value)) is not type(value):
            # a whole float in an int field: converted from the command line, a bug in code
            raise ConfigError(f"{key} must be {_describe(key)}, got {value!r}")
    for message in _cross_field_errors(config):
        raise ConfigError(message)
    return config


def _cross_field_errors(c: DreamerConfig) -> list[str]:
    r, t, ac = c.replay, c.train, c.actor_critic
    errors = []
    if r.capacity < r.seq_len:
        errors.append(f"replay.capacity ({r.capacity}) must be >= replay.seq_len ({r.seq_len})")
    first_update = max(t.prefill, r.seq_len)  # replay must hold this many steps to train
    if t.steps <= first_update:
        errors.append(
            f"train.steps ({t.steps}) must exceed max(train.prefill, replay.seq_len) "
            f"= {first_update}, the steps collected before the first update"
        )
    if t.envs > 1 and r.capacity // t.envs < r.seq_len:  # each env keeps its own replay stream
        errors.append(
            f"replay.capacity ({r.capacity}) split over train.envs ({t.envs}) streams must leave "
            f"each >= replay.seq_len ({r.seq_len})"
        )
    if r.priority_frac + r.recency_frac > 1:
        errors.append(
            f"replay.priority_frac ({r.priority_frac}) + replay.recency_frac ({r.recency_frac}) "
            "must be <= 1: the rest of each batch is drawn uniformly"
        )
    if ac.min_std > ac.max_std:
        errors.append(
            f"actor_critic.min_std ({ac.min_std}) must be <= actor_critic.max_std ({ac.max_std})"
        )
    if ac.replay_critic_grad and ac.replay_critic_scale == 0:
        errors.append("actor_critic.replay_critic_grad needs actor_critic.replay_critic_scale > 0")
    if ac.replay_critic_grad and ac.actor_grad == "dynamics":  # 'auto': the agent checks
        errors.append(REPLAY_GRAD_NEEDS_REINFORCE)
    if c.world_model.cont_target == "discounted" and ac.imag_cont != "prob":
        errors.append(
            "world_model.cont_target 'discounted' needs actor_critic.imag_cont 'prob' (the "
            "head's output is the discount itself)"
        )
    cnn, size = c.world_model.cnn, c.env.image_size
    if cnn.kernel % 2:
        errors.append(f"world_model.cnn.kernel ({cnn.kernel}) must be even")
    stages = math.log2(size / cnn.minres)  # stride-2 convs from image_size down to minres
    if size <= cnn.minres or not stages.is_integer():
        errors.append(
            f"env.image_size ({size}) must be world_model.cnn.minres ({cnn.minres}) times a "
            "power of two >= 2"
        )
    if ac.retnorm_low >= ac.retnorm_high:
        errors.append(
            f"actor_critic.retnorm_low ({ac.retnorm_low}) must be < actor_critic.retnorm_high "
            f"({ac.retnorm_high})"
        )
    return errors


def check_value(key: str, value: Any) -> Any:
    """`value` for the leaf field `key` if its type and range fit, else ConfigError naming both.
    A whole float for an int field (1e5 on the command line) becomes an int."""
    kind, optional = _base_type(key)
    choices = typing.get_args(kind) if typing.get_origin(kind) is Literal else ()
    if value is None and optional:
        return None
    ok = True
    if kind is bool:
        ok = isinstance(value, bool)
    elif choices:
        ok = value in choices and isinstance(value, str)
    elif isinstance(value, bool) or not isinstance(value, int | float):
        ok = False  # JSON true/false and strings are no numbers
    elif kind is int:
        ok = float(value).is_integer()
        value = int(value) if ok else value
    elif kind is float:
        ok = math.isfinite(value)
    if ok and not choices and kind is not bool:
        low, high, low_open, high_open = _interval(LIMITS[key])
        ok = (value > low if low_open else value >= low) and (
            value < high if high_open else value <= high
        )
    if not ok:
        raise ConfigError(f"{key} must be {_describe(key)}, got {value!r}")
    return value


def _describe(key: str) -> str:
    """What `key` accepts, in words: 'an integer >= 1', 'a number in (0, 1]', 'one of ...'."""
    kind, optional = _base_type(key)
    if typing.get_origin(kind) is Literal:
        return "one of " + ", ".join(repr(c) for c in typing.get_args(kind))
    if kind is bool:
        return "true or false"
    noun = "an integer" if kind is int else "a number"
    text = LIMITS[key]
    low, high, low_open, _ = _interval(text)
    if math.isinf(low) and math.isinf(high):
        text = f"{noun} (finite)"
    elif math.isinf(high):
        text = f"{noun} {'>' if low_open else '>='} {low:g}"
    else:
        text = f"{noun} in {text}"
    return text + (" or null" if optional else "")


def _base_type(key: str) -> tuple[Any, bool]:
    """The annotated type of `key` without None, and whether None is allowed."""
    kind = _leaf_types()[key]
    args = typing.get_args(kind)
    if typing.get_origin(kind) is not Literal and type(None) in args:
        return next(a for a in args if a is not type(None)), True
    return kind, False


def _interval(text: str) -> tuple[float, float, bool, bool]:
    low, high = (float(x) for x in text[1:-1].split(","))
    return low, high, text[0] == "(", text[-1] == ")"


def leaf_keys(cls: type | None = None, prefix: str = "") -> dict[str, Any]:
    """Every leaf field of a config dataclass (default DreamerConfig) -> its annotated type."""
    out = {}
    for name, kind in _hints(cls or DreamerConfig).items():
        if dataclasses.is_dataclass(kind):
            out.update(leaf_keys(kind, f"{prefix}{name}."))
        else:
            out[prefix + name] = kind
    return out


def leaf_values(config: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted key -> value for every leaf field of a config instance."""
    out = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            out.update(leaf_values(value, f"{prefix}{f.name}."))
        else:
            out[prefix + f.name] = value
    return out


def _unknown_key_message(key: str) -> str:
    """'unknown config key ...' naming the closest valid key (difflib), or what there is."""
    keys = list(_leaf_types())
    *path, last = key.split(".")
    cls: Any = DreamerConfig
    for part in path:  # the section the key names, if it exists
        cls = _hints(cls).get(part) if cls is not None else None
        cls = cls if dataclasses.is_dataclass(cls) else None
    # right field, other section: 'train.seq_len' -> 'replay.seq_len', 'steps' -> 'train.steps'
    guess = [k for k in keys if k.rpartition(".")[2] == last]
    if not guess and cls is None:  # the section is wrong too: match the whole key
        guess = difflib.get_close_matches(key, keys, n=1, cutoff=0.6)
    elif not guess:
        names = difflib.get_close_matches(last, list(_hints(cls)), n=1, cutoff=0.6)
        guess = [".".join([*path, names[0]])] if names else []
    if guess:
        return f"unknown config key '{key}'; did you mean '{guess[0]}'?"
    if cls is None or cls is DreamerConfig:
        sections = ", ".join(_hints(DreamerConfig))
        return f"unknown config key '{key}'; keys start with one of: {sections}"
    return f"unknown config key '{key}'; {'.'.join(path)} has: {', '.join(_hints(cls))}"


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


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


_LEAF_TYPES: dict[str, Any] = {}


def _leaf_types() -> dict[str, Any]:
    if not _LEAF_TYPES:  # built once: get_type_hints evaluates the annotations
        _LEAF_TYPES.update(leaf_keys())
    return _LEAF_TYPES
