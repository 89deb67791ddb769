"""The fast layers equal XLA's plain convolution and pooling."""

import jax
import numpy as np
import pytest
from flax import nnx

from fer_jax.models.layers import conv3d_same_by_taps, max_pool_valid


def test_conv3d_by_taps_equals_lax_conv():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 9, 8, 2)).astype(np.float32)
    kernel = rng.normal(size=(3, 3, 3, 2, 4)).astype(np.float32)
    ref = jax.lax.conv_general_dilated(x, kernel, (1, 1, 1), "SAME", dimension_numbers=("NDHWC", "DHWIO", "NDHWC"))
    np.testing.assert_allclose(conv3d_same_by_taps(x, kernel), ref, atol=1e-5)  # float32 sums of 54 terms
    grad = jax.grad(lambda k: (conv3d_same_by_taps(x, k) ** 2).sum())(kernel)
    grad_ref = jax.grad(lambda k: (jax.lax.conv_general_dilated(
        x, k, (1, 1, 1), "SAME", dimension_numbers=("NDHWC", "DHWIO", "NDHWC")) ** 2).sum())(kernel)
    np.testing.assert_allclose(grad, grad_ref, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("window", [(1, 2, 2), (2, 2, 2), (2, 3, 2)])
def test_max_pool_valid_equals_flax(window):
    x = np.random.default_rng(1).normal(size=(2, 5, 9, 8, 3)).astype(np.float32)  # remainders on purpose
    np.testing.assert_array_equal(max_pool_valid(x, window), nnx.max_pool(x, window, strides=window, padding="VALID"))
