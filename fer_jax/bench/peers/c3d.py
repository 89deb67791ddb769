"""PyTorch peer of `fer_jax.models.msff.C3D` ("msff_c3d"; a benchmark aid, not part of training).

The same network: blocks of Conv3d(3x3x3, pad 1, ReLU), each block followed by max pooling with
window = stride and 'SAME' padding (ceil mode where the padding falls at the end only, as it does
for windows of 2), flatten, fc layers with ReLU (dropout before each but the first), dropout, dense.
`channels_last_3d` storage, as for the other 3D peers.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fer_jax.bench.peers import weights


def _same_pads(size: int, window: int) -> tuple[int, int]:
    """(before, after) padding of XLA's 'SAME' for a pooling window that is also its stride."""
    total = max((-(-size // window) - 1) * window + window - size, 0)
    return total // 2, total - total // 2


def max_pool_same(x: torch.Tensor, window: tuple[int, ...]) -> torch.Tensor:
    """flax's max_pool(x, window, strides=window, padding="SAME") on (B, C, *dims)."""
    pads = [_same_pads(d, k) for d, k in zip(x.shape[2:], window)]
    if all(before == 0 for before, _ in pads):
        # Padding at the end only (by less than a window): exactly torch's ceil mode.
        return F.max_pool3d(x, window, ceil_mode=True)
    flat = [p for before_after in reversed(pads) for p in before_after]  # F.pad wants the last dim first
    return F.max_pool3d(F.pad(x, flat, value=float("-inf")), window)


class C3D(nn.Module):
    """inputs["frames"] (B, T, H, W, C) float in [0, 1] -> logits (B, num_classes); the arguments
    are those of fer_jax.models.msff.C3D (`peers.build_peer` fills in its defaults)."""

    input_keys = ("frames",)
    memory_format = torch.channels_last_3d

    def __init__(
        self,
        num_classes: int,
        *,
        in_channels: int,
        frames: int,
        size: int,
        conv_blocks: Sequence[Sequence[int]],
        pool_windows: Sequence[Sequence[int]],
        fc_features: Sequence[int],
        dropout: float,
    ):
        super().__init__()
        self.pool_windows = [tuple(int(p) for p in w) for w in pool_windows]
        self.blocks = nn.ModuleList()
        c = in_channels
        for block in conv_blocks:
            convs = nn.ModuleList()
            for c_out in block:
                convs.append(nn.Conv3d(c, c_out, 3, padding=1))
                c = c_out
            self.blocks.append(convs)
        t, h, w = frames, size, size
        for pt, ph, pw in self.pool_windows:
            t, h, w = -(-t // pt), -(-h // ph), -(-w // pw)
        self.map_shape = (t, h, w, c)  # the last pooled map, channels last
        self.fcs = nn.ModuleList()
        width = t * h * w * c
        for features in fc_features:
            self.fcs.append(nn.Linear(width, features))
            width = features
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(width, num_classes)

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        x = inputs["frames"].permute(0, 4, 1, 2, 3).contiguous(memory_format=self.memory_format)
        for convs, window in zip(self.blocks, self.pool_windows):
            for conv in convs:
                x = F.relu(conv(x))
            x = max_pool_same(x, window)
        x = x.flatten(1)
        for i, fc in enumerate(self.fcs):
            x = F.relu(fc(self.dropout(x) if i > 0 else x))
        return self.head(self.dropout(x))


def copy_weights(jax_model, torch_model: C3D) -> None:
    """Our C3D's weights into the peer; fc6 reads (t, h, w, c) on our side, (c, t, h, w) here."""
    fixes = {}
    if len(torch_model.fcs):
        fixes["fcs.0.weight"] = lambda w: weights.channels_first_columns(w, torch_model.map_shape)
    else:
        fixes["head.weight"] = lambda w: weights.channels_first_columns(w, torch_model.map_shape)
    weights.copy_weights(jax_model, torch_model, fixes=fixes)


PEERS = {"msff_c3d": (C3D, copy_weights)}
