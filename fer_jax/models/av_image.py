"""One picture for both modalities: the aligned face beside the waveform, classified by an Inception CNN.

"av_image_inception" joins the face (one frame of "frames") and the "waveform_image" into a
single image and classifies it with three Inception stages of 32, 64 and 128 filters. Each stage is
one Inception block (parallel 1x1, 1x1->3x3, 1x1->5x5 and 3x3-max-pool->1x1 branches, a quarter of
the filters each, concatenated) followed by 2x2 max pooling; a global average pool, dropout and a
dense layer give the logits.

How the two pictures are combined (`layout`):
  "side_by_side" (default)  (B, S, 2S, C): face on the left, waveform on the right (the grey
                            waveform repeated over the face's C channels). Each picture keeps its
                            own spatial structure and every filter sees one modality at a time,
                            except in the few columns where the windows straddle the seam.
  "channels"                (B, S, S, C + 1): the waveform as one more channel. Pixel (y, x) of a
                            face and of a waveform have nothing to do with each other, so the first
                            layer mixes unrelated values; offered for comparison, not as default.
Both pictures are first resized (bilinear) to S x S = image_size. For the modality ablations
(`images`: "face" or "waveform" alone) the image is that one resized picture, (B, S, S, C) or
(B, S, S, 1), and the layout plays no part.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from fer_jax.errors import ConfigError
from fer_jax.models import backbones, layers
from fer_jax.models.registry import check_frames, choose_subset, register

LAYOUTS = ("side_by_side", "channels")
IMAGES = ("face", "waveform")
_INPUT_KEY = {"face": "frames", "waveform": "waveform_image"}


class InceptionBlock(nnx.Module):
    """(N, H, W, Cin) -> (N, H, W, Cout): four branches of Cout / 4 filters each, concatenated.

    1x1 | 1x1 -> 3x3 | 1x1 -> 5x5 | 3x3 max pool (stride 1) -> 1x1, all 'same' and ReLU. The 1x1
    reductions before the 3x3 and 5x5 convolutions keep their cost at that of a Cout / 4 input,
    as in GoogLeNet. With `batch_norm`, each convolution's output is batch-normalised before its
    ReLU, and the convolution has no bias (BN-Inception, Ioffe & Szegedy 2015).
    """

    def __init__(self, in_features: int, out_features: int, *, batch_norm: bool = False, dtype=jnp.float32,
                 rngs: nnx.Rngs):
        if out_features % 4:
            raise ConfigError(
                f"InceptionBlock: out_features must be divisible by 4 (4 branches), got {out_features}."
            )
        width = out_features // 4

        def conv(cin, size):
            conv = layers.Conv(cin, width, (size, size), padding="SAME", use_bias=not batch_norm, dtype=dtype,
                               rngs=rngs)
            if not batch_norm:
                return conv
            return nnx.Sequential(conv, backbones.batch_norm_layer(width, dtype=dtype, rngs=rngs))

        self.branch1 = conv(in_features, 1)
        self.reduce3, self.branch3 = conv(in_features, 1), conv(width, 3)
        self.reduce5, self.branch5 = conv(in_features, 1), conv(width, 5)
        self.pool_proj = conv(in_features, 1)

    def __call__(self, x: jax.Array) -> jax.Array:
        relu = nnx.relu
        pooled = nnx.max_pool(x, (3, 3), strides=(1, 1), padding="SAME")
        return jnp.concatenate(
            [
                relu(self.branch1(x)),
                relu(self.branch3(relu(self.reduce3(x)))),
                relu(self.branch5(relu(self.reduce5(x)))),
                relu(self.pool_proj(pooled)),
            ],
            axis=-1,
        )


@register("av_image_inception")
class AvImageInception(nnx.Module):
    """Face frame + waveform picture as one image -> Inception CNN -> logits.

    Reads `inputs["frames"]`: float (B, T, H, W, C) in [0, 1], of which frame `frame_index`
    (default the last, -1) is used, and `inputs["waveform_image"]`: float (B, H_w, W_w, 1) in
    [0, 1] (256 x 256 from preprocessing). Returns logits (B, num_classes) float32.

    `images`: a non-empty subset of IMAGES, default both. With ("face",) the model reads and lists
    only "frames", with ("waveform",) only "waveform_image" (1 channel; in_channels and frame_index
    then unused); the CNN sees that one picture. `batch_norm`: BN-Inception blocks (`InceptionBlock`).
    `standardize_face`: the face picture to zero mean and unit variance (`layers.standardize_clips`);
    the waveform picture is drawn alike in every clip and is left as it is.
    """

    input_keys = ("frames", "waveform_image")  # for the default images; instances list their own

    def __init__(
        self,
        num_classes: int,
        *,
        in_channels: int = 1,
        image_size: int = 128,
        layout: str = "side_by_side",
        frame_index: int = -1,
        stage_filters: Sequence[int] = (32, 64, 128),
        dropout: float = 0.5,
        images: Sequence[str] = IMAGES,
        standardize_face: bool = False,
        batch_norm: bool = False,
        dtype: jnp.dtype = jnp.float32,
        rngs: nnx.Rngs,
    ):
        self.standardize_face = standardize_face
        self.images = choose_subset("av_image_inception", "images", images, IMAGES)
        if layout not in LAYOUTS:
            raise ConfigError(f"av_image_inception: layout must be one of {LAYOUTS}, got {layout!r}.")
        if image_size < 2 ** len(stage_filters):
            raise ConfigError(
                f"av_image_inception: image_size {image_size} is too small for {len(stage_filters)} "
                "2x2 poolings; use at least 2 ** stages."
            )
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.image_size = image_size
        self.layout = layout
        self.frame_index = frame_index
        self.dtype = dtype
        self.input_keys = tuple(_INPUT_KEY[image] for image in self.images)
        if len(self.images) == 1:
            features = {"face": in_channels, "waveform": 1}[self.images[0]]
        else:
            features = in_channels + 1 if layout == "channels" else in_channels
        self.stages = nnx.List()
        for filters in stage_filters:
            self.stages.append(InceptionBlock(features, filters, batch_norm=batch_norm, dtype=dtype, rngs=rngs))
            features = filters
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.head = nnx.Linear(features, num_classes, dtype=dtype, rngs=rngs)

    def combine(self, inputs: Mapping[str, jax.Array]) -> jax.Array:
        """The joint image: (B, S, 2S, C) side by side or (B, S, S, C + 1) as channels, float32; with
        one of `images`, that picture alone: (B, S, S, C) or (B, S, S, 1)."""
        if self.images == ("face",):
            return self._face(inputs["frames"])
        if self.images == ("waveform",):
            return self._waveform(inputs["waveform_image"])
        face, wave = self._face(inputs["frames"]), self._waveform(inputs["waveform_image"])
        if self.layout == "channels":
            return jnp.concatenate([face, wave], axis=-1)
        return jnp.concatenate([face, jnp.broadcast_to(wave, face.shape)], axis=2)

    def _face(self, frames: jax.Array) -> jax.Array:
        check_frames("av_image_inception", frames, self.in_channels)
        if not -frames.shape[1] <= self.frame_index < frames.shape[1]:
            raise ConfigError(
                f"av_image_inception: frame_index {self.frame_index} is outside clips of {frames.shape[1]} frames."
            )
        face = self._resize(frames[:, self.frame_index])
        return layers.standardize_clips(face) if self.standardize_face else face

    def _waveform(self, wave: jax.Array) -> jax.Array:
        if wave.ndim != 4 or wave.shape[-1] != 1:
            raise ConfigError(f"av_image_inception expects waveform_image (B, H, W, 1), got {wave.shape}.")
        return self._resize(wave)

    def _resize(self, image: jax.Array) -> jax.Array:
        image = image.astype(jnp.float32)
        size = (self.image_size, self.image_size)
        if image.shape[1:3] == size:
            return image
        return jax.image.resize(image, (image.shape[0], *size, image.shape[-1]), "bilinear")

    def __call__(self, inputs: Mapping[str, jax.Array]) -> jax.Array:
        """frames (B, T, H, W, C), waveform_image (B, H_w, W_w, 1) -> logits (B, num_classes) float32."""
        x = self.combine(inputs).astype(self.dtype)
        for stage in self.stages:
            x = nnx.max_pool(stage(x), (2, 2), strides=(2, 2), padding="VALID")
        x = self.dropout(x.mean(axis=(1, 2)))
        return self.head(x).astype(jnp.float32)
