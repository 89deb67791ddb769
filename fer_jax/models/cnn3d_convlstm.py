"""3D CNN + ConvLSTM of Saurav, Kumar, Saini and Singh, INDICON 2020.

"Video-based facial expression recognition using a blend of 3D CNN and ConvLSTM": 3D convolutions
pick up short-range motion, the ConvLSTM integrates it over the remaining time steps while keeping
the spatial layout that a fully connected LSTM would flatten away.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from fer_jax.errors import ConfigError
from fer_jax.models.convlstm import ConvLSTM2D
from fer_jax.models.layers import conv3d_same, max_pool_valid, standardize_clips
from fer_jax.models.registry import register


@register("cnn3d_convlstm")
class Cnn3dConvLstm(nnx.Module):
    """Conv3D(3x3x3, same, ReLU) + MaxPool3D, x3 -> ConvLSTM2D(3x3) -> flatten -> dropout -> dense.

    Reads `inputs["frames"]`: float (B, T, H, W, C) in [0, 1], with T = frames, H = W = size and
    C = in_channels as constructed. Returns logits (B, num_classes) in float32; softmax belongs to
    the loss and to prediction.

    Each pooling window (t, h, w) is also its stride with 'valid' padding (Keras MaxPooling3D), so a
    dimension shrinks to floor(d / window). The default windows keep all 8 frames through the first
    block, so early motion is not averaged away, and leave 2 steps for the ConvLSTM to recur over.

    The ConvLSTM's steps are unrolled (`convlstm_unroll`, default: all of them; 1 keeps the loop):
    in a loop, XLA all-reduces the recurrent kernel's gradient inside it, a point where the devices
    of a data-parallel step wait for each other at every time step; unrolled, the step has a single
    all-reduce: at paper sizes on 2 CPU devices, a step about 4 % faster (BENCHMARKS.md).

    Like every nnx.Dropout, the model starts in training mode: call `model.eval()` before evaluating
    and `model.train()` to go back (both are current, non-deprecated API in flax 0.12.8).
    """

    input_keys = ("frames",)

    def __init__(
        self,
        num_classes: int,
        *,
        in_channels: int = 1,
        frames: int = 8,
        size: int = 64,
        conv_features: Sequence[int] = (32, 32, 64),
        pool_windows: Sequence[Sequence[int]] = ((1, 2, 2), (2, 2, 2), (2, 2, 2)),
        convlstm_filters: int = 16,
        convlstm_unroll: int | None = None,
        dropout: float = 0.5,
        standardize_clips: bool = False,
        dtype: jnp.dtype = jnp.float32,
        rngs: nnx.Rngs,
    ):
        if len(pool_windows) != len(conv_features):
            raise ConfigError(
                f"cnn3d_convlstm: pool_windows needs one window per conv layer "
                f"({len(conv_features)}), got {len(pool_windows)}."
            )
        self.num_classes = num_classes
        self.in_shape = (frames, size, size, in_channels)
        self.pool_windows = tuple(tuple(w) for w in pool_windows)
        self.dtype = dtype
        # Optional: each clip to zero mean and unit variance before the first convolution, so
        # a clip's brightness and contrast do not have to be learned away (it speeds up training
        # on small corpora; the paper feeds pixels scaled to [0, 1]).
        self.standardize_clips = standardize_clips

        # Pooled sizes first, so an impossible config fails before any parameter is drawn.
        t, h, w = frames, size, size
        for window in self.pool_windows:
            t, h, w = t // window[0], h // window[1], w // window[2]
        if min(t, h, w) < 1:
            raise ConfigError(
                f"cnn3d_convlstm: pool_windows {self.pool_windows} reduce a (T, H, W) = "
                f"({frames}, {size}, {size}) clip to ({t}, {h}, {w}); use smaller windows or larger clips."
            )

        # Keras's glorot_uniform, as in the paper's Keras implementation, so training from scratch
        # starts where the published numbers did (Flax would default to lecun_normal).
        glorot = nnx.initializers.glorot_uniform()
        self.convs = nnx.List()
        features_in = in_channels
        for features in conv_features:
            self.convs.append(
                nnx.Conv(
                    features_in, features, (3, 3, 3), padding="SAME", kernel_init=glorot,
                    dtype=dtype, rngs=rngs,
                )
            )
            features_in = features
        # 'same' keeps the (already small) pooled map intact; 'valid' would drop its border.
        self.convlstm = ConvLSTM2D(
            features_in, convlstm_filters, 3, padding="same", unroll=t if convlstm_unroll is None else convlstm_unroll,
            dtype=dtype, rngs=rngs,
        )
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        # float32 output: bfloat16 logits would be rounded to 8 bits before the loss, and the bias
        # gradient (a sum over the batch) accumulated in bfloat16.
        self.head = nnx.Linear(
            h * w * convlstm_filters, num_classes, kernel_init=glorot, dtype=dtype,
            preferred_element_type=jnp.float32, rngs=rngs,
        )

    def features(self, inputs: Mapping[str, jax.Array]) -> jax.Array:
        """inputs["frames"]: (B, T, H, W, C) in [0, 1] -> the ConvLSTM's last hidden state (B, H', W', F)."""
        x = inputs["frames"]
        if x.shape[1:] != self.in_shape:
            raise ConfigError(
                f"cnn3d_convlstm was built for frames of shape (B, *{self.in_shape}), got {x.shape}; "
                "set frames/size/in_channels to match the data."
            )
        if self.standardize_clips:
            x = standardize_clips(x)
        x = x.astype(self.dtype)
        for conv, window in zip(self.convs, self.pool_windows):
            x = max_pool_valid(nnx.relu(self._conv(conv, x)), window)
        return self.convlstm(x)  # (B, T', H', W', C') -> (B, H', W', F): the last hidden state

    def _conv(self, conv: nnx.Conv, x: jax.Array) -> jax.Array:
        """conv(x) + bias in the compute dtype; products and the bias added in float32 (see
        `layers.conv3d_same`, which also says why this is not `nnx.Conv.__call__`)."""
        return conv3d_same(x, conv.kernel[...].astype(self.dtype), conv.bias[...], out_dtype=self.dtype)

    def __call__(self, inputs: Mapping[str, jax.Array]) -> jax.Array:
        """inputs["frames"]: (B, T, H, W, C) float in [0, 1] -> logits (B, num_classes) float32."""
        x = self.features(inputs).reshape(inputs["frames"].shape[0], -1)
        # Dropout in float32 (a small tensor): in bfloat16 its 1 / keep_prob would use keep_prob
        # rounded to 8 bits (0.7 -> 0.6992), scaling every kept feature 0.1% too high.
        x = self.dropout(x.astype(jnp.float32))
        # The head casts x to the compute dtype; its logits come out in float32 (see __init__) so
        # softmax/cross-entropy are not computed in bfloat16.
        return self.head(x).astype(jnp.float32)


@register("cnn3d_convlstm_score")
class Cnn3dConvLstmScore(Cnn3dConvLstm):
    """The 3D CNN + ConvLSTM with one output, a value per clip (task "score"): AVEC2013's BDI-II
    predicted per window, averaged per video to be scored (`fer_jax.train.tasks.VideoScore`).
    Takes Cnn3dConvLstm's options; returns (B, 1) float32."""

    task = "score"

    def __init__(self, num_classes: int, **kwargs):
        if num_classes != 1:
            raise ConfigError(f"cnn3d_convlstm_score predicts one value per clip; num_classes must be 1, got {num_classes}.")
        super().__init__(1, **kwargs)
