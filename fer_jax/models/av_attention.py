"""Audio-video emotion recognition with frame attention and cross-modal fusion (Zhou et al. 2019).

"Exploring Emotion Features and Fusion Strategies for Audio-Video Emotion Recognition" (EmotiW
2019, AFEW validation 65.5%): a 2D CNN embeds every face frame, an attention layer weighs the
frames into one clip vector (after Meng et al.'s frame attention network), a CNN embeds the log-mel
spectrogram with its deltas, and factorized bilinear pooling (FBP) fuses the two vectors.

Frame aggregations, for frame features f_i (i = 1..T, masked frames left out of every sum):
  self         alpha_i = sigmoid(w^T dropout(f_i) + b)         v = sum alpha_i f_i / sum alpha_i
  relation     beta_i = sigmoid(u^T dropout([f_i; v]) + c)     out = sum alpha_i beta_i [f_i; v]
                                                                     / sum alpha_i beta_i   (2D wide)
  transformer  q_i = Wq dropout(f_i), k_j = Wk dropout(f_j) (rank r << D),
               A = softmax_j(q_i . k_j / sqrt(r)), f'_i = sum_j A_ij f_j, out = mean_i f'_i
The biases b, c follow the frame attention network's reference code (a Linear with bias); the
transformer variant is our reading of the paper's low-rank projection with scaled dot-product
weights: values are the frame features themselves, so the layer adds only 2 D r parameters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from fer_jax.errors import ConfigError
from fer_jax.models import layers
from fer_jax.models.backbones import apply_per_frame, build_backbone
from fer_jax.models.fusion import build_fusion, fusion_class
from fer_jax.models.registry import check_frames, choose_subset, register
from fer_jax.models.words_branch import WordsBranch

AGGREGATIONS = ("self", "relation", "transformer")
# The fusion's branch order ([audio, video]) and each modality's record feature.
MODALITIES = ("audio", "video")

# Default VGG-style stacks (2 convs per block, 2x2 pooling): 512-d frame features, the width of the
# ResNet/VGG-Face features the paper aggregates, and a lighter 256-d audio CNN.
FRAME_BLOCKS = ((64, 64), (128, 128), (256, 256), (512, 512))
AUDIO_BLOCKS = ((32, 32), (64, 64), (128, 128), (256, 256))


def _valid(mask: jax.Array | None, shape: tuple[int, int]) -> jax.Array:
    """(B, T) float32 1/0 weights of the valid frames; all valid when no mask is given."""
    return jnp.ones(shape, jnp.float32) if mask is None else mask.astype(jnp.float32)


def _weighted_mean(weights: jax.Array, values: jax.Array) -> jax.Array:
    """sum_i w_i x_i / sum_i w_i over T: weights (B, T), values (B, T, D) -> (B, D).

    A clip with no valid frame (all weights 0) gives zeros rather than 0 / 0 = NaN, which would
    poison the whole batch's gradient.
    """
    total = weights.sum(axis=1, keepdims=True)
    return jnp.einsum("bt,btd->bd", weights, values) / jnp.maximum(total, 1e-12)


class SelfAttentionPool(nnx.Module):
    """alpha_i = sigmoid(w^T dropout(f_i) + b); (B, T, D) features, (B, T) mask -> (B, D), alpha (B, T)."""

    def __init__(self, dim: int, *, dropout: float = 0.5, dtype=jnp.float32, rngs: nnx.Rngs):
        self.out_dim = dim
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.score = nnx.Linear(dim, 1, dtype=dtype, rngs=rngs)

    def __call__(self, f: jax.Array, mask: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
        alpha = jax.nn.sigmoid(self.score(self.dropout(f))[..., 0].astype(jnp.float32))
        alpha = alpha * _valid(mask, f.shape[:2])
        return _weighted_mean(alpha, f.astype(jnp.float32)), alpha


class RelationAttentionPool(nnx.Module):
    """Self-attention, then beta_i from each frame joined with the clip vector; (B, T, D) -> (B, 2D)."""

    def __init__(self, dim: int, *, dropout: float = 0.5, dtype=jnp.float32, rngs: nnx.Rngs):
        self.out_dim = 2 * dim
        self.self_attention = SelfAttentionPool(dim, dropout=dropout, dtype=dtype, rngs=rngs)
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.score = nnx.Linear(2 * dim, 1, dtype=dtype, rngs=rngs)

    def __call__(self, f: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        v, alpha = self.self_attention(f, mask)  # alpha is already 0 on masked frames
        joined = jnp.concatenate([f.astype(jnp.float32), jnp.broadcast_to(v[:, None], f.shape)], -1)
        beta = jax.nn.sigmoid(self.score(self.dropout(joined))[..., 0].astype(jnp.float32))
        return _weighted_mean(alpha * beta, joined)


class TransformerAttentionPool(nnx.Module):
    """Low-rank scaled dot-product attention across frames, then the mean; (B, T, D) -> (B, D)."""

    def __init__(self, dim: int, *, rank: int = 64, dropout: float = 0.5, dtype=jnp.float32, rngs: nnx.Rngs):
        self.out_dim = dim
        self.rank = rank
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.query = nnx.Linear(dim, rank, use_bias=False, dtype=dtype, rngs=rngs)
        self.key = nnx.Linear(dim, rank, use_bias=False, dtype=dtype, rngs=rngs)

    def __call__(self, f: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        valid = _valid(mask, f.shape[:2])
        dropped = self.dropout(f)
        q = self.query(dropped).astype(jnp.float32)
        k = self.key(dropped).astype(jnp.float32)
        logits = jnp.einsum("bir,bjr->bij", q, k) / jnp.sqrt(float(self.rank))
        # Masked frames are never attended to (keys) and are left out of the final mean (queries).
        logits = jnp.where(valid[:, None, :] > 0, logits, -jnp.inf)
        # A clip with no valid frame would make every row -inf; any finite row keeps it NaN-free,
        # and its (zero) query weights drop it from the mean anyway.
        logits = jnp.where(valid.sum(1)[:, None, None] > 0, logits, 0.0)
        attended = jnp.einsum("bij,bjd->bid", jax.nn.softmax(logits, axis=-1), f.astype(jnp.float32))
        return _weighted_mean(valid, attended)


def build_aggregation(name: str, dim: int, *, rank: int, dropout: float, dtype, rngs: nnx.Rngs) -> nnx.Module:
    """The frame aggregation `name` over D = dim features; `.out_dim` is the width of its output."""
    if name == "self":
        return _FirstOutput(SelfAttentionPool(dim, dropout=dropout, dtype=dtype, rngs=rngs))
    if name == "relation":
        return RelationAttentionPool(dim, dropout=dropout, dtype=dtype, rngs=rngs)
    if name == "transformer":
        return TransformerAttentionPool(dim, rank=rank, dropout=dropout, dtype=dtype, rngs=rngs)
    raise ConfigError(f"av_attention_fbp: aggregation must be one of {AGGREGATIONS}, got {name!r}.")


class _FirstOutput(nnx.Module):
    # Self-attention also returns its weights (relation attention needs them); the model does not.
    def __init__(self, pool: SelfAttentionPool):
        self.pool = pool
        self.out_dim = pool.out_dim

    def __call__(self, f: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        return self.pool(f, mask)[0]


@register("av_attention_fbp")
class AvAttentionFbp(nnx.Module):
    """Per-frame CNN + frame attention (video), CNN on log-mel + deltas (audio), fused.

    Reads `inputs["frames"]`: float (B, T, H, W, C) in [0, 1]; `inputs["log_mel_deltas"]`: float
    (B, T_a, n_mels, 3), the log-mel spectrogram with its first and second deltas as channels; and,
    when present, `inputs["frame_mask"]`: bool (B, T), False for padded frames, which attention then
    ignores. Returns logits (B, num_classes) float32.

    The frame CNN is any `fer_jax.models.backbones` backbone (`frame_backbone`, options in
    `frame_backbone_kwargs`; default a VGG-style stack of FRAME_BLOCKS); the audio CNN is a VGG-style
    stack of `audio_blocks` over the (time, mel) plane. Both end in global average pooling, so frame
    size and spectrogram length are free. `fusion` names any layer of `fer_jax.models.fusion`
    (default "fbp": z = SumPool_k(U^T a o V^T v), signed square root, l2 normalisation, dropout,
    dense to classes); it receives [audio (B, D_a), video (B, D_v)] in that order, and
    `fusion_kwargs` go to it unchanged. With `words=True` it also reads `inputs["word_features"]`
    (B, T_w, 385), the clip's per-step word features, as a third branch (`WordsBranch`, `words_width`
    wide) after the other two; fbp fuses exactly two branches, so pick "concat", "attention" or "score".

    `modalities`: a non-empty subset of MODALITIES, default both. With ("video",) or ("audio",) the
    other CNN is not built (no parameters) and its input is not read nor listed in `input_keys`
    (("frames",) plus the optional "frame_mask", or ("log_mel_deltas",)), so the data pipeline does
    not feed it; the fusion then gets the one branch (plus words), so fbp, which takes exactly two,
    needs `fusion="concat"` (dropout + dense over the branch) or "attention": a ConfigError says so
    rather than switching fusion behind the config's back. Options of the CNN left out are unused.
    standardize_clips: each clip to zero mean and unit variance before the CNN (`layers.standardize_clips`;
    real frames only, by frame_mask).
    """

    input_keys = ("frames", "log_mel_deltas")  # for the default modalities; instances list their own
    optional_input_keys = ("frame_mask",)

    def __init__(
        self,
        num_classes: int,
        *,
        in_channels: int = 1,
        aggregation: str = "self",
        frame_backbone: str = "vgg",
        frame_backbone_kwargs: Mapping[str, Any] | None = None,
        audio_blocks: Sequence[Sequence[int]] = AUDIO_BLOCKS,
        attention_rank: int = 64,
        dropout: float = 0.5,
        fusion: str = "fbp",
        fusion_kwargs: Mapping[str, Any] | None = None,
        modalities: Sequence[str] = MODALITIES,
        words: bool = False,
        words_width: int = 64,
        standardize_clips: bool = False,
        dtype: jnp.dtype = jnp.float32,
        rngs: nnx.Rngs,
    ):
        self.standardize_clips = standardize_clips
        # Every check before any parameter is drawn.
        if aggregation not in AGGREGATIONS:
            raise ConfigError(f"av_attention_fbp: aggregation must be one of {AGGREGATIONS}, got {aggregation!r}.")
        self.modalities = choose_subset("av_attention_fbp", "modalities", modalities, MODALITIES)
        branch_names = [*self.modalities, *(["words"] if words else [])]
        expected = fusion_class(fusion).num_branches
        if expected is not None and expected != len(branch_names):
            raise ConfigError(
                f"av_attention_fbp: fusion {fusion!r} takes {expected} branches, but the model has "
                f"{len(branch_names)} ({', '.join(branch_names)}); use fusion='concat' or 'attention'."
            )
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.dtype = dtype
        video, audio = "video" in self.modalities, "audio" in self.modalities
        # Our block default for "vgg" unless the config names its own blocks (or another backbone).
        backbone_kwargs = {"blocks": FRAME_BLOCKS} if frame_backbone == "vgg" else {}
        backbone_kwargs.update(frame_backbone_kwargs or {}, dtype=dtype)
        # Built in this order (frame CNN, audio CNN, aggregation) so the default draws as it always has.
        if video:
            self.frame_cnn = build_backbone(frame_backbone, in_channels, rngs=rngs, **backbone_kwargs)
        if audio:
            self.audio_cnn = build_backbone("vgg", 3, blocks=audio_blocks, dtype=dtype, rngs=rngs)
        if video:
            self.aggregate = build_aggregation(
                aggregation, self.frame_cnn.out_features, rank=attention_rank, dropout=dropout, dtype=dtype,
                rngs=rngs,
            )
        widths = [self.audio_cnn.out_features] if audio else []
        widths += [self.aggregate.out_dim] if video else []
        self.input_keys = ("frames",) * video + ("log_mel_deltas",) * audio
        self.optional_input_keys = ("frame_mask",) * video
        self.words = WordsBranch(words_width, dtype=dtype, rngs=rngs) if words else None
        if words:
            widths.append(self.words.out_dim)
            self.input_keys = (*self.input_keys, "word_features")
        self.fusion = build_fusion(
            fusion, widths, num_classes, rngs=rngs, **{"dtype": dtype, **dict(fusion_kwargs or {})},
        )

    def __call__(self, inputs: Mapping[str, jax.Array]) -> jax.Array:
        """frames (B, T, H, W, C), log_mel_deltas (B, T_a, n_mels, 3)[, frame_mask (B, T)] -> (B, K),
        each read only when its modality is used."""
        branches = [self._audio(inputs)] if "audio" in self.modalities else []
        branches += [self._video(inputs)] if "video" in self.modalities else []
        branches += [self.words(inputs["word_features"])] if self.words is not None else []
        return self.fusion(branches).astype(jnp.float32)

    def _audio(self, inputs: Mapping[str, jax.Array]) -> jax.Array:
        spectrogram = inputs["log_mel_deltas"]
        if spectrogram.ndim != 4 or spectrogram.shape[-1] != 3:
            raise ConfigError(
                f"av_attention_fbp expects log_mel_deltas (B, T_a, n_mels, 3), got {spectrogram.shape}."
            )
        return self.audio_cnn(spectrogram.astype(self.dtype)).astype(jnp.float32)

    def _video(self, inputs: Mapping[str, jax.Array]) -> jax.Array:
        frames = inputs["frames"]
        check_frames("av_attention_fbp", frames, self.in_channels)
        mask = inputs.get("frame_mask")
        if mask is not None and mask.shape != frames.shape[:2]:
            raise ConfigError(
                f"av_attention_fbp: frame_mask {mask.shape} does not match frames {frames.shape[:2]}."
            )
        if self.standardize_clips:
            frames = layers.standardize_clips(frames, mask)
        return self.aggregate(apply_per_frame(self.frame_cnn, frames.astype(self.dtype)), mask)
