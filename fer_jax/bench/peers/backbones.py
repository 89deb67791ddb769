"""PyTorch peers of the per-frame 2D backbones of `fer_jax.models.backbones` (a benchmark aid).

torchvision's ResNet-18/-50 and a VGG-style stack, written out in plain torch.nn (torchvision is
not a dependency) and named like our modules, so `weights.copy_weights` maps them by name; the
module names are torchvision's for the ResNets. Images are (N, C, H, W); the output is the global
average of the last feature map, (N, out_features).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fer_jax.errors import ConfigError
from fer_jax.models.backbones import BACKBONE_OPTIONS, VGG16_BLOCKS, scaled_width


def _conv(c_in, c_out, k, stride=1, bias=False):
    return nn.Conv2d(c_in, c_out, k, stride, padding=k // 2, bias=bias)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, c_in, planes, stride):
        super().__init__()
        self.conv1, self.bn1 = _conv(c_in, planes, 3, stride), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = _conv(planes, planes, 3), nn.BatchNorm2d(planes)
        self.downsample = _downsample(c_in, planes, stride)

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, c_in, planes, stride):
        super().__init__()
        self.conv1, self.bn1 = _conv(c_in, planes, 1), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = _conv(planes, planes, 3, stride), nn.BatchNorm2d(planes)
        self.conv3, self.bn3 = _conv(planes, planes * 4, 1), nn.BatchNorm2d(planes * 4)
        self.downsample = _downsample(c_in, planes * 4, stride)

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn3(self.conv3(F.relu(self.bn2(self.conv2(y)))))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


def _downsample(c_in, c_out, stride):
    if stride == 1 and c_in == c_out:
        return None
    return nn.Sequential(_conv(c_in, c_out, 1, stride), nn.BatchNorm2d(c_out))


class ResNet(nn.Module):
    def __init__(self, in_channels=3, *, block="basic", layers=(2, 2, 2, 2), width=1.0):
        super().__init__()
        block_cls = {"basic": BasicBlock, "bottleneck": Bottleneck}[block]
        stem = scaled_width(64, width)
        self.conv1, self.bn1 = _conv(in_channels, stem, 7, 2), nn.BatchNorm2d(stem)
        c = stem
        for stage, (planes, count) in enumerate(zip((64, 128, 256, 512), layers)):
            planes = scaled_width(planes, width)
            blocks = []
            for i in range(count):
                blocks.append(block_cls(c, planes, 2 if stage > 0 and i == 0 else 1))
                c = planes * block_cls.expansion
            setattr(self, f"layer{stage + 1}", nn.Sequential(*blocks))
        self.out_features = c

    def feature_map(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, padding=1)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x):
        return self.feature_map(x).mean(dim=(2, 3))


class ConvBlockLayer(nn.Module):
    def __init__(self, c_in, c_out, batch_norm):
        super().__init__()
        self.conv = _conv(c_in, c_out, 3, bias=True)
        self.bn = nn.BatchNorm2d(c_out) if batch_norm else None

    def forward(self, x):
        x = self.conv(x)
        return F.relu(self.bn(x) if self.bn is not None else x)


class VGG(nn.Module):
    """Pooling windows are also strides, 'valid' (floor), as ours."""

    def __init__(self, in_channels=3, *, blocks: Sequence[Sequence[int]] = VGG16_BLOCKS, batch_norm=False,
                 pool_windows=None, width=1.0):
        super().__init__()
        self.pool_windows = [tuple(int(p) for p in w) for w in (pool_windows or [(2, 2)] * len(blocks))]
        self.blocks = nn.ModuleList()
        c = in_channels
        for block in blocks:
            layers = nn.ModuleList()
            for c_out in block:
                layers.append(ConvBlockLayer(c, scaled_width(c_out, width), batch_norm))
                c = scaled_width(c_out, width)
            self.blocks.append(layers)
        self.out_features = c

    def feature_map(self, x):
        for layers, window in zip(self.blocks, self.pool_windows):
            for layer in layers:
                x = layer(x)
            x = F.max_pool2d(x, window)
        return x

    def forward(self, x):
        return self.feature_map(x).mean(dim=(2, 3))


def build_backbone(name: str, in_channels: int, **options) -> nn.Module:
    """The peer of fer_jax.models.backbones.build_backbone(name, in_channels, **options)."""
    if name not in BACKBONE_OPTIONS:
        raise ConfigError(f"torch peer: unknown backbone {name!r}; known: {', '.join(sorted(BACKBONE_OPTIONS))}")
    unknown = sorted(set(options) - BACKBONE_OPTIONS[name] - {"dtype"})
    if unknown:
        raise ConfigError(f"torch peer: backbone {name!r} does not take {', '.join(unknown)}")
    options.pop("dtype", None)  # the precision decides the compute dtype (autocast)
    if name == "vgg":
        return VGG(in_channels, **options)
    if name == "resnet18":
        return ResNet(in_channels, block="basic", layers=(2, 2, 2, 2), **options)
    return ResNet(in_channels, block="bottleneck", layers=(3, 4, 6, 3), **options)


def frames_to_images(frames: torch.Tensor, memory_format) -> torch.Tensor:
    """(B, T, H, W, C) -> (B*T, C, H, W); the permute is already channels_last storage."""
    b, t = frames.shape[:2]
    return frames.reshape(b * t, *frames.shape[2:]).permute(0, 3, 1, 2).contiguous(memory_format=memory_format)
