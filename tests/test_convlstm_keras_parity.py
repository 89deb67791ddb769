"""Our ConvLSTM2D against Keras 3's (jax backend) with the same random weights, to float32 rounding (<= 1e-5)."""

import os

# Keras reads the backend once, at import; the jax backend needs no TensorFlow installed.
os.environ["KERAS_BACKEND"] = "jax"

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from flax import nnx  # noqa: E402

from fer_jax.models.convlstm import ConvLSTM2D  # noqa: E402
from helpers.tolerance import assert_caught, rounding_tolerance  # noqa: E402

# Keras 3.15 converts its variables with a NumPy-1 style __array__; harmless here, just noisy.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

B, T, H, W, CIN, FILTERS = 2, 4, 9, 10, 3, 5
# float32 rounding of T chained steps, each summing a 3x3 window over the input's and the state's
# channels (72 terms). Scale 1: outputs are in (-1, 1), and a gate's slope times its pre-activation
# stays below 1 (z tanh'(z) <= 0.45, z sigmoid'(z) <= 0.23), so large pre-activations' rounding is
# damped. 8.1e-6: within the 1e-5 this layer has always been held to.
TOL = rounding_tolerance(terms=3 * 3 * (CIN + FILTERS), layers=T)
assert TOL <= 1e-5


def _rngs(seed=0):
    # rbg only because XLA compiles threefry draws slowly on small CPUs; the weights it draws are
    # overwritten (parity) or only compared with themselves (unroll).
    return nnx.Rngs(jax.random.key(seed, impl="rbg"))


def _keras_layer(kernel_size, padding, return_sequences, seed):
    # Zeros initializers only skip Keras's own (slow, QR-based) init: every weight is overwritten.
    layer = keras.layers.ConvLSTM2D(
        FILTERS, kernel_size, padding=padding, return_sequences=return_sequences,
        kernel_initializer="zeros", recurrent_initializer="zeros",
    )
    layer.build((None, T, H, W, CIN))
    # Fresh random weights, bias included: Keras's own init (zero bias, ones only for the forget
    # gate) would leave gate-order mistakes partly hidden. Scale 0.3 keeps the gates unsaturated
    # so every gate visibly moves the output.
    rng = np.random.default_rng(seed)
    layer.set_weights(
        [0.3 * rng.standard_normal(w.shape).astype(np.float32) for w in layer.get_weights()]
    )
    return layer


def _ours_from(layer, kernel_size, padding, return_sequences, gate_permutation=(0, 1, 2, 3), transpose=False):
    ours = ConvLSTM2D(
        CIN, FILTERS, kernel_size, padding=padding, return_sequences=return_sequences,
        rngs=_rngs(),
    )
    kernel, recurrent_kernel, bias = layer.get_weights()

    def permute(w):
        # Reorders the 4 gate blocks along the last axis; identity unless a test wants it wrong.
        w = np.concatenate([np.split(w, 4, axis=-1)[g] for g in gate_permutation], axis=-1)
        return w.swapaxes(0, 1) if transpose and w.ndim == 4 else w  # (kh, kw) swapped: a wrong layout

    ours.kernel[...] = jnp.asarray(permute(kernel))
    ours.recurrent_kernel[...] = jnp.asarray(permute(recurrent_kernel))
    ours.bias[...] = jnp.asarray(permute(bias))
    return ours


def _expected_shape(kernel_size, padding, return_sequences):
    kh, kw = kernel_size
    h, w = (H, W) if padding == "same" else (H - kh + 1, W - kw + 1)
    return (B, T, h, w, FILTERS) if return_sequences else (B, h, w, FILTERS)


CASES = [
    (kernel_size, padding, return_sequences)
    for kernel_size in [(3, 3), (2, 3)]  # even kh: 'same' must pad the same side Keras pads
    for padding in ["same", "valid"]
    for return_sequences in [False, True]
]


@pytest.mark.parametrize("case", range(len(CASES)), ids=[f"{k[0]}x{k[1]}-{p}-seq{r}" for k, p, r in CASES])
def test_matches_keras(case):
    kernel_size, padding, return_sequences = CASES[case]
    seed = 100 + case
    layer = _keras_layer(kernel_size, padding, return_sequences, seed)
    ours = _ours_from(layer, kernel_size, padding, return_sequences)
    x = np.random.default_rng(seed + 1).uniform(-1, 1, (B, T, H, W, CIN)).astype(np.float32)

    expected = np.asarray(layer(x))
    got = np.asarray(ours(jnp.asarray(x)))

    assert expected.shape == _expected_shape(kernel_size, padding, return_sequences)
    assert got.shape == expected.shape
    assert got.dtype == np.float32
    np.testing.assert_array_less(np.abs(got - expected).max(), TOL)
    # Non-trivial outputs: a layer that returned zeros would match nothing above anyway, but a
    # saturated one could match by accident.
    assert 0.05 < np.abs(expected).mean() < 0.95


def test_comparison_catches_wrong_gate_order_and_transposed_kernels():
    # Guards the parity test itself: loading the weights with any two gates swapped must break it.
    layer = _keras_layer((3, 3), "same", True, seed=7)
    x = np.random.default_rng(8).uniform(-1, 1, (B, T, H, W, CIN)).astype(np.float32)
    expected = np.asarray(layer(x))
    for swapped in [(1, 0, 2, 3), (0, 1, 3, 2), (2, 1, 0, 3), (0, 3, 2, 1)]:
        ours = _ours_from(layer, (3, 3), "same", True, swapped)
        assert_caught(ours(jnp.asarray(x)), expected, TOL, f"gates {swapped}", margin=100)
    # ...and so must spatially transposed kernels (kh and kw swapped, both square 3x3 here).
    assert_caught(_ours_from(layer, (3, 3), "same", True, transpose=True)(jnp.asarray(x)), expected, TOL,
                  "transposed kernels", margin=100)


def test_unroll_and_keras_init_layout():
    # unroll changes only how the scan is compiled (fusion, so float32 rounding), never the arithmetic.
    x = jnp.asarray(np.random.default_rng(0).uniform(0, 1, (B, T, H, W, CIN)), jnp.float32)
    base = ConvLSTM2D(CIN, FILTERS, 3, padding="same", rngs=_rngs(1))
    unrolled = ConvLSTM2D(CIN, FILTERS, 3, padding="same", unroll=T, rngs=_rngs(1))
    np.testing.assert_allclose(np.asarray(base(x)), np.asarray(unrolled(x)), atol=TOL)
    # Same parameter shapes as the Keras layer, and unit_forget_bias puts ones on the f slice only.
    layer = keras.layers.ConvLSTM2D(
        FILTERS, 3, padding="same", kernel_initializer="zeros", recurrent_initializer="zeros"
    )
    layer.build((None, T, H, W, CIN))
    assert [tuple(w.shape) for w in layer.get_weights()] == [
        base.kernel.shape, base.recurrent_kernel.shape, base.bias.shape
    ]
    np.testing.assert_array_equal(np.asarray(base.bias[...]), layer.get_weights()[2])


def test_bfloat16_compute_keeps_float32_params():
    # Mixed precision: convolutions in bfloat16, parameters (what the optimizer updates) in float32.
    x = jnp.asarray(np.random.default_rng(2).uniform(0, 1, (B, T, H, W, CIN)), jnp.float32)
    full = ConvLSTM2D(CIN, FILTERS, 3, padding="same", rngs=_rngs(3))
    half = ConvLSTM2D(CIN, FILTERS, 3, padding="same", dtype=jnp.bfloat16, rngs=_rngs(3))
    assert half.kernel.dtype == half.recurrent_kernel.dtype == half.bias.dtype == jnp.float32
    out = half(x)
    assert out.dtype == jnp.bfloat16
    # A coarse check with random weights: each step's gates carry the bfloat16 rounding of two
    # convolutions' operands and results (2**-8 relative, on sums of up to 72 terms), fed back
    # through the state for T steps; outputs are in (-1, 1). The state's own precision, which such
    # rounding would hide, is held exactly by the next test.
    np.testing.assert_allclose(np.asarray(out, np.float32), np.asarray(full(x)), atol=3e-2)


def test_bfloat16_keeps_the_cell_state_in_float32():
    """The cell state accumulates in float32 under bfloat16 compute.

    Weights and inputs are chosen so that every bfloat16 operation is exact: a 1x1 kernel of
    integers on inputs of 0 or 1, and no recurrent kernel (its input, the bfloat16-rounded hidden
    state, would round). Both layers then compute the same float32 gates bit for bit, and the
    bfloat16 layer's only rounding is its output's: half a unit in the last place, at most 2**-8 of
    the value. The first step writes c ~ 0.75; each later step adds i*g ~ 1.1e-3, below half an ulp
    of bfloat16 at 0.75 (2**-9 = 1.95e-3): a state rounded to bfloat16 at each step keeps none of
    the 15 increments (0.017 in c, 0.01 in h: 4x the tolerance).
    """
    steps = 16
    kernel = np.zeros((1, 1, 1, 4), np.float32)
    kernel[..., 0] = 12.0  # input gate: sigmoid(12 - 6.5) = 0.996 on the first frame, 1.5e-3 after
    bias = np.array([-6.5, 16.0, 1.0, 4.0], np.float32)  # i, f (= 1 in float32), g = tanh(1), o
    x = np.zeros((1, steps, 2, 2, 1), np.float32)
    x[:, 0] = 1.0
    layers = {}
    for dtype in (jnp.float32, jnp.bfloat16):
        layer = ConvLSTM2D(1, 1, 1, padding="same", dtype=dtype, rngs=_rngs(0))
        layer.kernel[...] = jnp.asarray(kernel)
        layer.recurrent_kernel[...] = jnp.zeros_like(layer.recurrent_kernel[...])
        layer.bias[...] = jnp.asarray(bias)
        layers[dtype] = np.asarray(layer(jnp.asarray(x)), np.float32)
    full, half = layers[jnp.float32], layers[jnp.bfloat16]
    assert 0.6 < full.min() <= full.max() < 0.7  # c ~ 0.77: tanh far from saturating
    np.testing.assert_allclose(half, full, rtol=2.0**-8, atol=0)
