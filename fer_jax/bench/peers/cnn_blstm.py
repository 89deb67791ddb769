"""PyTorch peer of `fer_jax.models.msff.CnnBlstm` ("msff_cnn_blstm"; a benchmark aid).

The same network: a per-frame 2D backbone (ResNet-18 by default) on all B*T frames at once ->
`nn.LSTM(bidirectional=True)` (cuDNN's fused kernel on GPU, as ours uses there) -> mean over time
(or both directions' last state) -> dropout -> dense. `channels_last` storage for the backbone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from fer_jax.bench.peers import weights
from fer_jax.bench.peers.backbones import build_backbone, frames_to_images
from fer_jax.errors import ConfigError
from fer_jax.models.msff import POOLINGS


class CnnBlstm(nn.Module):
    """inputs["frames"] (B, T, H, W, C) float in [0, 1] -> logits (B, num_classes); the arguments
    are those of fer_jax.models.msff.CnnBlstm (`peers.build_peer` fills in its defaults), without
    use_frame_mask."""

    input_keys = ("frames",)
    memory_format = torch.channels_last

    def __init__(
        self,
        num_classes: int,
        *,
        backbone: str,
        backbone_options: Mapping[str, Any] | None,
        in_channels: int,
        lstm_hidden: int,
        lstm_layers: int,
        pooling: str,
        dropout: float,
    ):
        super().__init__()
        if pooling not in POOLINGS:
            raise ConfigError(f"torch peer of msff_cnn_blstm: pooling must be one of {POOLINGS}, got {pooling!r}")
        self.pooling = pooling
        self.backbone = build_backbone(backbone, in_channels, **dict(backbone_options or {}))
        self.blstm = nn.LSTM(self.backbone.out_features, lstm_hidden, lstm_layers, batch_first=True,
                             bidirectional=True, dropout=dropout if lstm_layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(2 * lstm_hidden, num_classes)

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        frames = inputs["frames"]
        per_frame = self.backbone(frames_to_images(frames, self.memory_format)).reshape(*frames.shape[:2], -1)
        outputs, (h_n, _) = self.blstm(per_frame)
        pooled = outputs.mean(dim=1) if self.pooling == "mean" else torch.cat([h_n[-2], h_n[-1]], dim=-1)
        return self.head(self.dropout(pooled))


def lstm_key(path: tuple[str, ...]) -> str:
    """blstm/layers/k/{forward,backward}_cell/weight_ih -> blstm.weight_ih_l{k}[_reverse]; the rest by name."""
    if len(path) >= 5 and path[-4] == "layers" and path[-2] in ("forward_cell", "backward_cell"):
        suffix = "_reverse" if path[-2] == "backward_cell" else ""
        return ".".join((*path[:-4], f"{path[-1]}_l{path[-3]}{suffix}"))
    return weights.default_key(path)


def copy_weights(jax_model, torch_model: CnnBlstm) -> None:
    weights.copy_weights(jax_model, torch_model, key_of=lstm_key)


PEERS = {"msff_cnn_blstm": (CnnBlstm, copy_weights)}
