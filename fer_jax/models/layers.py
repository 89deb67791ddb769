"""Small layers written for speed where XLA's generic lowering is slow, each equal to the plain one.

Why (measured on this project's 2-core CPU, XLA:CPU of jax 0.10, fer-jax's 3D-CNN + ConvLSTM at
batch 32): XLA:CPU runs `lax.conv_general_dilated` on one thread. A 3D one goes through Eigen and
is slow (a 3x3x3 convolution, 32 -> 32 channels on 32x8x32x32, forward + backward: 1.2 s), while
its matrix products run on every core near the machine's peak (about 200 GFLOP/s on 2 cores). So
the 3D convolutions here are written as matrix products over gathered taps, and the pooling's
backward pass by hand; PyTorch's oneDNN convolution is the bar (see BENCHMARKS.md for the
figures and `fer-jax bench --against torch`). A 2D one goes through YNNPACK at about one core's
matrix-product speed, in the forward pass and for the input gradient, so with one device per core
it is as fast as the gathered product without the gather; but folding a 3D convolution's temporal
taps into one lost in the whole step (BENCHMARKS.md, `benchmarks/conv2d_forms.py`).

Every function keeps the Keras/Flax kernel layout (kt, kh, kw, Cin, Cout), so weights load as before.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import itertools
import math

import jax
import jax.numpy as jnp
from flax import nnx
from flax.nnx.nn import dtypes as nnx_dtypes

# Up to this many input channels (grey or RGB frames: a first layer) a 3D convolution gathers all
# its taps (`conv3d_same_by_columns`); with more, only the spatial ones (`conv3d_same_by_matmul`),
# since a full gather would be kt times larger again and the input gradient scatters it back.
COLUMNS_MAX_IN_CHANNELS = 3

# The name scope of every convolution's matrix product, so a program's convolutions can be found in
# its jaxpr or profile (tests check their operand dtypes under bf16).
MATMUL_CONV_SCOPE = "conv_by_matmul"

# Whether convolutions run as lax convolutions rather than as matrix products (see `use_matmul`).
_LAX_CONVOLUTIONS = contextvars.ContextVar("fer_jax_lax_convolutions", default=False)


@contextlib.contextmanager
def lax_convolutions():
    """Within the block, convolutions are traced as `lax.conv_general_dilated` whatever the backend:
    for exporters that map convolutions to their own operator (ONNX's Conv)."""
    token = _LAX_CONVOLUTIONS.set(True)
    try:
        yield
    finally:
        _LAX_CONVOLUTIONS.reset(token)


def use_matmul() -> bool:
    """Matrix-product convolutions on CPU, where XLA runs its own convolutions on one thread;
    elsewhere (cuDNN on GPUs, the TPU's convolution units) the library convolution, as measured in
    BENCHMARKS.md's H100 rows."""
    return not _LAX_CONVOLUTIONS.get() and jax.default_backend() == "cpu"


def standardize_clips(x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """Each clip of x (B, T, ...) to zero mean and unit variance over all its values, in float32: a
    clip's brightness and contrast (the camera's, the scene's) then need not be learned away, which
    speeds up training on small corpora. With `mask` (B, T), only the real frames count, and padded
    frames come out as zeros."""
    x = x.astype(jnp.float32)
    axes = tuple(range(1, x.ndim))
    if mask is None:
        mean = x.mean(axis=axes, keepdims=True)
        return (x - mean) * jax.lax.rsqrt(x.var(axis=axes, keepdims=True) + 1e-6)
    weight = mask.reshape(mask.shape + (1,) * (x.ndim - 2)).astype(jnp.float32)
    count = jnp.maximum(weight.sum(axis=axes, keepdims=True) * (x[0, 0].size), 1.0)
    mean = (x * weight).sum(axis=axes, keepdims=True) / count
    var = (((x - mean) * weight) ** 2).sum(axis=axes, keepdims=True) / count
    return (x - mean) * jax.lax.rsqrt(var + 1e-6) * weight


def conv3d_same(x: jax.Array, kernel: jax.Array, bias: jax.Array | None = None, *, out_dtype=None) -> jax.Array:
    """A stride-1 'SAME' 3D convolution, the fastest formulation for its input channels.

    x: (B, T, H, W, Cin); kernel: (kt, kh, kw, Cin, Cout) with odd sizes; bias: (Cout,) or None
    -> (B, T, H, W, Cout) in `out_dtype` (default: x's dtype). Products are accumulated in float32
    and the bias is added in float32 before the one rounding to `out_dtype`: in bfloat16 a bias
    added in bfloat16 would have its gradient (a sum over every output position) accumulated in
    bfloat16, which left the demo model's bias gradients 4-34% off their float32 values.
    """
    if use_matmul():
        by_columns = kernel.shape[3] <= COLUMNS_MAX_IN_CHANNELS
        return (conv3d_same_by_columns if by_columns else conv3d_same_by_matmul)(x, kernel, bias, out_dtype=out_dtype)
    y = jax.lax.conv_general_dilated(x, kernel.astype(x.dtype), (1, 1, 1), "SAME",
                                     dimension_numbers=("NDHWC", "DHWIO", "NDHWC"))
    return _plus_bias(y, bias, x.dtype if out_dtype is None else out_dtype)


class Conv(nnx.Conv):
    """`nnx.Conv` with the bias added in float32 and the sum rounded once to the layer's dtype, as
    in `conv3d_same` (why: its docstring): the same parameters, a drop-in for the models' layers."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, promote_dtype=_promote_keeping_bias_float32, **kwargs)

    def __call__(self, x: jax.Array) -> jax.Array:
        y = super().__call__(x)  # a bfloat16 convolution plus a float32 bias: float32
        return y if self.dtype is None else y.astype(self.dtype)


def _promote_keeping_bias_float32(args, /, *, dtype=None, inexact=True):
    """nnx.Conv's dtype promotion of (inputs, kernel, bias), the bias kept in float32."""
    inputs, kernel, bias = args
    inputs, kernel = nnx_dtypes.promote_dtype((inputs, kernel), dtype=dtype, inexact=inexact)
    return inputs, kernel, None if bias is None else bias.astype(jnp.float32)


def _plus_bias(y: jax.Array, bias: jax.Array | None, out_dtype) -> jax.Array:
    """y + bias, added in float32, rounded once to `out_dtype` (why: `conv3d_same`)."""
    y = y.astype(jnp.float32)
    return (y if bias is None else y + bias.astype(jnp.float32)).astype(out_dtype)


def conv3d_same_by_columns(
    x: jax.Array, kernel: jax.Array, bias: jax.Array | None = None, *, out_dtype=None
) -> jax.Array:
    """`conv3d_same` as one matrix product over all kt*kh*kw taps gathered (full im2col), for the few
    input channels of a network's first layer (grey or RGB frames).

    The columns are laid out taps-and-channels first, positions last: (kt*kh*kw*Cin, B*T*H*W).
    Each tap is then one contiguous copy of a shifted input, where the positions-first layout
    interleaves Cin values at a time (with one channel, its gather took 45 ms of a 178 ms layer
    here), and the product contracts the leading axis. A first layer needs no input gradient, so
    its backward pass is one more product, the kernel's gradient. Measured for batch 32 of
    8x64x64, ReLU and pooling included, forward + kernel gradient, on 2 cores: one channel 124 ms
    (the sum of 27 shifted inputs this replaced: 153-170 ms); three channels 92 ms (the
    spatial-taps product of `conv3d_same_by_matmul`: 158 ms).
    Operands stay in x's dtype and the product accumulates in float32, as in `conv3d_same_by_matmul`.
    """
    out_dtype = x.dtype if out_dtype is None else out_dtype
    kt, kh, kw, cin, cout = kernel.shape
    b, t, h, w, _ = x.shape
    channels_first = jnp.moveaxis(x, -1, 0)  # (Cin, B, T, H, W): each shifted copy is contiguous
    padded = jnp.pad(channels_first, ((0, 0), (0, 0), (kt // 2, kt // 2), (kh // 2, kh // 2), (kw // 2, kw // 2)))
    columns = jnp.stack([padded[:, :, a : a + t, i : i + h, j : j + w]
                         for a, i, j in itertools.product(range(kt), range(kh), range(kw))])
    with jax.named_scope(MATMUL_CONV_SCOPE):
        out = _columns_product(columns.reshape(kt * kh * kw * cin, -1),
                               kernel.astype(x.dtype).reshape(kt * kh * kw * cin, cout))
    return _plus_bias(out.reshape(b, t, h, w, cout), bias, out_dtype)


@jax.custom_vjp
def _columns_product(columns: jax.Array, weights: jax.Array) -> jax.Array:
    """columns (K, P) and weights (K, Cout) -> (P, Cout): the product over K. Its gradients are
    written as plain (rows, inner) @ (inner, columns) products: autodiff's transposed form of the
    weights' gradient ran as (Cout, P) @ (P, K) at a sixth of the speed (28 ms of a step here)."""
    return jax.lax.dot_general(columns, weights, (((0,), (0,)), ((), ())))


def _columns_product_fwd(columns, weights):
    return _columns_product(columns, weights), (columns, weights)


def _columns_product_bwd(residuals, cotangent):
    columns, weights = residuals
    d_weights = jnp.dot(columns, cotangent.astype(columns.dtype)).astype(weights.dtype)
    d_columns = jnp.dot(weights, cotangent.astype(weights.dtype).T).astype(columns.dtype)
    return d_columns, d_weights


_columns_product.defvjp(_columns_product_fwd, _columns_product_bwd)


def conv3d_same_by_matmul(
    x: jax.Array, kernel: jax.Array, bias: jax.Array | None = None, *, out_dtype=None
) -> jax.Array:
    """`conv3d_same` as one matrix product: the kh*kw spatial taps gathered into the inner dimension
    (im2col over space), the kt temporal taps as kt blocks of output channels, each block then
    added at its own time offset.

    Gathering only the spatial taps keeps the gathered copy at kh*kw times the input (the full
    3D im2col would be kt times larger again), and the product (B*T*H*W, kh*kw*Cin) @
    (kh*kw*Cin, kt*Cout) has the same FLOPs as the convolution. Autodiff of this is again two
    products of the same size and a scatter of the gathered taps, all multi-threaded.
    Operands stay in x's dtype; the products accumulate in float32, and the temporal blocks and the
    bias are added in float32.
    """
    out_dtype = x.dtype if out_dtype is None else out_dtype
    kt, kh, kw, cin, cout = kernel.shape
    b, t, h, w, _ = x.shape
    padded = jnp.pad(x, ((0, 0), (0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
    columns = _spatial_taps(padded, kh, kw, h, w)
    # (kt, kh, kw, Cin, Cout) -> (kh * kw * Cin, kt * Cout): rows in the order the columns were gathered.
    weights = kernel.astype(x.dtype).transpose(1, 2, 3, 0, 4).reshape(kh * kw * cin, kt * cout)
    # The product comes out in x's dtype (accumulated in float32, as XLA does for bfloat16), so that
    # its cotangent, and with it the backward products, stay in x's dtype too.
    with jax.named_scope(MATMUL_CONV_SCOPE):
        blocks = jnp.dot(columns.reshape(-1, kh * kw * cin), weights)
    blocks = blocks.reshape(b, t, h, w, kt, cout).astype(jnp.float32)
    # Output frame s takes temporal tap a from input frame s + a - kt // 2 ('SAME' zero padding).
    padded_blocks = jnp.pad(blocks, ((0, 0), (kt // 2, kt // 2), (0, 0), (0, 0), (0, 0), (0, 0)))
    out = sum(padded_blocks[:, a : a + t, :, :, a, :] for a in range(kt))
    return _plus_bias(out, bias, out_dtype)


def conv2d(x: jax.Array, kernel: jax.Array, padding: str) -> jax.Array:
    """A stride-1 2D convolution, NHWC x and HWIO kernel, 'SAME' or 'VALID' as lax pads them:
    `conv2d_by_matmul` where `use_matmul()`, else the lax convolution."""
    if use_matmul():
        return conv2d_by_matmul(x, kernel, padding)
    return jax.lax.conv_general_dilated(x, kernel.astype(x.dtype), (1, 1), padding,
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))


def conv2d_by_matmul(x: jax.Array, kernel: jax.Array, padding: str) -> jax.Array:
    """`lax.conv_general_dilated(x, kernel, (1, 1), padding)` for NHWC x and HWIO kernel, as one
    matrix product of the gathered taps (im2col) with the kernel (the ConvLSTM's convolutions; see
    the module docstring for why). padding 'SAME' pads as lax does (an even kernel's extra row and
    column at the end) or 'VALID'. Operands stay in x's dtype, products accumulate in float32 and
    the result comes back in x's dtype, as the lax convolution's does."""
    kh, kw, cin, cout = kernel.shape
    n, h, w, _ = x.shape
    if padding == "SAME":
        x = jnp.pad(x, ((0, 0), ((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2), (0, 0)))
        h_out, w_out = h, w
    elif padding == "VALID":
        h_out, w_out = h - kh + 1, w - kw + 1
    else:
        raise ValueError(f"conv2d_by_matmul: padding must be 'SAME' or 'VALID', got {padding!r}")
    columns = _spatial_taps(x, kh, kw, h_out, w_out)
    with jax.named_scope(MATMUL_CONV_SCOPE):
        out = jnp.dot(columns.reshape(-1, kh * kw * cin), kernel.astype(x.dtype).reshape(kh * kw * cin, cout))
    return out.reshape(n, h_out, w_out, cout)


def _spatial_taps(padded: jax.Array, kh: int, kw: int, h_out: int, w_out: int) -> jax.Array:
    """im2col over space: the kh*kw shifted (h_out, w_out) windows of `padded` (..., H, W, C),
    concatenated along the channels, tap (i, j) as block i * kw + j: (..., h_out, w_out, kh*kw*C),
    the row order of a (kh, kw, C, Cout) kernel reshaped to (kh*kw*C, Cout)."""
    return jnp.concatenate(
        [padded[..., i : i + h_out, j : j + w_out, :] for i, j in itertools.product(range(kh), range(kw))], axis=-1
    )


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def max_pool_valid(x: jax.Array, window) -> jax.Array:
    """Non-overlapping max pooling (stride = window, 'VALID', like Keras' MaxPooling3D) over the
    spatial/temporal axes of x (B, *dims, C): a trailing remainder is dropped, as 'VALID' does.

    The forward pass is a max over the window's offsets, strided slices of x. The backward pass is
    written by hand: the gradient goes to the first maximum of each window, in window order, as
    PyTorch's and XLA's `select_and_scatter` give it, from the winner's offset (a small integer
    saved by the forward pass) rather than from x. Autodiff of the max compared x with the maximum
    again and counted ties: ReLU, then pooling, forward + backward, on batch 32 of 8x64x64x32:
    56 ms against 29 ms written out (8x32x32x32, windows 2x2x2: 12 against 8 ms).
    """
    return _max_pool_forward(x, tuple(window))[0]


def _pool_split(shape, window) -> tuple[tuple[int, ...], list[int]]:
    """The pooled extent of each axis (a multiple of its window) and the shape that splits each
    into (windows, offset in window): (B, n1, k1, n2, k2, ..., C)."""
    kept = tuple(d // k * k for d, k in zip(shape[1:-1], window))
    split = [shape[0]]
    for d, k in zip(kept, window):
        split += [d // k, k]
    return kept, split + [shape[-1]]


def _max_pool_forward(x: jax.Array, window):
    kept, split = _pool_split(x.shape, window)
    windows = x[(slice(None), *(slice(0, k) for k in kept), slice(None))].reshape(split)
    # The value at each offset within the window, for every window: (B, n1, n2, ..., C) each.
    offsets = [windows[(slice(None), *(s for o in offset for s in (slice(None), o)), slice(None))]
               for offset in itertools.product(*(range(k) for k in window))]
    pooled = functools.reduce(jnp.maximum, offsets)
    index_dtype = _offset_dtype(window)
    first = jnp.full(pooled.shape, len(offsets) - 1, index_dtype)
    for i in reversed(range(len(offsets) - 1)):
        first = jnp.where(offsets[i] == pooled, index_dtype(i), first)
    return pooled, (first, jax.ShapeDtypeStruct(x.shape, x.dtype))


def _offset_dtype(window):
    """The integer type of an offset within the window: int8 (a quarter of int32's memory traffic)
    while the window has at most 127 positions, int32 beyond."""
    return jnp.int8 if math.prod(window) <= jnp.iinfo(jnp.int8).max else jnp.int32


def _max_pool_backward(window, residuals, cotangent):
    first, x = residuals
    window = tuple(window)
    kept, split = _pool_split(x.shape, window)
    window_axes = tuple(2 + 2 * i for i in range(len(window)))
    offset = sum(jax.lax.broadcasted_iota(first.dtype, split, axis) * math.prod(window[i + 1 :])
                 for i, axis in enumerate(window_axes))
    winners = offset == jnp.expand_dims(first, window_axes)
    d_x = jnp.where(winners, jnp.expand_dims(cotangent, window_axes), 0).astype(x.dtype)
    d_x = d_x.reshape(x.shape[0], *kept, x.shape[-1])
    return (jnp.pad(d_x, [(0, 0), *((0, d - k) for d, k in zip(x.shape[1:-1], kept)), (0, 0)]),)


max_pool_valid.defvjp(lambda x, window: _max_pool_forward(x, tuple(window)), _max_pool_backward)
