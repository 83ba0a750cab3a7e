"""Image and Dict observations: the CNN encoder, the transposed-CNN decoder, and the
multi-key encoder and decoder that route every observation key (paper "Methods"; the official
code's 2023 image networks with resizing by stride and no residual blocks).

An observation that is not one vector is a dict {batch key: tensor} (`envs.obs_arrays`: 'obs'
for a lone image, 'obs/<name>' per Dict key). A key of shape (H, W, C), uint8, is an image and
goes to the CNN (all image keys stacked along C); a key of shape (N,) is a vector, symlogged
and sent to an MLP. The features are concatenated into one embedding e_t, so the RSSM, heads
and agent see the same (..., E) tensor as for vectors. The decoder predicts every key, each with
its own loss, summed into L_dec:

    images   ||x^ - (x / 255 - 0.5)||^2   summed over H, W, C   (the official 'mse' image loss)
    vectors  ||x^ - symlog(x)||^2         summed over N           (as `networks.Decoder`)

Shapes: images (..., H, W, C) uint8 with any leading dims (B, T) or (N,); inside the convs
(M, C, H, W) float, M = the leading dims flattened; S = `minres`, the side after the encoder.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .config import CNNConfig
from .networks import MLP, StateLinear
from .rssm import State
from .utils import symlog


class ChannelNorm(nn.LayerNorm):
    """LayerNorm over the channels of each pixel of (M, C, H, W) (the official 'layer' norm
    applied to NHWC images)."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def _stages(side: int, minres: int) -> int:
    """Stride-2 stages from `side` down to `minres`: 64 -> 4 is four."""
    stages = math.log2(side / minres)
    if side <= minres or not stages.is_integer():
        raise ValueError(
            f"image side {side} must be minres ({minres}) times a power of two >= 2; "
            "resize images to env.image_size"
        )
    return int(stages)


def _norm_act(channels: int, norm: str) -> list[nn.Module]:
    return [ChannelNorm(channels, eps=1e-3), nn.SiLU()] if norm == "layer" else [nn.SiLU()]


def _image_float(image: Tensor) -> Tensor:
    """uint8 pixels -> x / 255 - 0.5 in [-0.5, 0.5] (the official input scaling)."""
    return image.float() / 255.0 - 0.5


class ConvEncoder(nn.Module):
    """(..., H, W, C) uint8 -> (..., S * S * 8 depth): stride-2 convs, each then norm + SiLU.

    64x64 with depth d: 32x32xd -> 16x16x2d -> 8x8x4d -> 4x4x8d (official 2023 encoder).
    """

    def __init__(self, shape: tuple[int, int, int], config: CNNConfig):
        super().__init__()
        H, W, C = shape
        if H != W:
            raise ValueError(f"image observations must be square, got {H}x{W}")
        c = config
        pad = (c.kernel - 2) // 2  # an even kernel then halves the side exactly
        layers: list[nn.Module] = []
        channels = C
        for i in range(_stages(H, c.minres)):
            out = c.depth * 2**i  # channels double as the side halves
            # no bias before a norm: its shift would be removed again (official: bias iff no norm)
            layers.append(nn.Conv2d(channels, out, c.kernel, 2, pad, bias=c.norm == "none"))
            layers += _norm_act(out, c.norm)
            channels = out
        self.net = nn.Sequential(*layers)
        self.out_dim = channels * c.minres * c.minres

    def forward(self, image: Tensor) -> Tensor:
        lead = image.shape[:-3]
        x = _image_float(image.reshape(-1, *image.shape[-3:]).permute(0, 3, 1, 2))  # (M, C, H, W)
        x = self.net(x)  # (M, 8 depth, S, S)
        return x.reshape(*lead, self.out_dim)


class ConvDecoder(nn.Module):
    """s_t (..., F) -> (..., H, W, C) predictions of x / 255 - 0.5: a Linear to S x S x 8 depth,
    then stride-2 transposed convs, each but the last followed by norm + SiLU (official 2023)."""

    def __init__(self, feat_dim: int, shape: tuple[int, int, int], config: CNNConfig):
        super().__init__()
        H, W, C = shape
        c = config
        stages = _stages(H, c.minres)
        self.shape, self.minres = (H, W, C), c.minres
        self.top = c.depth * 2 ** (stages - 1)  # channels at S x S, the encoder's last
        self.project = StateLinear(feat_dim, self.top * c.minres * c.minres)
        self.project.output_layer = True  # official: a plain Linear, uniform init
        pad = (c.kernel - 2) // 2
        layers: list[nn.Module] = []
        channels = self.top
        for i in range(stages):
            last = i == stages - 1
            out = C if last else channels // 2
            bias = last or c.norm == "none"
            conv = nn.ConvTranspose2d(channels, out, c.kernel, 2, pad, bias=bias)
            layers.append(conv)
            if last:
                conv.output_layer = True  # `init_weights_`: uniform, as the official output conv
            else:
                layers += _norm_act(out, c.norm)
            channels = out
        self.net = nn.Sequential(*layers)

    def forward(self, feat: Tensor | State) -> Tensor:
        x = self.project(feat)  # (..., S * S * top)
        lead = x.shape[:-1]
        x = x.reshape(-1, self.top, self.minres, self.minres)
        x = self.net(x)  # (M, C, H, W)
        return x.permute(0, 2, 3, 1).reshape(*lead, *self.shape)


class MultiEncoder(nn.Module):
    """{key: (..., H, W, C) uint8 or (..., N)} -> e_t (..., E): images through one CNN (stacked
    along C), vectors symlogged through one MLP, the features concatenated."""

    def __init__(self, shapes: dict[str, list[int]], units: int, layers: int, cnn: CNNConfig):
        super().__init__()
        self.image_keys, self.vector_keys, image_shape = split_keys(shapes)
        self.keys = self.image_keys + self.vector_keys
        self.out_dim = 0
        if self.image_keys:
            self.cnn = ConvEncoder(image_shape, cnn)
            self.out_dim += self.cnn.out_dim
        if self.vector_keys:
            self.mlp = MLP(sum(shapes[k][0] for k in self.vector_keys), units, layers)
            self.out_dim += units

    def forward(self, obs: dict[str, Tensor]) -> Tensor:
        features = []
        if self.image_keys:
            features.append(self.cnn(torch.cat([obs[k] for k in self.image_keys], -1)))
        if self.vector_keys:
            vector = torch.cat([obs[k].float() for k in self.vector_keys], -1)  # (..., N)
            features.append(self.mlp(symlog(vector)))
        return torch.cat(features, -1)  # (..., E)


class MultiDecoder(nn.Module):
    """s_t -> a prediction of every key; `loss` gives L_dec, the sum of the keys' losses."""

    def __init__(
        self, feat_dim: int, shapes: dict[str, list[int]], units: int, layers: int, cnn: CNNConfig
    ):
        super().__init__()
        self.image_keys, self.vector_keys, image_shape = split_keys(shapes)
        self.channels = [shapes[k][-1] for k in self.image_keys]
        self.sizes = [shapes[k][0] for k in self.vector_keys]
        if self.image_keys:
            self.cnn = ConvDecoder(feat_dim, image_shape, cnn)
        if self.vector_keys:
            self.mlp = MLP(feat_dim, units, layers, sum(self.sizes))

    def forward(self, feat: Tensor | State) -> dict[str, Tensor]:
        """{key: prediction}: images as x / 255 - 0.5, vectors as symlog(x)."""
        out = {}
        if self.image_keys:
            images = self.cnn(feat).split(self.channels, -1)  # (..., H, W, C_k) each
            out.update(zip(self.image_keys, images, strict=True))
        if self.vector_keys:
            vectors = self.mlp(feat).split(self.sizes, -1)  # (..., N_k) each
            out.update(zip(self.vector_keys, vectors, strict=True))
        return out

    def key_losses(self, feat: Tensor | State, obs: dict[str, Tensor]) -> dict[str, Tensor]:
        """Each key's loss, (...): squared error summed over the key's dims."""
        losses = {}
        for key, pred in self(feat).items():
            if key in self.image_keys:
                # ||x^ - (x / 255 - 0.5)||^2 over H, W, C
                losses[key] = (pred.float() - _image_float(obs[key])).square().sum((-3, -2, -1))
            else:
                # ||x^ - symlog(x)||^2 over N
                losses[key] = (pred.float() - symlog(obs[key].float())).square().sum(-1)
        return losses

    def loss(self, feat: Tensor | State, obs: dict[str, Tensor]) -> Tensor:
        """L_dec = sum over keys of their losses (official: image and vector scales 1)."""
        return sum(self.key_losses(feat, obs).values())


def split_keys(shapes: dict[str, list[int]]) -> tuple[list[str], list[str], tuple | None]:
    """(image keys, vector keys, the stacked image shape (H, W, sum of C) or None)."""
    image_keys = [k for k, s in shapes.items() if len(s) == 3]
    vector_keys = [k for k, s in shapes.items() if len(s) == 1]
    if not image_keys:
        return image_keys, vector_keys, None
    sides = {tuple(shapes[k][:2]) for k in image_keys}
    if len(sides) > 1:
        raise ValueError(f"image keys must share one size to stack, got {sorted(sides)}")
    (H, W), C = sides.pop(), sum(shapes[k][2] for k in image_keys)
    return image_keys, vector_keys, (H, W, C)


def observations_to_torch(
    obs: dict, shapes: dict[str, list[int]], device: torch.device
) -> dict[str, Tensor]:
    """Acting: {key: array} of one or N envs -> {key: (N, *shape)}; images stay uint8 (the
    encoder scales them), vectors become float32."""
    out = {}
    for key, shape in shapes.items():
        value = torch.as_tensor(obs[key], device=device)
        if value.dtype != torch.uint8:
            value = value.float()
        out[key] = value.reshape(-1, *shape)
    return out
