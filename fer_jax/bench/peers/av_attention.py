"""PyTorch peer of `fer_jax.models.av_attention.AvAttentionFbp` ("av_attention_fbp"; a benchmark aid).

The same network: a per-frame 2D backbone (VGG-style by default) -> frame attention (self,
relation or low-rank transformer) -> video vector; a VGG-style CNN on the log-mel spectrogram
with its deltas (3 channels over the (time, mel) plane) -> audio vector; factorized bilinear
pooling of [audio, video] -> signed square root -> l2 normalisation -> dropout -> dense. Only the
"fbp" fusion has a peer. `channels_last` storage for both CNNs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fer_jax.bench.peers import weights
from fer_jax.bench.peers.backbones import VGG, build_backbone, frames_to_images
from fer_jax.errors import ConfigError
from fer_jax.models.av_attention import AGGREGATIONS, FRAME_BLOCKS


def _weighted_mean(w: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    return torch.einsum("bt,btd->bd", w, values) / w.sum(dim=1, keepdim=True).clamp_min(1e-12)


class SelfAttentionPool(nn.Module):
    def __init__(self, dim, dropout):
        super().__init__()
        self.dropout, self.score = nn.Dropout(dropout), nn.Linear(dim, 1)

    def forward(self, f):
        alpha = torch.sigmoid(self.score(self.dropout(f))[..., 0].float())
        return _weighted_mean(alpha, f.float()), alpha


class _FirstOutput(nn.Module):  # named like ours: aggregate.pool.score
    def __init__(self, pool):
        super().__init__()
        self.pool = pool

    def forward(self, f):
        return self.pool(f)[0]


class RelationAttentionPool(nn.Module):
    def __init__(self, dim, dropout):
        super().__init__()
        self.self_attention = SelfAttentionPool(dim, dropout)
        self.dropout, self.score = nn.Dropout(dropout), nn.Linear(2 * dim, 1)

    def forward(self, f):
        v, alpha = self.self_attention(f)
        joined = torch.cat([f.float(), v[:, None].expand(f.shape)], dim=-1)
        beta = torch.sigmoid(self.score(self.dropout(joined))[..., 0].float())
        return _weighted_mean(alpha * beta, joined)


class TransformerAttentionPool(nn.Module):
    def __init__(self, dim, rank, dropout):
        super().__init__()
        self.rank, self.dropout = rank, nn.Dropout(dropout)
        self.query, self.key = nn.Linear(dim, rank, bias=False), nn.Linear(dim, rank, bias=False)

    def forward(self, f):
        dropped = self.dropout(f)
        q, k = self.query(dropped).float(), self.key(dropped).float()
        attention = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(self.rank), dim=-1)
        return (attention @ f.float()).mean(dim=1)


class FactorizedBilinearPooling(nn.Module):
    def __init__(self, in_dims, num_classes, *, factor=5, out_dim=1000, dropout=0.1, eps=1e-12):
        super().__init__()
        self.factor, self.out_dim, self.eps = factor, out_dim, eps
        self.U = nn.Linear(in_dims[0], out_dim * factor, bias=False)
        self.V = nn.Linear(in_dims[1], out_dim * factor, bias=False)
        self.dropout, self.head = nn.Dropout(dropout), nn.Linear(out_dim, num_classes)

    def pooled(self, a, v):
        joint = self.U(a) * self.V(v)
        joint = joint.to(torch.promote_types(joint.dtype, torch.float32))  # bf16 under autocast -> f32
        z = joint.reshape(*joint.shape[:-1], self.out_dim, self.factor).sum(-1)
        z = torch.sign(z) * torch.sqrt(z.abs() + self.eps)
        return z / torch.sqrt((z * z).sum(-1, keepdim=True).clamp_min(self.eps**2))

    def forward(self, a, v):
        return self.head(self.dropout(self.pooled(a, v)))


class AvAttentionFbp(nn.Module):
    """inputs["frames"] (B, T, H, W, C) in [0, 1] and inputs["log_mel_deltas"] (B, T_a, n_mels, 3)
    -> logits (B, num_classes); the arguments are those of AvAttentionFbp (`peers.build_peer` fills
    in its defaults); no frame mask."""

    input_keys = ("frames", "log_mel_deltas")
    memory_format = torch.channels_last

    def __init__(
        self,
        num_classes: int,
        *,
        in_channels: int,
        aggregation: str,
        frame_backbone: str,
        frame_backbone_kwargs: Mapping[str, Any] | None,
        audio_blocks: Sequence[Sequence[int]],
        attention_rank: int,
        dropout: float,
        fusion: str,
        fusion_kwargs: Mapping[str, Any] | None,
    ):
        super().__init__()
        if aggregation not in AGGREGATIONS:
            raise ConfigError(f"torch peer of av_attention_fbp: aggregation must be one of {AGGREGATIONS}")
        if fusion != "fbp":
            raise ConfigError(f"torch peer of av_attention_fbp: only fusion 'fbp' has a peer, got {fusion!r}")
        backbone_kwargs = {"blocks": FRAME_BLOCKS} if frame_backbone == "vgg" else {}
        backbone_kwargs.update(frame_backbone_kwargs or {})
        self.frame_cnn = build_backbone(frame_backbone, in_channels, **backbone_kwargs)
        self.audio_cnn = VGG(3, blocks=audio_blocks)
        dim = self.frame_cnn.out_features
        if aggregation == "self":
            self.aggregate, video_dim = _FirstOutput(SelfAttentionPool(dim, dropout)), dim
        elif aggregation == "relation":
            self.aggregate, video_dim = RelationAttentionPool(dim, dropout), 2 * dim
        else:
            self.aggregate, video_dim = TransformerAttentionPool(dim, attention_rank, dropout), dim
        options = dict(fusion_kwargs or {})
        options.pop("dtype", None)
        self.fusion = FactorizedBilinearPooling((self.audio_cnn.out_features, video_dim), num_classes, **options)

    def branches(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (audio (B, D_a), video (B, D_v)) float32: what the fusion reads."""
        frames = inputs["frames"]
        per_frame = self.frame_cnn(frames_to_images(frames, self.memory_format)).reshape(*frames.shape[:2], -1)
        video = self.aggregate(per_frame)
        # (B, T_a, n_mels, 3) -> (B, 3, T_a, n_mels): channels_last storage already.
        spectrogram = inputs["log_mel_deltas"].permute(0, 3, 1, 2).contiguous(memory_format=self.memory_format)
        return self.audio_cnn(spectrogram).float(), video

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.fusion(*self.branches(inputs))


def copy_weights(jax_model, torch_model: AvAttentionFbp) -> None:
    weights.copy_weights(jax_model, torch_model)


PEERS = {"av_attention_fbp": (AvAttentionFbp, copy_weights)}
