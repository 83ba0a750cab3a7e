"""Encoder, decoder, reward/continue heads, actor and critic (paper section "Methods").

Every hidden layer is Linear -> LayerNorm -> SiLU, as in the official code. Vector observations
enter through symlog (paper Eq. 1). The reward head and the critic predict twohot logits whose
output layers start at zero, so their first predictions are 0 and early, noisy gradients
cannot push them to huge values (paper section "Critic learning").

Shapes: `feat` is the model state s_t = [h_t, z_t] of size D + G*K, with any leading dims.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .rssm import State
from .utils import onehot_matmul, sample_onehot, symexp, symlog, unimix_logits


class StateLinear(nn.Linear):
    """nn.Linear that also takes a model state s_t = [h_t, z_t] as a `State`.

    For a State whose z_t carries no gradient (imagination; the actor's and critic's inputs)
    the product with the one-hot z_t is a gather of one weight column per latent
    (`onehot_matmul`), not a product with G*K inputs that are mostly zero: the first layer of
    every head over 32x32 latents does ~5x less work. Same weights, same result.
    """

    def forward(self, x: Tensor | State) -> Tensor:
        if isinstance(x, Tensor):
            return super().forward(x)
        if not x.gatherable:
            return super().forward(x.feat)  # straight-through gradients need the product
        D = x.deter.shape[-1]
        deter_part = F.linear(x.deter, self.weight[:, :D], self.bias)
        return deter_part + onehot_matmul(x.stoch, x.index, self.weight[:, D:])


class MLP(nn.Sequential):
    """`layers` x (Linear -> LayerNorm -> SiLU), then an optional output Linear.

    The input is a Tensor or, for the heads over the model state, a `State` (see StateLinear).
    """

    def __init__(self, in_dim: int, units: int, layers: int, out_dim: int | None = None):
        modules: list[nn.Module] = []
        for i in range(layers):
            linear = StateLinear if i == 0 else nn.Linear
            modules += [
                linear(in_dim if i == 0 else units, units, bias=False),
                nn.LayerNorm(units, eps=1e-3),
                nn.SiLU(),
            ]
        if out_dim is not None:
            out = (nn.Linear if layers else StateLinear)(units if layers else in_dim, out_dim)
            out.output_layer = True  # `init_weights_`: the official uniform init of outputs
            modules.append(out)
        super().__init__(*modules)

    def add_hidden_biases(self) -> MLP:
        """Give each hidden Linear a bias, zero at first (current official code; 2023: none
        before a norm). Without one the first layer sees only its input's direction:
        LayerNorm(W k x) = LayerNorm(W x) for any k > 0 once |W x| dwarfs the norm's eps."""
        for layer in self:  # output layers already have one
            if isinstance(layer, nn.Linear) and layer.bias is None:
                layer.bias = nn.Parameter(layer.weight.new_zeros(layer.out_features))
        return self

    def zero_output(self) -> MLP:
        """Zero the output layer (reward head, critic): first predictions are exactly 0."""
        nn.init.zeros_(self[-1].weight)
        nn.init.zeros_(self[-1].bias)
        self[-1].zero_init = True  # `init_weights_` leaves it at zero (official outscale 0)
        return self


def add_hidden_biases_(module: nn.Module) -> None:
    """`MLP.add_hidden_biases` on every MLP inside `module` (the RSSM's own layers keep none)."""
    for child in module.modules():
        if isinstance(child, MLP):
            child.add_hidden_biases()


WEIGHTED = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)  # the layers `init_weights_` sets


def init_weights_(module: nn.Module, scheme: str = "official") -> nn.Module:
    """Initialise every Linear and conv of `module` in place; 'torch' keeps PyTorch's default.

    'official' (the 2023 official code), with fan = mean(fan_in, fan_out) and zero biases (a
    conv's fans are channels times kernel pixels):
      hidden layers  W ~ TruncNormal(0, s, -2 s, 2 s), s = sqrt(1 / fan) / 0.8796 (the
                     truncation's std correction), so Var[W] = 1 / fan;
      output layers  W ~ Uniform(-sqrt(3 / fan), sqrt(3 / fan)), the same variance (`MLP`,
                     the RSSM and `vision.ConvDecoder` mark them `output_layer`); a layer
                     marked `out_splits = n` holds n outputs side by side (the continuous
                     actor's mean and std) and each part gets its own fan. Layers zeroed by
                     `MLP.zero_output` stay zero.
    """
    if scheme == "torch":
        return module
    if scheme != "official":
        raise ValueError(f"weight_init must be 'official' or 'torch', not {scheme!r}")
    for layer in module.modules():
        if not isinstance(layer, WEIGHTED) or getattr(layer, "zero_init", False):
            continue
        parts = layer.weight.chunk(getattr(layer, "out_splits", 1), dim=0)
        with torch.no_grad():
            for weight in parts:
                # a conv's fans count its kernel pixels too (ConvTranspose2d stores (in, out, k,
                # k): swapped, and only their sum matters); 1 pixel for a Linear
                fan_out, fan_in = weight.shape[:2]
                pixels = weight[0, 0].numel()
                variance = 2.0 / ((fan_in + fan_out) * pixels)
                if getattr(layer, "output_layer", False):
                    limit = math.sqrt(3.0 * variance)
                    weight.uniform_(-limit, limit)
                else:
                    std = math.sqrt(variance) / 0.87962566103423978
                    nn.init.trunc_normal_(weight, 0.0, std, -2.0 * std, 2.0 * std)
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)
    return module


class Encoder(nn.Module):
    """e_t = enc(symlog(x_t)) for vector observations (paper Eq. 1 applied to inputs)."""

    def __init__(self, obs_dim: int, units: int = 256, layers: int = 2):
        super().__init__()
        self.net = MLP(obs_dim, units, layers)
        self.out_dim = units

    def forward(self, obs: Tensor) -> Tensor:
        return self.net(symlog(obs))


class Decoder(nn.Module):
    """x^_t = dec(h_t, z_t), predicting symlog(x_t); loss ||x^_t - symlog(x_t)||^2.

    With `symlog_target=False` it predicts x_t itself: symlog's slope 1 / (1 + |x|) weighs an
    error at |x| = 2.4 (CartPole's track edge) 0.09x one at the centre, a raw target weighs both
    the same (walkthrough, departures table).
    """

    def __init__(
        self,
        feat_dim: int,
        obs_dim: int,
        units: int = 256,
        layers: int = 2,
        symlog_target: bool = True,
    ):
        super().__init__()
        self.net = MLP(feat_dim, units, layers, obs_dim)
        self.symlog_target = symlog_target

    def forward(self, feat: Tensor | State) -> Tensor:
        return self.net(feat)

    def target(self, obs: Tensor) -> Tensor:
        """What the output regresses: symlog(x_t), or x_t for the raw target."""
        return symlog(obs) if self.symlog_target else obs

    def predict(self, feat: Tensor | State) -> Tensor:
        """x^_t in the observation's own units: symexp of the output, or the output itself."""
        out = self(feat).float()
        return symexp(out) if self.symlog_target else out

    def loss(self, feat: Tensor | State, obs: Tensor) -> Tensor:
        """L_dec = ||x^_t - symlog(x_t)||^2, (...) (summed over the O dims)."""
        return (self(feat).float() - self.target(obs)).square().sum(-1)


class RewardHead(nn.Module):
    """Twohot logits over symlog rewards (paper Eq. 9-10); output layer zero-initialised."""

    def __init__(self, feat_dim: int, units: int = 256, layers: int = 2, num_bins: int = 255):
        super().__init__()
        self.net = MLP(feat_dim, units, layers, num_bins).zero_output()

    def forward(self, feat: Tensor | State) -> Tensor:
        return self.net(feat)


class ContinueHead(nn.Module):
    """Bernoulli logit of c_t = 1 - terminated_t (time-limit truncation is not termination)."""

    def __init__(self, feat_dim: int, units: int = 256, layers: int = 2):
        super().__init__()
        self.net = MLP(feat_dim, units, layers, 1)

    def forward(self, feat: Tensor | State) -> Tensor:
        return self.net(feat).squeeze(-1)


class Critic(nn.Module):
    """v(s_t): twohot logits over symlog returns; output layer zero-initialised."""

    def __init__(self, feat_dim: int, units: int = 256, layers: int = 2, num_bins: int = 255):
        super().__init__()
        self.net = MLP(feat_dim, units, layers, num_bins).zero_output()

    def forward(self, feat: Tensor | State) -> Tensor:
        return self.net(feat)


class OneHotDist:
    """Categorical over one-hot actions with a 1% uniform mix (paper: discrete actor)."""

    def __init__(self, logits: Tensor):
        self.logits = logits  # (..., A), already unimixed log-probs

    def sample(self) -> Tensor:
        return sample_onehot(self.logits)

    def mode(self) -> Tensor:
        index = self.logits.argmax(-1, keepdim=True)
        return torch.zeros_like(self.logits).scatter_(-1, index, 1.0)

    def log_prob(self, action: Tensor) -> Tensor:
        return (self.logits * action).sum(-1)

    def entropy(self) -> Tensor:
        return -(self.logits.exp() * self.logits).sum(-1)


class BoundedNormalDist:
    """Normal with mean tanh(m) in [-1, 1] and std in [min_std, max_std] (2023 official).

    Samples are not clipped here: REINFORCE scores the sample that was drawn (scoring a clipped
    one would bias the gradient). The environment's action conversion clips to [-1, 1]
    (`envs.to_env_action`) and the RSSM scales its input action into [-1, 1]
    (`RSSM.clip_action`), as the official code's ClipAction wrapper and action_clip do.
    """

    def __init__(self, mean: Tensor, std: Tensor):
        self.mean, self.std = mean, std  # (..., A)

    def sample(self) -> Tensor:
        """a = mean + std * eps, eps ~ N(0, 1): reparameterised (dynamics backprop)."""
        return self.mean + self.std * torch.randn_like(self.mean)

    def mode(self) -> Tensor:
        return self.mean

    def log_prob(self, action: Tensor) -> Tensor:
        z = (action - self.mean) / self.std
        return (-0.5 * z.square() - self.std.log() - 0.5 * math.log(2 * math.pi)).sum(-1)

    def entropy(self) -> Tensor:
        return (0.5 + 0.5 * math.log(2 * math.pi) + self.std.log()).sum(-1)


class Actor(nn.Module):
    """pi(a_t | s_t): one-hot categorical (unimix) or bounded normal (paper "Actor learning")."""

    def __init__(
        self,
        feat_dim: int,
        action_dim: int,
        discrete: bool,
        units: int = 256,
        layers: int = 2,
        unimix: float = 0.01,
        min_std: float = 0.1,
        max_std: float = 1.0,
    ):
        super().__init__()
        self.discrete, self.unimix = discrete, unimix
        self.min_std, self.max_std = min_std, max_std
        self.net = MLP(feat_dim, units, layers, action_dim if discrete else 2 * action_dim)
        self.net[-1].out_splits = 1 if discrete else 2  # mean and std: two official layers

    def forward(self, feat: Tensor | State) -> OneHotDist | BoundedNormalDist:
        out = self.net(feat)
        if self.discrete:
            return OneHotDist(unimix_logits(out.float(), self.unimix))
        mean, std = out.float().chunk(2, -1)
        # std = (max - min) * sigmoid(s + 2) + min: 0.9 * sigmoid(s + 2) + 0.1 by default
        std = (self.max_std - self.min_std) * torch.sigmoid(std + 2.0) + self.min_std
        return BoundedNormalDist(torch.tanh(mean), std)
