"""LSTM cell and a (stacked) bidirectional LSTM, numerically equal to PyTorch's `nn.LSTM`.

Weights keep torch's layout and gate order (i, f, g, o stacked along the first axis) so a torch
checkpoint copies over without transposes; `tests/test_recurrent.py` holds us to that:

    ours (BLSTM)                              torch nn.LSTM(bidirectional=True)
    layers[k].forward_cell.weight_ih (4H, D)  weight_ih_l{k}
    layers[k].forward_cell.weight_hh (4H, H)  weight_hh_l{k}
    layers[k].forward_cell.bias_ih   (4H,)    bias_ih_l{k}
    layers[k].forward_cell.bias_hh   (4H,)    bias_hh_l{k}
    layers[k].backward_cell.*                 the same names with the suffix `_reverse`
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from fer_jax.errors import ConfigError


class LSTMCell(nnx.Module):
    """One LSTM direction (torch's equations): `input_gates` then `scan` run it over a sequence.

    i = σ(W_ii x + b_ii + W_hi h + b_hi), f = σ(...), g = tanh(...), o = σ(...)
    c' = f ⊙ c + i ⊙ g,  h' = o ⊙ tanh(c')

    Parameters (float32): weight_ih (4H, D), weight_hh (4H, H), bias_ih (4H,), bias_hh (4H,).
    All start U(-1/√H, 1/√H), torch's init, so training from scratch starts where torch's does.
    """

    def __init__(self, in_features: int, hidden: int, *, dtype: jnp.dtype = jnp.float32, rngs: nnx.Rngs):
        self.in_features = in_features
        self.hidden = hidden
        self.dtype = dtype
        bound = 1.0 / math.sqrt(hidden)

        def uniform(shape):
            return nnx.Param(jax.random.uniform(rngs.params(), shape, jnp.float32, -bound, bound))

        self.weight_ih = uniform((4 * hidden, in_features))
        self.weight_hh = uniform((4 * hidden, hidden))
        self.bias_ih = uniform((4 * hidden,))
        self.bias_hh = uniform((4 * hidden,))

    def input_gates(self, x: jax.Array) -> jax.Array:
        """x: (..., D) -> (..., 4H): the part of the gate pre-activations that ignores the state."""
        w = self.weight_ih[...].astype(self.dtype)
        return (x.astype(self.dtype) @ w.T).astype(jnp.float32) + self.bias_ih[...] + self.bias_hh[...]

    def scan(self, gates_x: jax.Array, mask: jax.Array, *, reverse: bool, unroll: int = 1):
        """Runs this direction over time.

        gates_x: (T, B, 4H) from `input_gates`, time-major. mask: (T, B) bool, False at padded steps.
        reverse: read the steps last to first (outputs stay in time order).
        Returns (outputs (T, B, H) with zeros at padded steps, last hidden state (B, H)).
        """
        if reverse:
            gates_x, mask = gates_x[::-1], mask[::-1]
        outputs, last = _scan_directions(
            gates_x[:, None], mask[:, None], self.weight_hh[...][None], dtype=self.dtype, unroll=unroll
        )
        outputs = outputs[:, 0]
        return (outputs[::-1] if reverse else outputs), last[0]


def _scan_directions(gates_x, mask, w_hh, *, dtype, unroll):
    """Runs D independent LSTM recurrences (the directions) in one scan.

    gates_x: (T, D, B, 4H) from `input_gates`, time-major, each direction already in the order it
    reads its steps. mask: (T, D, B) bool, False at padded steps. w_hh: (D, 4H, H).
    Returns (outputs (T, D, B, H) with zeros at padded steps, last hidden states (D, B, H)).

    At a padded step the state passes through unchanged, so padding never reaches a valid step:
    reading a right-padded clip backwards, the state is still zero when the last real step comes,
    which is what torch's pack_padded_sequence does. One scan for both directions: half the
    sequential steps and half the loops to compile compared with one scan per direction.
    """
    w_hh = w_hh.astype(dtype)

    def step(carry, inputs):
        h, c = carry
        gx, valid = inputs
        # Gates and cell in float32: the cell accumulates over time; only the matmul uses dtype.
        z = gx + jnp.einsum("dbh,dgh->dbg", h.astype(dtype), w_hh).astype(jnp.float32)
        z_i, z_f, z_g, z_o = jnp.split(z, 4, axis=-1)
        c_new = jax.nn.sigmoid(z_f) * c + jax.nn.sigmoid(z_i) * jnp.tanh(z_g)
        h_new = jax.nn.sigmoid(z_o) * jnp.tanh(c_new)
        valid = valid[..., None]
        carry = (jnp.where(valid, h_new, h), jnp.where(valid, c_new, c))
        return carry, jnp.where(valid, h_new, 0.0)

    zeros = jnp.zeros((*gates_x.shape[1:3], w_hh.shape[-1]), jnp.float32)
    (h_last, _), outputs = jax.lax.scan(step, (zeros, zeros), (gates_x, mask), unroll=unroll)
    return outputs, h_last


class BidirectionalLSTMLayer(nnx.Module):
    """One bidirectional layer: (B, T, D) -> (B, T, 2H) [forward ‖ backward], and final (B, 2H)."""

    def __init__(self, in_features: int, hidden: int, *, unroll: int = 1, dtype: jnp.dtype = jnp.float32,
                 rngs: nnx.Rngs):
        self.forward_cell = LSTMCell(in_features, hidden, dtype=dtype, rngs=rngs)
        self.backward_cell = LSTMCell(in_features, hidden, dtype=dtype, rngs=rngs)
        self.unroll = unroll
        self.dtype = dtype

    def __call__(self, x: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
        """x: (B, T, D), mask: (B, T) bool -> (outputs (B, T, 2H), final (B, 2H)).

        final = [forward state after the last valid step ‖ backward state after the first valid
        step], i.e. torch's h_n of both directions.
        """
        # The input projection is one (B*T, D) x (D, 4H) matmul per direction, outside the scan.
        # The backward direction reads time reversed; its outputs are flipped back afterwards.
        x_t, mask_t = x.swapaxes(0, 1), mask.swapaxes(0, 1)
        gates = jnp.stack(
            [self.forward_cell.input_gates(x_t), self.backward_cell.input_gates(x_t)[::-1]], axis=1
        )
        masks = jnp.stack([mask_t, mask_t[::-1]], axis=1)
        w_hh = jnp.stack([self.forward_cell.weight_hh[...], self.backward_cell.weight_hh[...]])
        outputs, last = _scan_directions(gates, masks, w_hh, dtype=self.dtype, unroll=self.unroll)
        fwd, bwd = outputs[:, 0], outputs[::-1, 1]
        outputs = jnp.concatenate([fwd, bwd], axis=-1).swapaxes(0, 1)
        return outputs, jnp.concatenate([last[0], last[1]], axis=-1)


class BLSTM(nnx.Module):
    """Stacked bidirectional LSTM, equal to `torch.nn.LSTM(D, H, num_layers, batch_first=True,
    bidirectional=True, dropout=dropout)`.

    Call: x (B, T, D), optional mask (B, T) bool (True = real step; e.g. a record's "frame_mask")
    -> (outputs (B, T, 2H) float32, zero at masked steps; final (B, 2H) float32 of the top layer).
    Masked steps are skipped by both directions wherever they are, so padding a clip never changes
    its result. On GPU, without a mask, in float32 and with no dropout acting, `cudnn` runs cuDNN's
    fused LSTM (jax.experimental.rnn) on the same weights instead of the scan. Dropout acts between
    layers, not after the last, as in torch; it follows model.train() / model.eval().
    """

    def __init__(
        self,
        in_features: int,
        hidden: int,
        *,
        num_layers: int = 1,
        dropout: float = 0.0,
        unroll: int = 1,
        cudnn: bool = True,
        dtype: jnp.dtype = jnp.float32,
        rngs: nnx.Rngs,
    ):
        if num_layers < 1 or hidden < 1:
            raise ConfigError(f"BLSTM: num_layers and hidden must be >= 1, got {num_layers} and {hidden}.")
        self.hidden = hidden
        self.out_features = 2 * hidden
        self.in_features = in_features
        self.num_layers = num_layers
        self.cudnn = cudnn
        self.dtype = dtype
        self.layers = nnx.List(
            BidirectionalLSTMLayer(
                in_features if k == 0 else 2 * hidden, hidden, unroll=unroll, dtype=dtype, rngs=rngs
            )
            for k in range(num_layers)
        )
        self.dropout = nnx.Dropout(dropout, rngs=rngs)

    def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
        if x.ndim != 3:
            raise ConfigError(f"BLSTM expects (B, T, D) inputs, got shape {x.shape}.")
        if mask is None and self._cudnn_applies():
            return self._cudnn_forward(x)
        if mask is None:
            mask = jnp.ones(x.shape[:2], jnp.bool_)
        elif mask.shape != x.shape[:2]:
            raise ConfigError(f"BLSTM: mask shape {mask.shape} does not match inputs {x.shape[:2]} (B, T).")
        mask = mask.astype(jnp.bool_)
        final = None
        for k, layer in enumerate(self.layers):
            if k > 0:
                x = self.dropout(x)
            x, final = layer(x, mask)
        return x, final

    def _cudnn_applies(self) -> bool:
        # cuDNN's LSTM (jax.experimental.rnn) only on GPU, in float32/TF32, for clips without a mask
        # (it takes lengths, not masks) and where no dropout acts between layers (its dropout draws
        # its own masks). Everywhere else the scan runs; it is also the reference.
        return (self.cudnn and jax.default_backend() == "gpu" and self.dtype == jnp.float32
                and (self.num_layers == 1 or self.dropout.deterministic or self.dropout.rate == 0))

    def _cudnn_forward(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        from jax.experimental import rnn

        b = x.shape[0]
        zeros = jnp.zeros((2 * self.num_layers, b, self.hidden), jnp.float32)
        lengths = jnp.full((b,), x.shape[1], jnp.int32)
        outputs, h_n, _ = rnn.lstm(x.astype(jnp.float32), zeros, zeros, cudnn_weights(self), lengths,
                                   self.in_features, self.hidden, self.num_layers, 0.0, True)
        return outputs, jnp.concatenate([h_n[-2], h_n[-1]], axis=-1)


def cudnn_weights(blstm: BLSTM) -> jax.Array:
    """Our weights as the flat vector of jax.experimental.rnn (cuDNN's layout): W_ih, W_hh of each
    layer and direction (forward first), then b_ih, b_hh in the same order. Torch's (4H, D)
    matrices and i, f, g, o gate order are cuDNN's, so nothing is transposed."""
    cells = [c for layer in blstm.layers for c in (layer.forward_cell, layer.backward_cell)]
    weights = [w[...] for c in cells for w in (c.weight_ih, c.weight_hh)]
    biases = [b[...] for c in cells for b in (c.bias_ih, c.bias_hh)]
    return jnp.concatenate([a.reshape(-1) for a in weights + biases])
