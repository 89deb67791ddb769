"""Convolutional LSTM (Shi et al. 2015) as a Flax NNX module, numerically equal to Keras 3's ConvLSTM2D.

Weights are laid out exactly like `keras.layers.ConvLSTM2D` (gate order i, f, c, o along the last
axis) so a Keras checkpoint copies over 1:1; `tests/test_convlstm_keras_parity.py` holds us to that.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from fer_jax.errors import ConfigError
from fer_jax.models.layers import conv2d


def _pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and v > 0 for v in pair):
        raise ConfigError(f"ConvLSTM2D: {name} must be a positive int or a pair of them, got {value!r}.")
    return pair  # type: ignore[return-value]


def _conv(x: jax.Array, kernel: jax.Array, padding: str) -> jax.Array:
    # Channels-last (N, H, W, C) images, (kh, kw, Cin, Cout) kernels (Keras's layout). "SAME" pads the
    # extra pixel of an even kernel at the end, as lax and Keras's jax and TF backends do.
    return conv2d(x, kernel, padding)


def _keras_bias_init(filters: int, unit_forget_bias: bool) -> Callable[..., jax.Array]:
    # Keras's unit_forget_bias: forget gate starts at 1 so early training does not wipe the cell.
    def init(key, shape, dtype=jnp.float32):
        del key
        bias = jnp.zeros(shape, dtype)
        return bias.at[filters : 2 * filters].set(1.0) if unit_forget_bias else bias

    return init


class ConvLSTM2D(nnx.Module):
    """A ConvLSTM over 2D frames, equal to `keras.layers.ConvLSTM2D` with strides 1 and no dilation.

    Input (B, T, H, W, Cin) -> output (B, H', W', F), or (B, T, H', W', F) with `return_sequences`.
    H', W' equal H, W for padding 'same'; H - kh + 1, W - kw + 1 for 'valid'. `padding` applies to the
    input-to-state convolution only; the state-to-state convolution is always 'same' (as in Keras) so
    the hidden state keeps its size from step to step.

    Parameters (float32 whatever `dtype` is, so the optimizer sees full-precision weights):
      kernel            (kh, kw, Cin, 4F)  input-to-state, gates i, f, c, o along the last axis
      recurrent_kernel  (kh, kw, F, 4F)    state-to-state, same gate order
      bias              (4F,)              only with use_bias; forget slice starts at 1 (unit_forget_bias)

    Initializers follow Keras (glorot_uniform, orthogonal, zeros) so training from scratch behaves
    like the Keras reference implementations of published models.
    """

    def __init__(
        self,
        in_features: int,
        filters: int,
        kernel_size: int | Sequence[int],
        *,
        padding: str = "valid",
        return_sequences: bool = False,
        use_bias: bool = True,
        unit_forget_bias: bool = True,
        activation: Callable[[jax.Array], jax.Array] = jnp.tanh,
        recurrent_activation: Callable[[jax.Array], jax.Array] = jax.nn.sigmoid,
        unroll: int = 1,
        dtype: jnp.dtype = jnp.float32,
        rngs: nnx.Rngs,
    ):
        padding = padding.lower()
        if padding not in ("same", "valid"):
            raise ConfigError(f"ConvLSTM2D: padding must be 'same' or 'valid', got {padding!r}.")
        if not isinstance(unroll, int) or unroll < 1:
            raise ConfigError(f"ConvLSTM2D: unroll must be a positive int, got {unroll!r}.")
        kh, kw = _pair(kernel_size, "kernel_size")
        self.in_features = in_features
        self.filters = filters
        self.kernel_size = (kh, kw)
        self.padding = padding
        self.return_sequences = return_sequences
        self.use_bias = use_bias
        self.activation = activation
        self.recurrent_activation = recurrent_activation
        self.unroll = unroll
        self.dtype = dtype

        # Keras computes conv fans as receptive field x channels; jax's initializers do the same
        # with in_axis=-2, out_axis=-1. Orthogonal flattens all but the last axis, as Keras does.
        glorot = jax.nn.initializers.glorot_uniform(in_axis=-2, out_axis=-1)
        orthogonal = jax.nn.initializers.orthogonal(column_axis=-1)
        self.kernel = nnx.Param(glorot(rngs.params(), (kh, kw, in_features, 4 * filters), jnp.float32))
        self.recurrent_kernel = nnx.Param(
            orthogonal(rngs.params(), (kh, kw, filters, 4 * filters), jnp.float32)
        )
        self.bias = (
            nnx.Param(_keras_bias_init(filters, unit_forget_bias)(rngs.params(), (4 * filters,)))
            if use_bias
            else None
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        """x: (B, T, H, W, Cin) -> (B, H', W', F) or (B, T, H', W', F); dtype is the compute dtype."""
        if x.ndim != 5 or x.shape[-1] != self.in_features:
            raise ConfigError(
                f"ConvLSTM2D expects (B, T, H, W, {self.in_features}) inputs, got shape {x.shape}."
            )
        b, t, h, w, c = x.shape
        kernel = self.kernel[...].astype(self.dtype)
        recurrent_kernel = self.recurrent_kernel[...]  # cast in the step: see below

        # The input-to-state term does not depend on the state, so it is one big convolution over all
        # B*T frames (well shaped for the accelerator) instead of T small ones inside the scan.
        # Its result goes to float32 before the bias: the bias's gradient sums the gates' cotangent
        # over B*T*H*W positions, and a bfloat16 reduction rounds its accumulator at every add.
        gates_x = _conv(x.reshape(b * t, h, w, c).astype(self.dtype), kernel, self.padding.upper())
        gates_x = gates_x.astype(jnp.float32)
        if self.bias is not None:
            gates_x = gates_x + self.bias[...]
        h_out, w_out = gates_x.shape[1:3]
        # Time-major for the scan, which iterates over the leading axis.
        gates_x = gates_x.reshape(b, t, h_out, w_out, 4 * self.filters).swapaxes(0, 1)

        def step(carry, gx):
            h_prev, c_prev = carry
            # Gate arithmetic and the cell state stay in float32: the cell accumulates over time and
            # low-precision sums would drift; only the convolutions run in the compute dtype.
            # The float32 kernel is cast here, inside the scan, so that the backward pass sums its
            # per-step gradients in float32 rather than in the compute dtype.
            z = gx + _conv(h_prev.astype(self.dtype), recurrent_kernel.astype(self.dtype), "SAME")
            z_i, z_f, z_c, z_o = jnp.split(z, 4, axis=-1)
            i = self.recurrent_activation(z_i)
            f = self.recurrent_activation(z_f)
            c_new = f * c_prev + i * self.activation(z_c)
            o = self.recurrent_activation(z_o)
            h_new = o * self.activation(c_new)
            return (h_new, c_new), (h_new if self.return_sequences else None)

        zeros = jnp.zeros((b, h_out, w_out, self.filters), jnp.float32)
        (h_last, _), h_seq = jax.lax.scan(step, (zeros, zeros), gates_x, unroll=self.unroll)
        if self.return_sequences:
            return h_seq.swapaxes(0, 1).astype(self.dtype)
        return h_last.astype(self.dtype)
