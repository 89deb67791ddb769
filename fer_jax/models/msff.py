"""MSFF: "Multiple Spatio-temporal Feature Learning for Video-based Emotion Recognition in the Wild"
(Lu et al., ICMI 2018, EmotiW challenge on AFEW).

Three branches, each a classifier on its own and registered on its own so it can be trained alone
or inside the fused model:
  msff_cnn_blstm        per-frame 2D CNN (VGG / ResNet-18 / ResNet-50) -> BLSTM over frames
  msff_c3d              C3D (Tran et al. 2015): 3D convolutions over the clip
  msff_audio_vgg_blstm  VGG-style CNN on the spectrogram image -> BLSTM over time
and `msff`, which fuses them with any layer from fusion.py: `fusion="score"` is the paper's
score-matrix fusion; "concat", "attention" and "fbp" are one config line away, and so are the
modality ablations (`branches`: video only, audio only).

Every branch has `features(inputs) -> (B, d)` (what feature fusions read), `classify(features)
-> logits (B, num_classes)` = dense(dropout(features)) (what score fusion reads), and
`__call__(inputs)` = classify(features(inputs)).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from fer_jax.errors import ConfigError
from fer_jax.models.backbones import VGG, apply_per_frame, build_backbone
from fer_jax.models.fusion import build_fusion, fusion_class
from fer_jax.models import layers
from fer_jax.models.recurrent import BLSTM
from fer_jax.models.registry import build_model, choose_subset, register

POOLINGS = ("mean", "last")
# C3D's conv1a .. conv5b and pool1 .. pool5: pool1 keeps every frame so early motion survives.
C3D_BLOCKS = ((64,), (128,), (256, 256), (512, 512), (512, 512))
C3D_POOLS = ((1, 2, 2), (2, 2, 2), (2, 2, 2), (2, 2, 2), (2, 2, 2))
AUDIO_BLOCKS = ((64, 64), (128, 128), (256, 256), (512, 512))
AUDIO_FEATURES = {"log_mel": 1, "log_mel_deltas": 3, "linear_spectrogram": 1}  # name -> channels
# msff's branches, in the order they are built and fused; audio last (fbp pairs visual against it).
BRANCHES = ("cnn_blstm", "c3d", "audio")
VISUAL_BRANCHES = ("cnn_blstm", "c3d")
BRANCH_MODELS = {"cnn_blstm": "msff_cnn_blstm", "c3d": "msff_c3d", "audio": "msff_audio_vgg_blstm"}
_HE = nnx.initializers.he_normal()  # ReLU stacks without BatchNorm (C3D) keep their scale with it


def _check_pooling(model: str, pooling: str) -> None:
    if pooling not in POOLINGS:
        raise ConfigError(f"{model}: pooling must be one of {POOLINGS}, got {pooling!r}.")


def _pool_over_time(outputs: jax.Array, final: jax.Array, mask: jax.Array | None, pooling: str) -> jax.Array:
    """BLSTM outputs (B, T, 2H) -> (B, 2H): the mean over real steps, or both directions' last state."""
    if pooling == "last":
        return final
    if mask is None:
        return outputs.mean(axis=1)
    # Masked steps are already zero in `outputs`; divide by the real count, not T.
    count = jnp.maximum(mask.sum(axis=1, keepdims=True), 1).astype(outputs.dtype)
    return outputs.sum(axis=1) / count


@register("msff_cnn_blstm")
class CnnBlstm(nnx.Module):
    """Per-frame 2D CNN -> BLSTM over frames -> mean (or last state) -> dropout -> dense.

    Reads inputs["frames"] (B, T, H, W, in_channels) float in [0, 1], and with use_frame_mask also
    inputs["frame_mask"] (B, T) bool so padded frames are skipped by the BLSTM and the mean.
    Returns logits (B, num_classes) float32; features(inputs) is (B, 2 * lstm_hidden).

    backbone: "vgg" | "resnet18" | "resnet50"; backbone_options go to backbones.build_backbone
    (e.g. {"width": 0.25} or, for vgg, {"blocks": ..., "batch_norm": True}). Any H, W large enough
    for the backbone's pooling work; T may vary between calls. BatchNorm (ResNets; VGG with
    batch_norm) follows model.train() / model.eval() like dropout, with statistics over all B*T
    frames (padded ones included: the mask only reaches the BLSTM).
    standardize_clips: each clip to zero mean and unit variance before the CNN (`layers.standardize_clips`;
    real frames only with use_frame_mask), as the demo's 3D-CNN does; off in the paper's configs.
    """

    input_keys = ("frames",)

    def __init__(
        self,
        num_classes: int,
        *,
        backbone: str = "resnet18",
        backbone_options: Mapping[str, Any] | None = None,
        in_channels: int = 3,
        lstm_hidden: int = 128,
        lstm_layers: int = 1,
        pooling: str = "mean",
        dropout: float = 0.5,
        use_frame_mask: bool = False,
        standardize_clips: bool = False,
        dtype: jnp.dtype = jnp.float32,
        rngs: nnx.Rngs,
    ):
        _check_pooling("msff_cnn_blstm", pooling)
        self.pooling = pooling
        self.standardize_clips = standardize_clips
        self.use_frame_mask = use_frame_mask
        if use_frame_mask:  # instance attribute: the trainer reads model.input_keys
            self.input_keys = ("frames", "frame_mask")
        self.backbone = build_backbone(
            backbone, in_channels, rngs=rngs, dtype=dtype, **(backbone_options or {})
        )
        self.blstm = BLSTM(
            self.backbone.out_features, lstm_hidden, num_layers=lstm_layers, dropout=dropout,
            dtype=dtype, rngs=rngs,
        )
        self.out_features = self.blstm.out_features
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.head = nnx.Linear(self.out_features, num_classes, dtype=dtype, rngs=rngs)

    def features(self, inputs: Mapping[str, jax.Array]) -> jax.Array:
        frames = inputs["frames"]
        if frames.ndim != 5:
            raise ConfigError(f"msff_cnn_blstm expects frames (B, T, H, W, C), got shape {frames.shape}.")
        mask = inputs["frame_mask"] if self.use_frame_mask else None
        if self.standardize_clips:
            frames = layers.standardize_clips(frames, mask)
        per_frame = apply_per_frame(self.backbone, frames)  # (B, T, D)
        outputs, final = self.blstm(per_frame, mask)
        return _pool_over_time(outputs, final, mask, self.pooling)

    def classify(self, features: jax.Array) -> jax.Array:
        """features (B, out_features) -> logits (B, num_classes) float32."""
        return self.head(self.dropout(features)).astype(jnp.float32)

    def __call__(self, inputs: Mapping[str, jax.Array]) -> jax.Array:
        return self.classify(self.features(inputs))


@register("msff_c3d")
class C3D(nnx.Module):
    """C3D: blocks of 3x3x3 convs (ReLU) each followed by 3D max pooling, then fc layers.

    Reads inputs["frames"] (B, frames, size, size, in_channels) float in [0, 1]; returns logits
    (B, num_classes) float32; features(inputs) is the last fc layer's output (B, fc_features[-1]).
    Defaults are C3D's (conv 64, 128, 256x2, 512x2, 512x2; fc6, fc7 4096; dropout 0.5) for
    16 x 112 x 112 clips. Pool windows (t, h, w) are also their strides, padded at the end when a
    size does not divide (Caffe's ceil mode, so 7 -> 4 at pool5 as in C3D); the flattened map is in
    (t, h, w, c) order, which an importer of torch-port weights must permute from (c, t, h, w).
    standardize_clips: each clip to zero mean and unit variance before the CNN (`layers.standardize_clips`).
    """

    input_keys = ("frames",)

    def __init__(
        self,
        num_classes: int,
        *,
        in_channels: int = 3,
        frames: int = 16,
        size: int = 112,
        conv_blocks: Sequence[Sequence[int]] = C3D_BLOCKS,
        pool_windows: Sequence[Sequence[int]] = C3D_POOLS,
        fc_features: Sequence[int] = (4096, 4096),
        dropout: float = 0.5,
        standardize_clips: bool = False,
        dtype: jnp.dtype = jnp.float32,
        rngs: nnx.Rngs,
    ):
        self.standardize_clips = standardize_clips
        if len(pool_windows) != len(conv_blocks) or not all(conv_blocks):
            raise ConfigError(
                f"msff_c3d: needs non-empty conv_blocks and one pool window per block, got "
                f"{len(conv_blocks)} blocks and {len(pool_windows)} windows."
            )
        self.in_shape = (frames, size, size, in_channels)
        self.pool_windows = tuple(tuple(int(p) for p in w) for w in pool_windows)
        self.dtype = dtype
        self.blocks = nnx.List()
        c_in = in_channels
        for block in conv_blocks:
            convs = nnx.List()
            for c_out in block:
                convs.append(
                    layers.Conv(c_in, c_out, (3, 3, 3), padding="SAME", kernel_init=_HE, dtype=dtype, rngs=rngs)
                )
                c_in = c_out
            self.blocks.append(convs)
        t, h, w = frames, size, size
        for pt, ph, pw in self.pool_windows:
            t, h, w = -(-t // pt), -(-h // ph), -(-w // pw)  # ceil: 'SAME' pooling
        self.fcs = nnx.List()
        width = t * h * w * c_in
        for features in fc_features:
            self.fcs.append(nnx.Linear(width, features, kernel_init=_HE, dtype=dtype, rngs=rngs))
            width = features
        self.out_features = width
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.head = nnx.Linear(width, num_classes, dtype=dtype, rngs=rngs)

    def features(self, inputs: Mapping[str, jax.Array]) -> jax.Array:
        x = inputs["frames"]
        if x.shape[1:] != self.in_shape:
            raise ConfigError(
                f"msff_c3d was built for frames of shape (B, *{self.in_shape}), got {x.shape}; "
                "set frames/size/in_channels to match the data."
            )
        x = (layers.standardize_clips(x) if self.standardize_clips else x).astype(self.dtype)
        for convs, window in zip(self.blocks, self.pool_windows):
            for conv in convs:
                # layers.conv3d_same: the fastest formulation per backend (its module docstring).
                x = nnx.relu(layers.conv3d_same(x, conv.kernel[...].astype(self.dtype), conv.bias[...],
                                                out_dtype=self.dtype))
            x = nnx.max_pool(x, window, strides=window, padding="SAME")
        x = x.reshape(x.shape[0], -1)
        for i, fc in enumerate(self.fcs):
            # Dropout after fc6 but not fc7 here: fc7's comes with the head (or the fusion layer).
            x = nnx.relu(fc(self.dropout(x) if i > 0 else x))
        return x

    def classify(self, features: jax.Array) -> jax.Array:
        """features (B, out_features) -> logits (B, num_classes) float32."""
        return self.head(self.dropout(features)).astype(jnp.float32)

    def __call__(self, inputs: Mapping[str, jax.Array]) -> jax.Array:
        return self.classify(self.features(inputs))


@register("msff_audio_vgg_blstm")
class AudioVggBlstm(nnx.Module):
    """VGG-style CNN on the spectrogram as an image -> one feature vector per time step -> BLSTM.

    Reads inputs[feature]: "log_mel" (B, T_a, n_freq) and "linear_spectrogram" (B, T_a, n_freq)
    as 1-channel images, "log_mel_deltas" (B, T_a, n_freq, 3) as 3 channels. After the CNN the
    map (B, T', F', C) is flattened per time step to (B, T', F' * C); T' = T_a // Π(time windows).
    Returns logits (B, num_classes) float32; features(inputs) is (B, 2 * lstm_hidden).
    BatchNorm (default on: log spectrograms are far from zero-mean) follows train/eval mode.
    """

    input_keys = ("log_mel",)

    def __init__(
        self,
        num_classes: int,
        *,
        feature: str = "log_mel",
        n_freq: int = 64,
        conv_blocks: Sequence[Sequence[int]] = AUDIO_BLOCKS,
        pool_windows: Sequence[Sequence[int]] | None = None,
        batch_norm: bool = True,
        lstm_hidden: int = 128,
        lstm_layers: int = 1,
        pooling: str = "mean",
        dropout: float = 0.5,
        dtype: jnp.dtype = jnp.float32,
        rngs: nnx.Rngs,
    ):
        if feature not in AUDIO_FEATURES:
            raise ConfigError(
                f"msff_audio_vgg_blstm: feature must be one of {sorted(AUDIO_FEATURES)}, got {feature!r}."
            )
        _check_pooling("msff_audio_vgg_blstm", pooling)
        self.feature = feature
        self.input_keys = (feature,)
        self.n_freq = n_freq
        self.pooling = pooling
        self.cnn = VGG(
            AUDIO_FEATURES[feature], blocks=conv_blocks, batch_norm=batch_norm, pool_windows=pool_windows,
            dtype=dtype, rngs=rngs,
        )
        self.time_stride = 1
        freq = n_freq
        for pt, pf in self.cnn.pool_windows:
            self.time_stride, freq = self.time_stride * pt, freq // pf
        if freq < 1:
            raise ConfigError(
                f"msff_audio_vgg_blstm: pool_windows {self.cnn.pool_windows} pool n_freq={n_freq} "
                "frequency bins down to nothing; pool frequency less or use more bins."
            )
        self.blstm = BLSTM(
            freq * self.cnn.out_features, lstm_hidden, num_layers=lstm_layers, dropout=dropout,
            dtype=dtype, rngs=rngs,
        )
        self.out_features = self.blstm.out_features
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.head = nnx.Linear(self.out_features, num_classes, dtype=dtype, rngs=rngs)

    def features(self, inputs: Mapping[str, jax.Array]) -> jax.Array:
        x = inputs[self.feature]
        if x.ndim == 3:
            x = x[..., None]
        channels = AUDIO_FEATURES[self.feature]
        if x.ndim != 4 or x.shape[2:] != (self.n_freq, channels) or x.shape[1] < self.time_stride:
            raise ConfigError(
                f"msff_audio_vgg_blstm expects {self.feature} of shape (B, T_a >= {self.time_stride}, "
                f"{self.n_freq}{', 3' if channels == 3 else ''}), got {inputs[self.feature].shape}; "
                "set n_freq to the number of bins."
            )
        x = self.cnn.feature_map(x)  # (B, T', F', C)
        x = x.reshape(*x.shape[:2], -1)
        outputs, final = self.blstm(x)
        return _pool_over_time(outputs, final, None, self.pooling)

    def classify(self, features: jax.Array) -> jax.Array:
        """features (B, out_features) -> logits (B, num_classes) float32."""
        return self.head(self.dropout(features)).astype(jnp.float32)

    def __call__(self, inputs: Mapping[str, jax.Array]) -> jax.Array:
        return self.classify(self.features(inputs))


@register("msff")
class Msff(nnx.Module):
    """CNN-BLSTM + C3D + audio VGG-BLSTM (or the `branches` named), fused by a fusion.py layer:
    logits (B, num_classes).

    branches: which of BRANCHES to build and fuse, any non-empty subset in any order (kept in
    BRANCHES' order); default all three. Video only is ("cnn_blstm", "c3d"), audio only
    ("audio",): a branch left out has no parameters, and its inputs are not in input_keys, so the
    data pipeline does not feed them. cnn_blstm / c3d / audio: constructor options of
    msff_cnn_blstm / msff_c3d / msff_audio_vgg_blstm (checked like any model's); those of a branch
    left out are not used, so an ablation is one config line. fusion: a fusion.py name;
    fusion_options go to it. A fusion that reads logits ("score") gets the branch logits: with one
    branch, score fusion returns log_softmax of that branch's logits (its one weight per class is
    1 whatever it learns), the branch's own probabilities and loss. One that reads features gets
    the branch features, and a two-branch one ("fbp") gets [visual features (CNN-BLSTM ‖ C3D, the
    ones built), audio features]: visual against audio, so it needs the audio branch and at least
    one visual branch. Reads the union of the built branches' input_keys.
    """

    input_keys = ("frames", "log_mel")  # for the default branches; instances list their own

    def __init__(
        self,
        num_classes: int,
        *,
        branches: Sequence[str] = BRANCHES,
        fusion: str = "score",
        fusion_options: Mapping[str, Any] | None = None,
        cnn_blstm: Mapping[str, Any] | None = None,
        c3d: Mapping[str, Any] | None = None,
        audio: Mapping[str, Any] | None = None,
        dtype: jnp.dtype = jnp.float32,
        rngs: nnx.Rngs,
    ):
        self.branches = choose_subset("msff", "branches", branches, BRANCHES)
        cls = fusion_class(fusion)
        self.fusion_reads = cls.reads
        self.pair_visual = cls.num_branches == 2
        visual = [name for name in self.branches if name in VISUAL_BRANCHES]
        if self.pair_visual and not (visual and "audio" in self.branches):
            raise ConfigError(
                f"msff: fusion {fusion!r} fuses visual against audio features, so branches needs 'audio' "
                f"and at least one of {VISUAL_BRANCHES}; got {self.branches}. Use a fusion that takes "
                "any number of branches (score, concat, attention)."
            )
        options = {"cnn_blstm": cnn_blstm, "c3d": c3d, "audio": audio}
        for name in self.branches:  # built in BRANCHES' order, as before the option existed
            setattr(self, name, build_model(
                BRANCH_MODELS[name], num_classes=num_classes, rngs=rngs, dtype=dtype, **(options[name] or {})
            ))
        keys = [key for name in self.branches for key in getattr(self, name).input_keys]
        self.input_keys = tuple(dict.fromkeys(keys))  # union, first-seen order

        if cls.reads == "logits":
            dims = [num_classes] * len(self.branches)
        else:
            dims = [getattr(self, name).out_features for name in self.branches]
        if self.pair_visual:
            dims = [sum(dims[:len(visual)]), dims[-1]]  # audio is last in BRANCHES
        self.fusion = build_fusion(
            fusion, dims, num_classes, rngs=rngs, dtype=dtype, **(fusion_options or {})
        )

    def logits_with_branches(self, inputs: Mapping[str, jax.Array]) -> tuple[jax.Array, dict[str, jax.Array]]:
        """-> (fused logits (B, num_classes), {built branch name: its own logits (B, num_classes)}),
        from one pass through the branches: for per-branch accuracy, or per-branch auxiliary losses."""
        features = {name: getattr(self, name).features(inputs) for name in self.branches}
        logits = {name: getattr(self, name).classify(features[name]) for name in self.branches}
        outs = [(logits if self.fusion_reads == "logits" else features)[name] for name in self.branches]
        if self.pair_visual:
            outs = [jnp.concatenate(outs[:-1], axis=-1), outs[-1]]
        return self.fusion(outs).astype(jnp.float32), logits

    def __call__(self, inputs: Mapping[str, jax.Array]) -> jax.Array:
        # Branch logits a feature fusion does not read are dropped again by jit's dead-code pass.
        return self.logits_with_branches(inputs)[0]
