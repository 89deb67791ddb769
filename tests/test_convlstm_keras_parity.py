"""Our ConvLSTM2D against Keras 3's (jax backend) with the same random weights: max |diff| <= 1e-5 (f32)."""

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

# Keras 3.15 converts its variables with a NumPy-1 style __array__; harmless here, just noisy.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

TOL = 1e-5
B, T, H, W, CIN, FILTERS = 2, 4, 9, 10, 3, 5


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


def _ours_from(layer, kernel_size, padding, return_sequences, gate_permutation=(0, 1, 2, 3)):
    ours = ConvLSTM2D(
        CIN, FILTERS, kernel_size, padding=padding, return_sequences=return_sequences,
        rngs=_rngs(),
    )
    kernel, recurrent_kernel, bias = layer.get_weights()

    def permute(w):
        # Reorders the 4 gate blocks along the last axis; identity unless a test wants it wrong.
        return np.concatenate([np.split(w, 4, axis=-1)[g] for g in gate_permutation], axis=-1)

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


def test_comparison_catches_wrong_gate_order():
    # Guards the parity test itself: loading the weights with any two gates swapped must break it.
    layer = _keras_layer((3, 3), "same", True, seed=7)
    x = np.random.default_rng(8).uniform(-1, 1, (B, T, H, W, CIN)).astype(np.float32)
    expected = np.asarray(layer(x))
    for swapped in [(1, 0, 2, 3), (0, 1, 3, 2), (2, 1, 0, 3), (0, 3, 2, 1)]:
        ours = _ours_from(layer, (3, 3), "same", True, swapped)
        assert np.abs(np.asarray(ours(jnp.asarray(x))) - expected).max() > 100 * TOL, swapped


def test_unroll_and_keras_init_layout():
    # unroll changes only how the scan is compiled, never the numbers.
    x = jnp.asarray(np.random.default_rng(0).uniform(0, 1, (B, T, H, W, CIN)), jnp.float32)
    base = ConvLSTM2D(CIN, FILTERS, 3, padding="same", rngs=_rngs(1))
    unrolled = ConvLSTM2D(CIN, FILTERS, 3, padding="same", unroll=T, rngs=_rngs(1))
    np.testing.assert_allclose(np.asarray(base(x)), np.asarray(unrolled(x)), atol=1e-6)
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
    # bfloat16 keeps ~3 significant digits; outputs are in (-1, 1).
    np.testing.assert_allclose(np.asarray(out, np.float32), np.asarray(full(x)), atol=3e-2)
