"""Weight transfer into our NNX modules, checked against Keras 3 (jax backend) and PyTorch (CPU).

Every source layer gets fresh random weights (biases and batch-norm statistics included, so a
tensor copied to the wrong place or in the wrong layout shows); our module then must give the
source's outputs on random inputs to the float32 rounding of its layers and sums (helpers.tolerance),
and must miss them by far more with its largest parameter in a wrong layout.
"""

import os

os.environ["KERAS_BACKEND"] = "jax"  # Keras reads it once, at import

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from flax import nnx  # noqa: E402

from fer_jax.errors import FerJaxError  # noqa: E402
from fer_jax.models.mini_xception import SeparableConv2D  # noqa: E402
from fer_jax.models.transfer import (  # noqa: E402
    load_keras_weights,
    load_torch_state_dict,
    read_torch_state_dict,
)
from helpers.tolerance import assert_caught, assert_close, largest_param_flipped, output_tolerance  # noqa: E402

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation:DeprecationWarning",  # Keras 3.15 on NumPy 2, harmless
    "ignore:You are saving your model as an HDF5 file:UserWarning",
)

# Keras's random initialisers compile an eager jax.random draw per shape (slow on 2 cores); zeros
# are free, and every weight is overwritten anyway.
ZEROS = dict(kernel_initializer="zeros")


# Our modules get zeros too: an eager random draw compiles for seconds per shape here, and the
# transfer overwrites every weight (a weight it missed would stay zero and fail the comparison).
OURS_ZEROS = dict(kernel_init=nnx.initializers.zeros, rngs=nnx.Rngs(0))


def _randomize_keras(layer_or_model, seed):
    rng = np.random.default_rng(seed)
    for w in layer_or_model.weights:
        value = 0.5 * rng.standard_normal(tuple(w.shape)).astype(np.float32)
        w.assign(np.abs(value) + 0.5 if "variance" in w.path else value)  # variances stay positive


def _x(shape, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)


def _assert_transfers(module, forward, expected, *, terms, layers=1):
    """forward() (our `module` on the test input) gives `expected` to the float32 rounding of
    `layers` chained layers whose largest sums have `terms` terms (weights of std 0.5 on inputs in
    [-1, 1]: values O(1), so the scale is the output's, at least 1). With the module's largest
    parameter flipped along its first axis longer than 1 (a kernel upside down, as from confusing
    convolution with correlation; inputs or channels in reverse order), it must miss by far more."""
    expected = np.asarray(expected)
    tol = output_tolerance(expected, terms=terms, layers=layers)
    assert_close(forward(), expected, tol)
    with largest_param_flipped(module) as path:
        assert_caught(forward(), expected, tol, f"{path} in a wrong layout")
    return tol


# ----------------------------------------------------------------------------- Keras -> ours


@pytest.mark.parametrize("strides,padding", [(1, "same"), (2, "valid")])
def test_keras_conv2d(strides, padding):
    layer = keras.layers.Conv2D(6, (3, 2), strides=strides, padding=padding, name="conv", **ZEROS)
    layer.build((None, 9, 8, 3))
    _randomize_keras(layer, 1)
    ours = nnx.Conv(3, 6, (3, 2), strides=strides, padding=padding.upper(), **OURS_ZEROS)
    load_keras_weights(ours, layer, {"conv": ""})
    x = _x((2, 9, 8, 3))
    _assert_transfers(ours, lambda: ours(x), layer(x), terms=3 * 2 * 3)  # a (3, 2) window over 3 channels


def test_keras_separable_and_depthwise_conv2d():
    layer = keras.layers.SeparableConv2D(
        5, 3, padding="same", use_bias=True, name="sep",
        depthwise_initializer="zeros", pointwise_initializer="zeros",
    )
    layer.build((None, 7, 7, 4))
    _randomize_keras(layer, 2)
    ours = SeparableConv2D(4, 5, use_bias=True, **OURS_ZEROS)
    load_keras_weights(ours, layer, {"sep": ""})
    x = _x((2, 7, 7, 4))
    _assert_transfers(ours, lambda: ours(x), layer(x), terms=3 * 3, layers=2)  # depthwise 3x3, then pointwise over 4

    # Depth multiplier 2: Keras's (kh, kw, Cin, 2) must become a grouped conv's channel order.
    depthwise = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="dw",
                                             depthwise_initializer="zeros")
    depthwise.build((None, 7, 7, 4))
    _randomize_keras(depthwise, 3)
    ours = nnx.Conv(4, 8, (3, 3), padding="SAME", feature_group_count=4, **OURS_ZEROS)
    load_keras_weights(ours, depthwise, {"dw": ""})
    _assert_transfers(ours, lambda: ours(x), depthwise(x), terms=3 * 3)


def test_keras_batch_normalization_inference():
    layer = keras.layers.BatchNormalization(epsilon=1e-3, name="bn")
    layer.build((None, 5, 5, 6))
    _randomize_keras(layer, 4)
    assert np.all(layer.get_weights()[3] > 0)  # moving variance
    ours = nnx.BatchNorm(6, epsilon=1e-3, use_running_average=True, rngs=nnx.Rngs(0))
    load_keras_weights(ours, layer, {"bn": ""})
    x = _x((2, 5, 5, 6))
    _assert_transfers(ours, lambda: ours(x), layer(x, training=False), terms=4)  # no sums: 4 roundings a value


def test_keras_dense():
    layer = keras.layers.Dense(4, name="fc", **ZEROS)
    layer.build((None, 10))
    _randomize_keras(layer, 5)
    ours = nnx.Linear(10, 4, **OURS_ZEROS)
    load_keras_weights(ours, layer, {"fc": ""})
    x = _x((3, 10))
    _assert_transfers(ours, lambda: ours(x), layer(x), terms=10)


class _SmallNet(nnx.Module):
    """Conv -> BN -> ReLU -> SeparableConv -> MaxPool -> GAP -> Dense, like the Keras model below."""

    def __init__(self):
        self.stem = nnx.Conv(1, 8, (3, 3), padding="VALID", use_bias=False, **OURS_ZEROS)
        self.norm = nnx.BatchNorm(8, epsilon=1e-3, use_running_average=True, rngs=nnx.Rngs(0))
        self.sep = SeparableConv2D(8, 12, **OURS_ZEROS)
        self.fc = nnx.Linear(12, 7, **OURS_ZEROS)

    def __call__(self, x):
        x = nnx.relu(self.norm(self.stem(x)))
        x = nnx.max_pool(self.sep(x), (3, 3), strides=(2, 2), padding="SAME")
        return jax.nn.softmax(self.fc(x.mean(axis=(1, 2))))


def _small_keras_model():
    inputs = keras.Input((16, 16, 1))
    x = keras.layers.Conv2D(8, 3, use_bias=False, name="stem", **ZEROS)(inputs)
    x = keras.layers.BatchNormalization(name="norm")(x)
    x = keras.layers.Activation("relu")(x)
    x = keras.layers.SeparableConv2D(12, 3, padding="same", use_bias=False, name="sep",
                                     depthwise_initializer="zeros", pointwise_initializer="zeros")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(7, activation="softmax", name="fc", **ZEROS)(x)
    model = keras.Model(inputs, outputs)
    _randomize_keras(model, 6)
    return model


SMALL_MAPPING = {"stem": "stem", "norm": "norm", "sep": "sep", "fc": "fc"}


def test_keras_small_model():
    # (Legacy HDF5 files are read in tests/test_fer2013_astronaut.py, on a real Keras 2 file;
    # Keras 3 writes them only through TensorFlow, ~15 s to import here.)
    model = _small_keras_model()
    x = _x((4, 16, 16, 1), seed=7)
    ours = _SmallNet()
    load_keras_weights(ours, model, SMALL_MAPPING)
    # stem 3x3, BN, separable (3x3, then 8 channels), max pool, a mean over 7x7, dense over 12.
    expected = model.predict(x, verbose=0)
    tol = _assert_transfers(ours, lambda: ours(x), expected, terms=7 * 7, layers=5)
    ours.norm = lambda h: h  # a port that left the batch norm out fails the same comparison
    assert_caught(ours(x), expected, tol, "without its batch norm")


def test_keras_mapping_problems_are_all_reported():
    model = _small_keras_model()
    ours = _SmallNet()
    ours.fc = nnx.Linear(12, 5, **OURS_ZEROS)  # 5 classes where Keras has 7
    before = np.asarray(ours.stem.kernel[...])
    with pytest.raises(FerJaxError) as err:
        load_keras_weights(ours, model, {"stem": "stem", "nrom": "norm", "sep": "sepp", "fc": "fc"})
    message = str(err.value)
    assert "not in the source: nrom" in message
    assert "paths not in our model: sepp (for sep)" in message
    assert "fc.kernel (12, 7) -> fc.kernel (12, 5)" in message
    assert "missing from the mapping (map them, to None to skip): norm" in message
    np.testing.assert_array_equal(np.asarray(ours.stem.kernel[...]), before)  # nothing was written

    with pytest.raises(FerJaxError, match="written twice: stem.kernel"):
        load_keras_weights(ours, model, {"stem": "stem", "sep": "sep.pointwise", "fc": "stem"}, strict=False)
    # A parameter of ours that the source does not have: the Keras stem has no bias.
    with_bias = _SmallNet()
    with_bias.stem = nnx.Conv(1, 8, (3, 3), padding="VALID", use_bias=True, **OURS_ZEROS)
    with pytest.raises(FerJaxError, match=r"does not provide: stem\.bias"):
        load_keras_weights(with_bias, model, SMALL_MAPPING)
    # None skips a layer on purpose; strict=False tolerates unmapped ones.
    load_keras_weights(ours, model, {**SMALL_MAPPING, "fc": None})
    assert np.abs(np.asarray(ours.stem.kernel[...]) - before).max() > 0
    load_keras_weights(ours, model, {"stem": "stem"}, strict=False)


# ----------------------------------------------------------------------------- PyTorch -> ours


def _randomize_torch(module, seed):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if tensor.is_floating_point():
                value = torch.randn(tensor.shape, generator=generator) * 0.5
                tensor.copy_(value.abs() + 0.5 if "running_var" in name else value)
    return module.eval()


def _nchw(x):
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, -1, 1)))


def _nhwc(t):
    return np.moveaxis(t.detach().numpy(), 1, -1)


@pytest.mark.parametrize("groups", [1, 2])
def test_torch_conv2d(groups):
    conv = _randomize_torch(torch.nn.Conv2d(4, 6, (3, 2), stride=2, padding=1, groups=groups), 10)
    ours = nnx.Conv(
        4, 6, (3, 2), strides=2, padding=((1, 1), (1, 1)), feature_group_count=groups, **OURS_ZEROS
    )
    load_torch_state_dict(ours, conv.state_dict(), {"": ""})
    x = _x((2, 9, 8, 4))
    with torch.no_grad():
        expected = _nhwc(conv(_nchw(x)))
    _assert_transfers(ours, lambda: ours(x), expected, terms=3 * 2 * 4 // groups)


def test_torch_batchnorm2d_eval():
    bn = _randomize_torch(torch.nn.BatchNorm2d(6), 11)
    ours = nnx.BatchNorm(6, epsilon=1e-5, use_running_average=True, rngs=nnx.Rngs(0))
    load_torch_state_dict(ours, bn, {"": ""})  # an nn.Module works too
    x = _x((2, 5, 5, 6))
    with torch.no_grad():
        expected = _nhwc(bn(_nchw(x)))
    _assert_transfers(ours, lambda: ours(x), expected, terms=4)  # no sums: 4 roundings a value


def test_torch_linear():
    fc = _randomize_torch(torch.nn.Linear(10, 4), 12)
    ours = nnx.Linear(10, 4, **OURS_ZEROS)
    load_torch_state_dict(ours, fc.state_dict(), {"": ""})
    x = _x((3, 10))
    with torch.no_grad():
        expected = fc(torch.from_numpy(x)).numpy()
    _assert_transfers(ours, lambda: ours(x), expected, terms=10)


@pytest.mark.parametrize("cell", [nnx.OptimizedLSTMCell, nnx.LSTMCell])
def test_torch_two_layer_lstm(cell):
    lstm = _randomize_torch(torch.nn.LSTM(5, 6, num_layers=2, batch_first=True), 13)
    assert set(read_torch_state_dict(lstm)) == {"", "l1"}  # layer 0 under its prefix, layer 1 as "l1"
    zeros = dict(
        kernel_init=nnx.initializers.zeros, recurrent_kernel_init=nnx.initializers.zeros, rngs=nnx.Rngs(0)
    )
    layers = nnx.List([nnx.RNN(cell(5, 6, **zeros)), nnx.RNN(cell(6, 6, **zeros))])
    load_torch_state_dict(layers, lstm, {"": "0", "l1": "1"})
    x = _x((2, 7, 5))
    with torch.no_grad():
        expected = lstm(torch.from_numpy(x))[0].numpy()
    # 2 layers x 7 steps, each summing 5 or 6 inputs and 6 recurrent terms per gate.
    _assert_transfers(layers, lambda: layers[1](layers[0](jnp.asarray(x))), expected, terms=12, layers=14)


class _TorchSmallNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(1, 8, 3, bias=False), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
            torch.nn.Conv2d(8, 12, 3, stride=2, padding=1),
        )
        self.classifier = torch.nn.Linear(12, 7)

    def forward(self, x):
        return self.classifier(self.features(x).mean(dim=(2, 3)))


class _OurTorchSmallNet(nnx.Module):
    def __init__(self):
        self.conv1 = nnx.Conv(1, 8, (3, 3), padding="VALID", use_bias=False, **OURS_ZEROS)
        self.bn = nnx.BatchNorm(8, use_running_average=True, rngs=nnx.Rngs(0))
        self.conv2 = nnx.Conv(8, 12, (3, 3), strides=2, padding=((1, 1), (1, 1)), **OURS_ZEROS)
        self.head = nnx.Linear(12, 7, **OURS_ZEROS)

    def __call__(self, x):
        x = self.conv2(nnx.relu(self.bn(self.conv1(x))))
        return self.head(x.mean(axis=(1, 2)))


def test_torch_small_cnn_from_a_pt_file(tmp_path):
    net = _randomize_torch(_TorchSmallNet(), 14)
    path = tmp_path / "small.pt"
    torch.save({"state_dict": net.state_dict(), "epoch": 3}, path)  # a typical training checkpoint
    ours = _OurTorchSmallNet()
    load_torch_state_dict(
        ours, path, {"features.0": "conv1", "features.1": "bn", "features.3": "conv2", "classifier": "head"}
    )
    x = _x((3, 12, 12, 1), seed=15)
    with torch.no_grad():
        expected = net(_nchw(x)).numpy()
    # conv 3x3, BN, conv 3x3 over 8 channels (72 terms), a mean over 5x5, dense over 12.
    tol = _assert_transfers(ours, lambda: ours(x), expected, terms=72, layers=4)
    ours.bn = lambda h: h  # a port that left the batch norm out fails the same comparison
    assert_caught(ours(x), expected, tol, "without its batch norm")

    with pytest.raises(FerJaxError, match="missing from the mapping.*classifier"):
        load_torch_state_dict(_OurTorchSmallNet(), net, {"features.0": "conv1"})
    with pytest.raises(FerJaxError, match=r"features\.1\.running_mean -> head\.mean \(no such parameter\)"):
        load_torch_state_dict(_OurTorchSmallNet(), net, {"features.1": "head"}, strict=False)
