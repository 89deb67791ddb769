"""Small layers written for speed where XLA's generic lowering is slow, each equal to the plain one.

Measured on a 2-core CPU (batch 32, 8x64x64 clips, forward + backward): a 3x3x3 convolution from
one input channel took 8.7 s through `lax.conv_general_dilated` and 1.6 s as a sum over its 27
taps; 2x2 max pooling took 1.0 s through `reduce_window` and 0.37 s as a reshape and a max.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp


def conv3d_same_by_taps(
    x: jax.Array, kernel: jax.Array, bias: jax.Array | None = None, *, out_dtype=None
) -> jax.Array:
    """A stride-1 'SAME' 3D convolution as a sum of shifted inputs times each kernel tap.

    x: (B, T, H, W, Cin); kernel: (kt, kh, kw, Cin, Cout) with odd sizes; bias: (Cout,) or None
    -> (B, T, H, W, Cout) in `out_dtype` (default: x's dtype).
    Worth it when Cin is tiny (a grayscale input): then the generic convolution uses the machine
    badly, while this is a handful of fused multiply-adds per output.

    The arithmetic runs in float32 whatever the dtypes of x and kernel, and the result is cast to
    `out_dtype` once, after the bias. In bfloat16 each of the 27 partial sums would be rounded to 8
    bits, and so would the backward pass's sum over every output position for the bias's gradient
    (XLA rounds a bfloat16 reduction's accumulator at every add): in the demo model this layer's
    bias gradient came out 14-34% off its float32 value, its kernel's 7-17%. Products of bfloat16
    numbers are exact in float32, so this is the convolution of the bfloat16 operands accumulated
    in float32, as a library convolution does it; with one input channel the float32 work is cheap.
    """
    out_dtype = x.dtype if out_dtype is None else out_dtype
    kt, kh, kw, _, _ = kernel.shape
    _, t, h, w, _ = x.shape
    x, kernel = x.astype(jnp.float32), kernel.astype(jnp.float32)
    padded = jnp.pad(x, ((0, 0), (kt // 2, kt // 2), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
    out = None
    for a, b, c in itertools.product(range(kt), range(kh), range(kw)):
        term = padded[:, a : a + t, b : b + h, c : c + w, :] @ kernel[a, b, c]
        out = term if out is None else out + term
    if bias is not None:
        out = out + bias.astype(jnp.float32)
    return out.astype(out_dtype)


def max_pool_valid(x: jax.Array, window) -> jax.Array:
    """Non-overlapping max pooling (stride = window, 'VALID', like Keras' MaxPooling3D) over the
    spatial/temporal axes of x (B, *dims, C): a trailing remainder is dropped, as 'VALID' does."""
    dims = x.shape[1:-1]
    kept = tuple(d // k * k for d, k in zip(dims, window))
    x = x[(slice(None), *(slice(0, k) for k in kept), slice(None))]
    split = [x.shape[0]]
    for d, k in zip(kept, window):
        split += [d // k, k]
    x = x.reshape(*split, x.shape[-1])
    return x.max(axis=tuple(2 + 2 * i for i in range(len(window))))
