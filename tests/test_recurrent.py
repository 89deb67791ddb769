"""Our BLSTM against torch.nn.LSTM(bidirectional=True) with the same weights, to float32 rounding (~1e-5)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from fer_jax.errors import ConfigError
from fer_jax.models.recurrent import BLSTM, LSTMCell
from helpers.tolerance import assert_caught, rounding_tolerance

torch = pytest.importorskip("torch")

B, T, D, H, LAYERS = 3, 6, 5, 4, 2
# float32 rounding of LAYERS x T chained steps, each gate summing its input (D, or 2H above the
# first layer) and H recurrent terms. Scale 1: outputs are in (-1, 1), and a gate's slope times its
# pre-activation stays below 1, so large pre-activations' rounding is damped. 9.9e-6.
TOL = rounding_tolerance(terms=2 * H + H, layers=LAYERS * T)
TOL_ONE_LAYER = rounding_tolerance(terms=D + H, layers=T)  # one direction of one layer: 4.3e-6
LENGTHS = [6, 4, 1]  # a full clip, a padded one, and a single real step


def _rngs(seed=0):
    # rbg only to keep CPU compile times low; the weights are overwritten with torch's.
    return nnx.Rngs(jax.random.key(seed, impl="rbg"))


@pytest.fixture(scope="module")
def pair():
    torch.manual_seed(0)
    ref = torch.nn.LSTM(D, H, num_layers=LAYERS, batch_first=True, bidirectional=True, dropout=0.5)
    # torch's own init draws from U(-1/sqrt(H), 1/sqrt(H)); widen it so gate-order mistakes show.
    with torch.no_grad():
        for p in ref.parameters():
            p.uniform_(-0.8, 0.8)
    ours = nnx.jit(lambda: BLSTM(D, H, num_layers=LAYERS, dropout=0.5, rngs=_rngs()))()
    state = ref.state_dict()
    for k, layer in enumerate(ours.layers):
        for cell, suffix in ((layer.forward_cell, ""), (layer.backward_cell, "_reverse")):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(cell, name)[...] = jnp.asarray(state[f"{name}_l{k}{suffix}"].numpy())
    ours.eval()
    ref.eval()  # both compared without inter-layer dropout
    return ours, ref


_forward = nnx.jit(lambda model, x, mask: model(x, mask))


def _inputs(seed=0):
    return np.random.default_rng(seed).standard_normal((B, T, D)).astype(np.float32)


def test_matches_torch_on_full_sequences(pair):
    ours, ref = pair
    x = _inputs()
    out, final = _forward(ours, jnp.asarray(x), None)
    with torch.no_grad():
        ref_out, (h_n, _) = ref(torch.from_numpy(x))
    assert out.shape == (B, T, 2 * H) and final.shape == (B, 2 * H)
    np.testing.assert_allclose(out, ref_out.numpy(), atol=TOL, rtol=0)
    # h_n is (layers * 2, B, H): the top layer's forward then backward state.
    np.testing.assert_allclose(final, torch.cat([h_n[-2], h_n[-1]], -1).numpy(), atol=TOL, rtol=0)


def test_matches_torch_packed_sequences_and_ignores_padding(pair):
    ours, ref = pair
    x = _inputs(1)
    mask = np.arange(T)[None, :] < np.array(LENGTHS)[:, None]
    out, final = _forward(ours, jnp.asarray(x), jnp.asarray(mask))
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        torch.from_numpy(x), torch.tensor(LENGTHS), batch_first=True, enforce_sorted=False
    )
    with torch.no_grad():
        ref_packed, (h_n, _) = ref(packed)
    ref_out, _ = torch.nn.utils.rnn.pad_packed_sequence(ref_packed, batch_first=True, total_length=T)
    np.testing.assert_allclose(out, ref_out.numpy(), atol=TOL, rtol=0)  # padded steps: zeros in both
    np.testing.assert_allclose(final, torch.cat([h_n[-2], h_n[-1]], -1).numpy(), atol=TOL, rtol=0)

    # Garbage in the padded steps must change nothing, the backward direction included.
    noisy = np.where(mask[..., None], x, 100.0 * _inputs(2))
    out_noisy, final_noisy = _forward(ours, jnp.asarray(noisy), jnp.asarray(mask))
    np.testing.assert_array_equal(out_noisy, out)
    np.testing.assert_array_equal(final_noisy, final)


def test_single_direction_scan_matches_torch_lstm():
    # LSTMCell.scan on its own (other models run one direction with it).
    torch.manual_seed(1)
    ref = torch.nn.LSTM(D, H, batch_first=True)
    with torch.no_grad():
        for p in ref.parameters():
            p.uniform_(-0.8, 0.8)
    cell = nnx.eval_shape(lambda: LSTMCell(D, H, rngs=_rngs()))  # every weight is overwritten
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        getattr(cell, name).set_value(jnp.asarray(getattr(ref, f"{name}_l0").detach().numpy()))
    x = _inputs(3)

    @nnx.jit
    def both_ways(cell, x_t):
        gates, mask = cell.input_gates(x_t), jnp.ones(x_t.shape[:2], bool)
        return cell.scan(gates, mask, reverse=False), cell.scan(gates[::-1], mask, reverse=True)

    (out, last), (out_rev, last_rev) = both_ways(cell, jnp.asarray(x).swapaxes(0, 1))
    with torch.no_grad():
        ref_out, (h_n, _) = ref(torch.from_numpy(x))
    np.testing.assert_allclose(out.swapaxes(0, 1), ref_out.numpy(), atol=TOL_ONE_LAYER, rtol=0)
    np.testing.assert_allclose(last, h_n[0].numpy(), atol=TOL_ONE_LAYER, rtol=0)
    # Reading time-reversed gates backwards is the forward pass again, in reversed order (the same
    # arithmetic; a separately fused loop at most rounds differently).
    np.testing.assert_allclose(out_rev[::-1], out, atol=TOL_ONE_LAYER, rtol=0)
    np.testing.assert_allclose(last_rev, last, atol=TOL_ONE_LAYER, rtol=0)


def test_wrong_gate_order_is_caught(pair):
    # Guards the test itself: swapping torch's f and g gate blocks must break the match.
    ours, ref = pair
    broken = nnx.clone(ours)
    cell = broken.layers[0].forward_cell
    w = np.asarray(cell.weight_ih[...])
    cell.weight_ih[...] = jnp.asarray(np.concatenate([w[:H], w[2 * H : 3 * H], w[H : 2 * H], w[3 * H :]]))
    x = _inputs()
    out, _ = _forward(broken, jnp.asarray(x), None)
    with torch.no_grad():
        ref_out, _ = ref(torch.from_numpy(x))
    assert_caught(out, ref_out.numpy(), TOL, "f and g gates swapped", margin=100)


def test_dropout_between_layers_follows_train_mode(pair):
    ours, _ = pair
    model = nnx.clone(ours)  # two layers, so dropout (rate 0.5) acts once, between them
    x = jnp.asarray(_inputs())
    model.eval()
    np.testing.assert_array_equal(_forward(model, x, None)[0], _forward(model, x, None)[0])
    model.train()
    assert float(jnp.abs(_forward(model, x, None)[0] - _forward(model, x, None)[0]).max()) > 1e-6


def test_shape_errors_are_config_errors(pair):
    ours, _ = pair
    with pytest.raises(ConfigError, match=r"\(B, T, D\)"):
        ours(jnp.zeros((B, D)))
    with pytest.raises(ConfigError, match="mask shape"):
        ours(jnp.zeros((B, T, D)), jnp.ones((B, T + 1), bool))


def test_scan_matches_jax_experimental_rnn_reference_on_cudnn_packed_weights(pair):
    """Our scan against jax.experimental.rnn.lstm_ref, fed the weights through our cuDNN packing and
    JAX's own unpacking: the same outputs (f32, 1e-5) means the GPU path reads the weights we train."""
    from jax.experimental import rnn

    from fer_jax.models.recurrent import cudnn_weights

    ours, _ = pair
    x = jnp.asarray(_inputs(1))
    flat = cudnn_weights(ours)
    assert flat.shape == (rnn.get_num_params_in_lstm(D, H, LAYERS, True),)
    w_ih, w_hh, b_ih, b_hh = rnn.unpack_lstm_weights(flat, D, H, LAYERS, True)
    zeros = jnp.zeros((2 * LAYERS, B, H))
    ref_out, h_n, _ = rnn.lstm_ref(x, zeros, zeros, w_ih, w_hh, b_ih, b_hh, jnp.full((B,), T, jnp.int32),
                                   D, H, LAYERS, 0.0, True)
    out, final = _forward(ours, x, None)
    np.testing.assert_allclose(out, ref_out, atol=TOL, rtol=0)
    np.testing.assert_allclose(final, jnp.concatenate([h_n[-2], h_n[-1]], -1), atol=TOL, rtol=0)
    assert not ours._cudnn_applies() or jax.default_backend() == "gpu"  # the scan ran here on CPU


@pytest.mark.skipif(jax.default_backend() != "gpu", reason="cuDNN's LSTM exists on GPU only; the CPU runs the scan")
def test_cudnn_path_equals_the_scan_on_gpu(pair):
    """On a GPU, cuDNN's fused LSTM and our scan compute the same outputs and gradients from the same
    weights (both at float32 matmul precision: TF32 would differ at ~1e-3)."""
    ours, _ = pair
    scan = nnx.clone(ours)
    scan.cudnn = False
    assert ours._cudnn_applies() and not scan._cudnn_applies()
    x = jnp.asarray(_inputs(3))
    weights = jnp.asarray(np.random.default_rng(4).standard_normal((B, T, 2 * H)), jnp.float32)

    def loss(model, x):
        out, final = model(x)
        return (out * weights).sum() + final.sum()

    grad = nnx.jit(nnx.grad(loss, argnums=(0, 1)))
    with jax.default_matmul_precision("float32"):
        out_cudnn, final_cudnn = _forward(ours, x, None)
        out_scan, final_scan = _forward(scan, x, None)
        (g_cudnn, gx_cudnn), (g_scan, gx_scan) = grad(ours, x), grad(scan, x)
    np.testing.assert_allclose(out_cudnn, out_scan, atol=TOL, rtol=0)
    np.testing.assert_allclose(final_cudnn, final_scan, atol=TOL, rtol=0)
    np.testing.assert_allclose(gx_cudnn, gx_scan, atol=1e-4, rtol=0)
    for a, b in zip(jax.tree.leaves(nnx.state(g_cudnn, nnx.Param)), jax.tree.leaves(nnx.state(g_scan, nnx.Param))):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=0)
