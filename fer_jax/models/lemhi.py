"""LEMHI-CNN and CNN-CTSLSTM of Hu et al. 2019.

"Video facial emotion recognition based on local enhanced motion history image and CNN-CTSLSTM
networks": two complementary models whose class scores are fused late (weights found by random
search on validation data, `fer_jax.eval.late_fusion`):

  lemhi_cnn    a 2D CNN on the landmark-enhanced motion history image (`fer_jax.preprocess.mhi`):
               one picture of where and how recently the face moved.
  cnn_ctslstm  a per-frame CNN; the clip's frames are split into K consecutive temporal segments,
               each segment's features are averaged, and an LSTM runs across the K segment
               features (the cross temporal segment LSTM): it sees the whole clip in K steps, so
               its recurrence spans the expression's onset, apex and offset whatever the frame rate.

Both CNNs are `fer_jax.models.backbones` backbones: by default VGG-16's convolutional layout (our
paper-size default; any backbone, block layout or width can be configured).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from fer_jax.errors import ConfigError
from fer_jax.models import layers
from fer_jax.models.backbones import apply_per_frame, build_backbone
from fer_jax.models.recurrent import LSTMCell
from fer_jax.models.registry import check_frames, register


@register("lemhi_cnn")
class LemhiCnn(nnx.Module):
    """CNN on the LEMHI: backbone -> global average pool -> dropout -> dense.

    Reads `inputs["lemhi"]`: float (B, H, W, 1) in [0, 1]. Returns logits (B, num_classes) float32.
    """

    input_keys = ("lemhi",)

    def __init__(
        self,
        num_classes: int,
        *,
        backbone: str = "vgg",
        backbone_kwargs: Mapping[str, Any] | None = None,
        dropout: float = 0.5,
        dtype: jnp.dtype = jnp.float32,
        rngs: nnx.Rngs,
    ):
        self.num_classes = num_classes
        self.dtype = dtype
        self.backbone = build_backbone(backbone, 1, rngs=rngs, **{**dict(backbone_kwargs or {}), "dtype": dtype})
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.head = nnx.Linear(self.backbone.out_features, num_classes, dtype=dtype, rngs=rngs)

    def __call__(self, inputs: Mapping[str, jax.Array]) -> jax.Array:
        """inputs["lemhi"]: (B, H, W, 1) -> logits (B, num_classes) float32."""
        x = inputs["lemhi"]
        if x.ndim != 4 or x.shape[-1] != 1:
            raise ConfigError(f"lemhi_cnn expects lemhi images (B, H, W, 1), got shape {x.shape}.")
        return self.head(self.dropout(self.backbone(x.astype(self.dtype)))).astype(jnp.float32)


def segment_means(features: jax.Array, mask: jax.Array | None, segments: int) -> jax.Array:
    """Mean of the features of each of K temporal segments: (B, T, D), (B, T) bool -> (B, K, D).

    The valid frames of each clip (all when mask is None), in order, are split into K runs of
    (nearly) equal length: valid frame n of L goes to segment floor(n K / L), the partition
    numpy.array_split would make. Splitting the valid frames rather than all T positions keeps a
    padded short clip's segments spread over its own duration, not piled into the first few.
    A segment with no frame (a clip with L < K valid frames) is zero.
    """
    b, t, _ = features.shape
    valid = jnp.ones((b, t), bool) if mask is None else mask.astype(bool)
    length = valid.sum(axis=1, keepdims=True)  # (B, 1)
    position = jnp.cumsum(valid, axis=1) - 1  # index of each frame among its clip's valid frames
    segment = (position * segments) // jnp.maximum(length, 1)
    # (B, T, K) one-hot membership, zero for padded frames.
    member = (segment[..., None] == jnp.arange(segments)) & valid[..., None]
    member = member.astype(jnp.float32)
    sums = jnp.einsum("btk,btd->bkd", member, features.astype(jnp.float32))
    return sums / jnp.maximum(member.sum(axis=1), 1.0)[..., None]


@register("cnn_ctslstm")
class CnnCtsLstm(nnx.Module):
    """Per-frame CNN -> K segment means -> LSTM across segments -> dropout -> dense.

    Reads `inputs["frames"]`: float (B, T, H, W, C) in [0, 1], T >= segments; and, when present,
    `inputs["frame_mask"]`: bool (B, T), False for padded frames, which then join no segment.
    Returns logits (B, num_classes) float32 from the LSTM's hidden state after the last segment.
    The LSTM is `fer_jax.models.recurrent.LSTMCell` (torch's equations and weight layout).
    standardize_clips: each clip to zero mean and unit variance before the CNN (`layers.standardize_clips`;
    real frames only, by frame_mask).
    """

    input_keys = ("frames",)
    optional_input_keys = ("frame_mask",)

    def __init__(
        self,
        num_classes: int,
        *,
        in_channels: int = 1,
        segments: int = 3,
        backbone: str = "vgg",
        backbone_kwargs: Mapping[str, Any] | None = None,
        lstm_hidden: int = 512,
        dropout: float = 0.5,
        standardize_clips: bool = False,
        dtype: jnp.dtype = jnp.float32,
        rngs: nnx.Rngs,
    ):
        self.standardize_clips = standardize_clips
        if segments < 1:
            raise ConfigError(f"cnn_ctslstm: segments must be >= 1, got {segments}.")
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.segments = segments
        self.dtype = dtype
        self.backbone = build_backbone(
            backbone, in_channels, rngs=rngs, **{**dict(backbone_kwargs or {}), "dtype": dtype}
        )
        self.lstm = LSTMCell(self.backbone.out_features, lstm_hidden, dtype=dtype, rngs=rngs)
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.head = nnx.Linear(lstm_hidden, num_classes, dtype=dtype, rngs=rngs)

    def __call__(self, inputs: Mapping[str, jax.Array]) -> jax.Array:
        """frames (B, T, H, W, C)[, frame_mask (B, T)] -> logits (B, num_classes) float32."""
        frames = inputs["frames"]
        check_frames("cnn_ctslstm", frames, self.in_channels)
        if frames.shape[1] < self.segments:
            raise ConfigError(
                f"cnn_ctslstm: clips of {frames.shape[1]} frames cannot fill {self.segments} segments; "
                "sample more frames or use fewer segments."
            )
        mask = inputs.get("frame_mask")
        if mask is not None and mask.shape != frames.shape[:2]:
            raise ConfigError(f"cnn_ctslstm: frame_mask {mask.shape} does not match frames {frames.shape[:2]}.")
        if self.standardize_clips:
            frames = layers.standardize_clips(frames, mask)
        per_frame = apply_per_frame(self.backbone, frames.astype(self.dtype))
        segments = segment_means(per_frame, mask, self.segments)  # (B, K, D)
        # Time-major for the cell's scan; every segment is a real step (empty ones are zero inputs).
        gates = self.lstm.input_gates(segments.swapaxes(0, 1))
        _, last = self.lstm.scan(gates, jnp.ones(gates.shape[:2], bool), reverse=False)
        return self.head(self.dropout(last)).astype(jnp.float32)
