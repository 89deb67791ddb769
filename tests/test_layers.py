"""The fast layers equal XLA's plain convolution and pooling."""

import jax
import numpy as np
import pytest
from flax import nnx

from fer_jax.models.layers import (
    conv2d_by_matmul,
    conv3d_same,
    conv3d_same_by_matmul,
    conv3d_same_by_columns,
    lax_convolutions,
    max_pool_valid,
    standardize_clips,
)
from helpers.tolerance import assert_caught, assert_close, output_tolerance


def test_conv3d_by_columns_in_bfloat16_accumulates_in_float32():
    """bfloat16 operands, float32 sums: the output and the kernel gradient are the float64 results on
    the same bfloat16 numbers rounded once to bfloat16 (relative error <= 2^-8), and the float32
    bias's gradient, a sum over 32768 positions, is exact to float32. (With the 27 partial sums
    rounded to bfloat16, outputs where the taps cancel were off by up to 9x their own size.)"""
    rng = np.random.default_rng(0)
    bf16, f32 = jax.numpy.bfloat16, np.float32
    x = rng.normal(size=(4, 8, 32, 32, 1)).astype(bf16)
    kernel = (rng.normal(size=(3, 3, 3, 1, 8)) / 5).astype(bf16)
    cotangent = rng.normal(size=(4, 8, 32, 32, 8)).astype(bf16).astype(f32)  # bfloat16 values
    x64, kernel64, cotangent64 = (np.asarray(a, np.float64) for a in (x, kernel, cotangent))
    dn = ("NDHWC", "DHWIO", "NDHWC")
    with jax.enable_x64(True):
        ref = np.asarray(jax.lax.conv_general_dilated(x64, kernel64, (1, 1, 1), "SAME", dimension_numbers=dn))
        kernel_grad_ref = np.asarray(jax.grad(lambda k: (jax.lax.conv_general_dilated(
            x64, k, (1, 1, 1), "SAME", dimension_numbers=dn) * cotangent64).sum())(kernel64))

    out = jax.jit(conv3d_same_by_columns)(x, kernel)
    assert out.dtype == bf16
    np.testing.assert_allclose(np.asarray(out, np.float64), ref, rtol=2**-8, atol=1e-5)
    grads = jax.jit(jax.grad(lambda k, b: (conv3d_same_by_columns(x, k, b).astype(f32) * cotangent).sum(),
                             argnums=(0, 1)))(kernel, np.zeros(8, f32))
    assert grads[0].dtype == bf16 and grads[1].dtype == f32
    np.testing.assert_allclose(np.asarray(grads[0], np.float64), kernel_grad_ref, rtol=2**-8, atol=1e-3)
    np.testing.assert_allclose(grads[1], cotangent64.sum(axis=(0, 1, 2, 3)), rtol=1e-5, atol=1e-3)


DN3 = ("NDHWC", "DHWIO", "NDHWC")


def _lax_conv3d(x, kernel):
    return jax.lax.conv_general_dilated(x, kernel, (1, 1, 1), "SAME", dimension_numbers=DN3)


@pytest.mark.parametrize("formulation, cin", [(conv3d_same_by_columns, 1), (conv3d_same_by_columns, 3),
                                               (conv3d_same_by_matmul, 6)])
def test_fast_conv3d_and_both_its_gradients_equal_float64_convolution(formulation, cin):
    """Forward, input gradient and kernel gradient of each formulation against XLA's plain 3D
    convolution (and its autodiff) in float64. A (3, 3, 5) kernel on (T, H, W) = (5, 6, 7) checks
    'SAME' padding at every edge and that no axis of the kernel is confused with another."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 6, 7, cin)).astype(np.float32)
    kernel = rng.normal(size=(3, 3, 5, cin, 4)).astype(np.float32)
    cotangent = rng.normal(size=(2, 5, 6, 7, 4)).astype(np.float32)
    with jax.enable_x64(True):
        x64, k64, c64 = (np.asarray(a, np.float64) for a in (x, kernel, cotangent))
        ref, ref_vjp = jax.vjp(_lax_conv3d, x64, k64)
        ref_dx, ref_dk = ref_vjp(c64)
    out, vjp = jax.vjp(lambda x, k: formulation(x, k), x, kernel)
    dx, dk = vjp(cotangent)
    taps = 3 * 3 * 5 * cin
    tol = output_tolerance(ref, terms=taps)  # each output sums taps * cin products of N(0, 1) numbers
    assert_close(out, ref, tol, "forward")
    assert_caught(formulation(x, kernel[::-1]), ref, tol, "kernel flipped in time")
    assert_caught(formulation(x, kernel[:, ::-1]), ref, tol, "kernel flipped in height")
    # d x sums kernel taps * Cout products; d kernel sums over the 2*5*6*7 = 420 output positions.
    assert_close(dx, ref_dx, output_tolerance(ref_dx, terms=taps * 4 // cin), "input gradient")
    assert_close(dk, ref_dk, output_tolerance(ref_dk, terms=420), "kernel gradient")


@pytest.mark.parametrize("padding, kernel_hw", [("SAME", (3, 3)), ("SAME", (2, 4)), ("VALID", (3, 2))])
def test_conv2d_by_matmul_equals_float64_lax_convolution(padding, kernel_hw):
    """Including an even kernel under 'SAME', whose extra padding row and column lax puts at the end."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 7, 6, 5)).astype(np.float32)
    kernel = rng.normal(size=(*kernel_hw, 5, 4)).astype(np.float32)
    with jax.enable_x64(True):
        ref = np.asarray(jax.lax.conv_general_dilated(
            np.asarray(x, np.float64), np.asarray(kernel, np.float64), (1, 1), padding,
            dimension_numbers=("NHWC", "HWIO", "NHWC")))
    tol = output_tolerance(ref, terms=kernel_hw[0] * kernel_hw[1] * 5)
    assert_close(conv2d_by_matmul(x, kernel, padding), ref, tol)
    assert_caught(conv2d_by_matmul(x, kernel[::-1], padding), ref, tol, "kernel upside down")


def test_lax_convolutions_inside_the_block_and_matrix_products_on_cpu_outside():
    """Exporters (ONNX) get lax convolutions, which they map to their Conv operator; CPU training
    gets the matrix products; both compute the same convolution."""
    x = np.random.default_rng(3).normal(size=(1, 3, 4, 4, 6)).astype(np.float32)
    kernel = np.random.default_rng(4).normal(size=(3, 3, 3, 6, 2)).astype(np.float32)

    def primitives():  # a fresh function each time: make_jaxpr caches traces by function
        return {e.primitive.name for e in jax.make_jaxpr(lambda x, k: conv3d_same(x, k))(x, kernel).jaxpr.eqns}

    assert jax.default_backend() != "cpu" or "conv_general_dilated" not in primitives()
    with lax_convolutions():
        assert "conv_general_dilated" in primitives()
        inside = conv3d_same(x, kernel)
    assert_close(inside, conv3d_same(x, kernel), output_tolerance(inside, terms=3 * 3 * 3 * 6))


def test_conv3d_same_chooses_by_input_channels_and_adds_the_bias_in_float32():
    rng = np.random.default_rng(1)
    bias = rng.normal(size=(4,)).astype(np.float32)
    for cin in (1, 5):
        x = rng.normal(size=(1, 3, 4, 4, cin)).astype(np.float32)
        kernel = rng.normal(size=(3, 3, 3, cin, 4)).astype(np.float32)
        ref = np.asarray(_lax_conv3d(x, kernel)) + bias
        out = conv3d_same(x.astype(jax.numpy.bfloat16), kernel.astype(jax.numpy.bfloat16), bias)
        assert out.dtype == jax.numpy.bfloat16
        # bfloat16 inputs (relative rounding 2^-8 each), float32 sums, one rounding of the result.
        scale = float(np.abs(x).max() * np.abs(kernel).max() * 27 * cin + np.abs(bias).max())
        assert_close(np.asarray(out, np.float32), ref, 3 * 2.0**-8 * scale, f"cin={cin}")


def test_standardize_clips_equals_float64_per_clip_moments_over_real_frames():
    rng = np.random.default_rng(2)
    x = (rng.uniform(size=(3, 5, 4, 4, 3)) * rng.uniform(0.2, 3, size=(3, 1, 1, 1, 1))).astype(np.float32)
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]], bool)
    x[~mask] = 7.0  # padding a clip's moments must not see
    for m in (None, mask):
        out = np.asarray(standardize_clips(x, m), np.float64)
        for b in range(3):
            real = x[b].astype(np.float64) if m is None else x[b][m[b]].astype(np.float64)
            expected = (real - real.mean()) / np.sqrt(real.var() + 1e-6)
            got = out[b] if m is None else out[b][m[b]]
            # float32 sums of <= 240 values of magnitude <= 3, then a few float32 operations: 2^-24
            # relative per operation, grown by the count of summed terms, on results of magnitude <= 4.
            assert_close(got, expected, 240 * 2.0**-24 * 16, f"clip {b}, mask={m is not None}")
            if m is not None:
                assert not out[b][~m[b]].any(), "padded frames come out as zeros"


@pytest.mark.parametrize("window", [(1, 2, 2), (2, 2, 2), (2, 3, 2), (4, 8, 5)])
def test_max_pool_valid_and_its_gradient_equal_flax(window):
    """Forward and gradient against flax's `reduce_window` pooling (whose gradient XLA computes):
    random values, so no window has two maxima; remainders on every pooled axis. The last window
    has 160 positions, more than an int8 offset can count."""
    x = np.random.default_rng(1).normal(size=(2, 5, 9, 8, 3)).astype(np.float32)
    pooled_shape = (2, *(d // k for d, k in zip(x.shape[1:4], window)), 3)
    cotangent = np.random.default_rng(2).normal(size=pooled_shape).astype(np.float32)
    out, vjp = jax.vjp(lambda x: max_pool_valid(x, window), x)
    ref, ref_vjp = jax.vjp(lambda x: nnx.max_pool(x, window, strides=window, padding="VALID"), x)
    np.testing.assert_array_equal(out, ref)
    # Each input's gradient is one cotangent value or zero: exact.
    np.testing.assert_array_equal(vjp(cotangent)[0], ref_vjp(cotangent)[0])


def test_max_pool_valid_gives_a_tied_window_s_gradient_to_its_first_maximum():
    """Where a window's maximum occurs more than once (a flat region: padded frames, a constant
    background), the whole gradient goes to its first occurrence in window order, as PyTorch's
    max_pool3d gives it: not split, and not given to every copy, which would multiply it."""
    x = np.zeros((1, 2, 2, 4, 1), np.float32)  # two 2x2x2 windows along the width
    x[0, :, :, 2:, 0] = [[[1.0, 1.0], [1.0, 1.0]], [[0.5, 2.0], [2.0, 2.0]]]  # window 2: max 2, three times
    weights = np.array([3.0, 5.0], np.float32)
    grad = np.asarray(jax.grad(lambda x: (max_pool_valid(x, (2, 2, 2)).reshape(-1) * weights).sum())(x))
    expected = np.zeros_like(x)
    expected[0, 0, 0, 0, 0] = 3.0  # window 1, all zeros: (t, h, w) = (0, 0, 0)
    expected[0, 1, 0, 3, 0] = 5.0  # window 2: the first 2 in (t, h, w) order is at (1, 0, 1)
    np.testing.assert_array_equal(grad, expected)
    torch = pytest.importorskip("torch")
    clips = torch.tensor(x).permute(0, 4, 1, 2, 3).requires_grad_(True)  # (N, C, T, H, W)
    (torch.nn.functional.max_pool3d(clips, (2, 2, 2)).reshape(-1) * torch.tensor(weights)).sum().backward()
    np.testing.assert_array_equal(clips.grad.permute(0, 2, 3, 4, 1).numpy(), expected)
