"""Per-frame 2D backbones (VGG-style, ResNet-18, ResNet-50) laid out for torchvision weights.

A backbone maps images (N, H, W, C) to features (N, out_features) by global average pooling of its
last feature map; `feature_map` gives that map (N, h, w, out_features) for models (e.g. audio on a
spectrogram) that keep one axis. `apply_per_frame` runs it on every frame of a clip at once.

Importing torchvision weights (`tests/test_backbones.py` loads a torch model this way and matches
its outputs). State paths are torch's names with '.' -> '/', and:
    Conv:      kernel (kh, kw, in, out) = torch weight (out, in, kh, kw).transpose(2, 3, 1, 0)
               bias = bias (VGG only; ResNet convs have none)
    BatchNorm: scale = weight, bias = bias, mean = running_mean, var = running_var
               (num_batches_tracked has no counterpart; momentum 0.9 here is torch's 0.1)
    ResNet:    conv1, bn1, layer{1..4}/{i}/{conv,bn}{1,2,3}, layer{l}/{i}/downsample/{0,1}: the same
               names as torchvision. Its `fc` is not part of the backbone.
    VGG:       blocks/{b}/{j}/conv and .../bn are torchvision's `features.{index}`, with the
               indices from `vgg_torch_indices`. Its `classifier` is not part of the backbone.
Known difference: torch updates running_var with the unbiased batch variance, flax with the biased
one; the two agree in evaluation and differ by a factor n/(n-1) in the running statistic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from fer_jax.errors import ConfigError
from fer_jax.models import layers

VGG16_BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))

# torchvision's conv init (kaiming_normal_, mode="fan_out", ReLU gain), so training from scratch
# starts where torchvision's does.
_KAIMING_FAN_OUT = nnx.initializers.variance_scaling(2.0, "fan_out", "normal")


def scaled_width(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))


def _conv(c_in, c_out, k, stride=1, *, padding, use_bias=False, dtype, rngs) -> layers.Conv:
    # Explicit symmetric padding as torch pads: "SAME" would pad a stride-2 conv on an even input
    # only at the end, shifting every later feature by half a pixel against imported weights.
    return layers.Conv(
        c_in, c_out, (k, k), strides=stride, padding=((padding, padding), (padding, padding)),
        use_bias=use_bias, kernel_init=_KAIMING_FAN_OUT, dtype=dtype, rngs=rngs,
    )


def batch_norm_layer(channels, *, dtype, rngs) -> nnx.BatchNorm:
    # Starts in training mode (batch statistics); model.eval() switches every BatchNorm to its
    # running averages (use_running_average=True) and model.train() back, as for nnx.Dropout.
    # Two-pass variance: E[x²] - E[x]² cancels badly when few values share a channel (a late stage
    # at batch 2), where torch's two-pass result and ours then drift apart by 1e-3.
    return nnx.BatchNorm(
        channels, momentum=0.9, epsilon=1e-5, use_fast_variance=False, dtype=dtype, rngs=rngs
    )


def _check_images(module, x: jax.Array) -> None:
    if x.ndim != 4 or x.shape[-1] != module.in_channels:
        raise ConfigError(
            f"{type(module).__name__} expects images (N, H, W, {module.in_channels}), got shape {x.shape}."
        )


def _global_average(x: jax.Array) -> jax.Array:
    return x.mean(axis=(1, 2))


class ConvBlockLayer(nnx.Module):
    """conv 3x3 (stride 1, pad 1, bias) -> [BatchNorm] -> ReLU: one entry of a VGG block."""

    def __init__(self, c_in, c_out, *, batch_norm: bool, dtype, rngs):
        self.conv = _conv(c_in, c_out, 3, padding=1, use_bias=True, dtype=dtype, rngs=rngs)
        self.bn = batch_norm_layer(c_out, dtype=dtype, rngs=rngs) if batch_norm else None

    def __call__(self, x):
        x = self.conv(x)
        return nnx.relu(self.bn(x) if self.bn is not None else x)


class VGG(nnx.Module):
    """VGG-style CNN: blocks of 3x3 conv layers, each block followed by max pooling.

    blocks: output channels per conv, per block (default VGG-16's, before `width` scaling).
    pool_windows: one (ph, pw) window per block, also its stride, 'valid' (torch's floor mode);
      default (2, 2) everywhere. A spectrogram model can pool frequency harder than time.
    (N, H, W, C) -> (N, out_features); feature_map (N, H / Πph, W / Πpw, out_features).
    """

    def __init__(
        self,
        in_channels: int = 3,
        *,
        blocks: Sequence[Sequence[int]] = VGG16_BLOCKS,
        batch_norm: bool = False,
        pool_windows: Sequence[Sequence[int]] | None = None,
        width: float = 1.0,
        dtype: jnp.dtype = jnp.float32,
        rngs: nnx.Rngs,
    ):
        if not blocks or not all(blocks):
            raise ConfigError(f"VGG: blocks must be non-empty lists of channels, got {blocks!r}.")
        pool_windows = ((2, 2),) * len(blocks) if pool_windows is None else pool_windows
        if len(pool_windows) != len(blocks):
            raise ConfigError(
                f"VGG: {len(blocks)} blocks need {len(blocks)} pool_windows, got {len(pool_windows)}."
            )
        self.in_channels = in_channels
        self.pool_windows = tuple(tuple(int(p) for p in w) for w in pool_windows)
        self.block_channels = tuple(tuple(scaled_width(c, width) for c in block) for block in blocks)
        self.blocks = nnx.List()
        c_in = in_channels
        for block in self.block_channels:
            layers = nnx.List()
            for c_out in block:
                layers.append(ConvBlockLayer(c_in, c_out, batch_norm=batch_norm, dtype=dtype, rngs=rngs))
                c_in = c_out
            self.blocks.append(layers)
        self.batch_norm = batch_norm
        self.out_features = c_in

    def feature_map(self, x: jax.Array) -> jax.Array:
        _check_images(self, x)
        for layers, window in zip(self.blocks, self.pool_windows):
            for layer in layers:
                x = layer(x)
            x = nnx.max_pool(x, window, strides=window, padding="VALID")
        return x

    def __call__(self, x: jax.Array) -> jax.Array:
        return _global_average(self.feature_map(x))


def vgg_torch_indices(
    blocks: Sequence[Sequence[Any]], batch_norm: bool
) -> list[list[tuple[int, int | None]]]:
    """(conv index, BatchNorm index or None) in torchvision's `features` Sequential, per block and
    layer: it numbers every conv, BatchNorm, ReLU and one max-pool per block."""
    indices, i = [], 0
    for block in blocks:
        layers = []
        for _ in block:
            layers.append((i, i + 1 if batch_norm else None))
            i += 3 if batch_norm else 2
        indices.append(layers)
        i += 1  # the block's max-pool
    return indices


class BasicBlock(nnx.Module):
    """torchvision's BasicBlock: 3x3 (stride) -> BN -> ReLU -> 3x3 -> BN, + shortcut, ReLU."""

    expansion = 1

    def __init__(self, c_in, planes, stride, *, dtype, rngs):
        self.conv1 = _conv(c_in, planes, 3, stride, padding=1, dtype=dtype, rngs=rngs)
        self.bn1 = batch_norm_layer(planes, dtype=dtype, rngs=rngs)
        self.conv2 = _conv(planes, planes, 3, padding=1, dtype=dtype, rngs=rngs)
        self.bn2 = batch_norm_layer(planes, dtype=dtype, rngs=rngs)
        self.downsample = _downsample(c_in, planes * self.expansion, stride, dtype=dtype, rngs=rngs)

    def __call__(self, x):
        y = nnx.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return nnx.relu(y + _shortcut(self.downsample, x))


class Bottleneck(nnx.Module):
    """torchvision's Bottleneck (v1.5: the stride sits on the 3x3 conv): 1x1 -> 3x3 -> 1x1 (x4)."""

    expansion = 4

    def __init__(self, c_in, planes, stride, *, dtype, rngs):
        self.conv1 = _conv(c_in, planes, 1, padding=0, dtype=dtype, rngs=rngs)
        self.bn1 = batch_norm_layer(planes, dtype=dtype, rngs=rngs)
        self.conv2 = _conv(planes, planes, 3, stride, padding=1, dtype=dtype, rngs=rngs)
        self.bn2 = batch_norm_layer(planes, dtype=dtype, rngs=rngs)
        self.conv3 = _conv(planes, planes * self.expansion, 1, padding=0, dtype=dtype, rngs=rngs)
        self.bn3 = batch_norm_layer(planes * self.expansion, dtype=dtype, rngs=rngs)
        self.downsample = _downsample(c_in, planes * self.expansion, stride, dtype=dtype, rngs=rngs)

    def __call__(self, x):
        y = nnx.relu(self.bn1(self.conv1(x)))
        y = nnx.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return nnx.relu(y + _shortcut(self.downsample, x))


def _downsample(c_in, c_out, stride, *, dtype, rngs):
    # A list, so its entries are named 0 (conv) and 1 (BN) like torchvision's nn.Sequential.
    if stride == 1 and c_in == c_out:
        return None
    return nnx.List([
        _conv(c_in, c_out, 1, stride, padding=0, dtype=dtype, rngs=rngs),
        batch_norm_layer(c_out, dtype=dtype, rngs=rngs),
    ])


def _shortcut(downsample, x):
    if downsample is None:
        return x
    conv, bn = downsample
    return bn(conv(x))


_RESNET_BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}


class ResNet(nnx.Module):
    """torchvision's ResNet without its classifier: (N, H, W, C) -> (N, out_features).

    Stem: 7x7 conv stride 2 -> BN -> ReLU -> 3x3 max-pool stride 2; then 4 stages of `layers[s]`
    blocks with 64, 128, 256, 512 planes (x `width`), the first block of stages 2-4 striding by 2.
    out_features = 512 * width (basic) or 2048 * width (bottleneck); feature_map is H/32 x W/32.
    """

    def __init__(
        self,
        in_channels: int = 3,
        *,
        block: str = "basic",
        layers: Sequence[int] = (2, 2, 2, 2),
        width: float = 1.0,
        dtype: jnp.dtype = jnp.float32,
        rngs: nnx.Rngs,
    ):
        if block not in _RESNET_BLOCKS:
            raise ConfigError(f"ResNet: block must be one of {sorted(_RESNET_BLOCKS)}, got {block!r}.")
        if len(layers) != 4 or min(layers) < 1:
            raise ConfigError(f"ResNet: layers must be 4 positive block counts, got {layers!r}.")
        block_cls = _RESNET_BLOCKS[block]
        self.in_channels = in_channels
        stem = scaled_width(64, width)
        self.conv1 = _conv(in_channels, stem, 7, 2, padding=3, dtype=dtype, rngs=rngs)
        self.bn1 = batch_norm_layer(stem, dtype=dtype, rngs=rngs)
        c_in = stem
        for stage, (planes, count) in enumerate(zip((64, 128, 256, 512), layers)):
            planes = scaled_width(planes, width)
            blocks = nnx.List()
            for i in range(count):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(block_cls(c_in, planes, stride, dtype=dtype, rngs=rngs))
                c_in = planes * block_cls.expansion
            setattr(self, f"layer{stage + 1}", blocks)
        self.out_features = c_in

    def feature_map(self, x: jax.Array) -> jax.Array:
        _check_images(self, x)
        x = nnx.relu(self.bn1(self.conv1(x)))
        # Pads with -inf (reduce_window's max identity), as torch's MaxPool2d(3, 2, padding=1).
        x = nnx.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            for block in stage:
                x = block(x)
        return x

    def __call__(self, x: jax.Array) -> jax.Array:
        return _global_average(self.feature_map(x))


BACKBONES = {
    "vgg": lambda in_channels, **kw: VGG(in_channels, **kw),
    "resnet18": lambda in_channels, **kw: ResNet(in_channels, block="basic", layers=(2, 2, 2, 2), **kw),
    "resnet50": lambda in_channels, **kw: ResNet(in_channels, block="bottleneck", layers=(3, 4, 6, 3), **kw),
}


BACKBONE_OPTIONS = {
    "vgg": {"blocks", "batch_norm", "pool_windows", "width", "dtype"},
    "resnet18": {"width", "dtype"},
    "resnet50": {"width", "dtype"},
}


def build_backbone(name: str, in_channels: int = 3, *, rngs: nnx.Rngs, **kwargs: Any) -> nnx.Module:
    """`name` in BACKBONES; kwargs: width, dtype, and for "vgg" blocks / batch_norm / pool_windows."""
    if name not in BACKBONES:
        raise ConfigError(f"Unknown backbone {name!r}. Known backbones: {', '.join(sorted(BACKBONES))}.")
    unknown = sorted(set(kwargs) - BACKBONE_OPTIONS[name])
    if unknown:
        raise ConfigError(
            f"Backbone {name!r} does not take {', '.join(unknown)}. "
            f"Its options are: {', '.join(sorted(BACKBONE_OPTIONS[name]))}."
        )
    return BACKBONES[name](in_channels, rngs=rngs, **kwargs)


def apply_per_frame(backbone: nnx.Module, frames: jax.Array) -> jax.Array:
    """frames (B, T, H, W, C) -> (B, T, out_features): one backbone call on all B*T frames, which
    keeps the accelerator busy with one large convolution instead of T small ones."""
    b, t = frames.shape[:2]
    features = backbone(frames.reshape(b * t, *frames.shape[2:]))
    return features.reshape(b, t, -1)
