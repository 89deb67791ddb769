"""Mixed precision: a bf16 train step computes in bfloat16, keeps float32 parameters and optimizer
state, and its loss stays close to the float32 step's on the same batch and weights."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from fer_jax.config import AugmentConfig, DataConfig, ExperimentConfig, ModelConfig, TrainConfig
from fer_jax import sharding
from fer_jax.errors import ConfigError
from fer_jax.models import build_model
from fer_jax.train.loop import build_state
from fer_jax.train.step import set_compute_dtype

B, T, S = 8, 8, 16


def _config(precision):
    return ExperimentConfig(
        data=DataConfig(num_classes=3, frames=T, size=S, global_batch_size=B),
        # C3D: 3D convolutions and dense layers, the quickest of our models to compile. 8 channels
        # into the second convolution, so that both kinds of matrix-product convolution run.
        model=ModelConfig(name="msff_c3d", kwargs={"frames": T, "size": S, "in_channels": 1,
                                                   "conv_blocks": [[8], [8]], "pool_windows": [[1, 2, 2], [2, 2, 2]],
                                                   "fc_features": [16], "dropout": 0.0}),
        augment=AugmentConfig(enabled=False),
        train=TrainConfig(learning_rate=1e-3, precision=precision),
    )


@pytest.fixture(scope="module")
def stepped():
    """precision -> (steps, metrics, state after 2 steps) on one batch, from the same initial weights."""
    rng = np.random.default_rng(0)
    host = {"frames": rng.integers(0, 256, (B, T, S, S, 1), dtype=np.uint8),
            "label": rng.integers(0, 3, (B,)).astype(np.int32)}
    mesh = sharding.make_mesh()
    batch = sharding.to_global(host, mesh)
    out = {}
    for precision in ("f32", "bf16"):
        with jax.default_prng_impl("rbg"):  # faster initialiser compile; same draws for both
            steps = build_state(_config(precision), mesh)
        steps.train.compiler_options = {"xla_backend_optimization_level": 0}  # compile time only
        state, first = steps.train(steps.state, batch, 0)
        state, second = steps.train(state, batch, 1)
        out[precision] = steps, jax.device_get((first, second)), state
    return out


def test_bf16_loss_within_2_percent_of_f32(stepped):
    # bfloat16 rounds each layer's operands and result (2**-8 each, sums in float32); over the 4
    # layers these random roundings add like a random walk, sqrt(4 x 3) x 2**-8 = 1.4% of the
    # logits' scale, and the cross-entropy moves by at most twice the largest logit change: within
    # 2% of a loss of ~1.1 while the logits stay below 0.8 (a fresh model's are near 0). Measured
    # 0.04-0.07%. (The ConvLSTM's state precision, which this cannot see, has its own exact test.)
    for i in range(2):
        f32, bf16 = stepped["f32"][1][i]["loss"], stepped["bf16"][1][i]["loss"]
        assert abs(bf16 - f32) <= 0.02 * f32, (i, f32, bf16)
    assert stepped["f32"][1][1]["loss"] != stepped["bf16"][1][1]["loss"]  # really a different computation


def test_bf16_keeps_float32_parameters_and_optimizer_state(stepped):
    for precision in ("f32", "bf16"):
        floats = [x for x in jax.tree.leaves(stepped[precision][2]) if jnp.issubdtype(x.dtype, jnp.floating)]
        assert floats and all(x.dtype == jnp.float32 for x in floats), precision
    # After two Adam steps from the same weights, the parameters agree to bf16 rounding of the updates.
    f32 = [np.asarray(x) for x in jax.tree.leaves(stepped["f32"][2]) if jnp.issubdtype(x.dtype, jnp.floating)]
    bf16 = [np.asarray(x) for x in jax.tree.leaves(stepped["bf16"][2]) if jnp.issubdtype(x.dtype, jnp.floating)]
    # Adam's step is lr * m_hat / sqrt(v_hat): exactly lr * sign(g) on the first step, and on the
    # second at most lr * sqrt(sum_i a_i^2 / b_i) = 1.0013 lr (Cauchy-Schwarz over the two
    # gradients' weights a in m_hat and b in v_hat, for b1 = 0.9, b2 = 0.999). Where a gradient is
    # tiny its sign can differ between the precisions, so the runs may move apart by both runs'
    # whole travel: 2 x lr x (1 + 1.0013). (Measured: 3.6e-3, such a sign flip.)
    b1, b2, lr = 0.9, 0.999, 1e-3
    a = np.array([(1 - b1) * b1, 1 - b1]) / (1 - b1**2)
    b = np.array([(1 - b2) * b2, 1 - b2]) / (1 - b2**2)
    tol = 2 * lr * (1 + np.sqrt(np.sum(a**2 / b)))
    for x, y in zip(f32, bf16):
        np.testing.assert_allclose(x, y, atol=tol, rtol=0)


def _conv_dtypes(jaxpr) -> set[str]:
    """Operand dtypes of every convolution in a jaxpr, nested calls and scans included: lax
    convolutions, and the matrix products the fast layers compute them with (which run in the
    `MATMUL_CONV_SCOPE` name scope, forward and backward)."""
    from jax.extend import core

    from fer_jax.models.layers import MATMUL_CONV_SCOPE

    found = set()
    for eqn in jaxpr.eqns:
        is_matmul_conv = eqn.primitive.name == "dot_general" and MATMUL_CONV_SCOPE in str(eqn.source_info.name_stack)
        if eqn.primitive.name == "conv_general_dilated" or is_matmul_conv:
            found.update(str(v.aval.dtype) for v in eqn.invars)
        for value in eqn.params.values():
            for sub in value if isinstance(value, (tuple, list)) else (value,):
                if isinstance(sub, (core.ClosedJaxpr, core.Jaxpr)):
                    found |= _conv_dtypes(getattr(sub, "jaxpr", sub))
    return found


def test_bf16_step_convolves_in_bf16_and_logs_its_memory(stepped):
    for precision, dtype in (("f32", "float32"), ("bf16", "bfloat16")):
        steps, _, state = stepped[precision]
        batch = {"frames": jnp.zeros((B, T, S, S, 1), jnp.uint8), "label": jnp.zeros((B,), jnp.int32)}
        assert _conv_dtypes(jax.make_jaxpr(steps.train.jitted)(state, batch, 0).jaxpr) == {dtype}, precision
        assert len(steps.train.compiled) == 1  # compiled once, ahead of time, for both steps
        assert steps.memory["argument_size_in_bytes"] > 0 and steps.compile_seconds > 0


def _bf16_sums(jaxpr) -> list[tuple[tuple[int, ...], int]]:
    """(operand shape, number of terms) of every reduce_sum over bfloat16 values, nested ones included."""
    from jax.extend import core

    found = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "reduce_sum" and eqn.invars[0].aval.dtype == jnp.bfloat16:
            shape = eqn.invars[0].aval.shape
            found.append((shape, int(np.prod([shape[a] for a in eqn.params["axes"]]))))
        for value in eqn.params.values():
            for sub in value if isinstance(value, (tuple, list)) else (value,):
                if isinstance(sub, (core.ClosedJaxpr, core.Jaxpr)):
                    found += _bf16_sums(getattr(sub, "jaxpr", sub))
    return found


# Models whose convolutions add a bias: the demo model's own (layers.conv3d_same) and those built
# on layers.Conv (C3D; the VGG blocks of the audio branch and the backbones), tiny, with their inputs.
_BIASED_CONV_MODELS = {
    "cnn3d_convlstm": ({"frames": T, "size": S, "conv_features": [2, 4, 4], "convlstm_filters": 2,
                        "standardize_clips": True}, {"frames": (B, T, S, S, 1)}),
    "msff_c3d": (_config("bf16").model.kwargs, {"frames": (B, T, S, S, 1)}),
    "msff_audio_vgg_blstm": ({"n_freq": 16, "conv_blocks": ((8,),), "lstm_hidden": 8, "dropout": 0.0},
                             {"log_mel": (B, 32, 16)}),
}


@pytest.mark.parametrize("name", sorted(_BIASED_CONV_MODELS))
def test_bf16_models_sum_their_gradients_in_float32(name):
    """In bf16 a model convolves in bfloat16, forward and backward, but sums no more than 8
    bfloat16 terms anywhere: XLA rounds a bfloat16 reduction's accumulator at every add, and the
    demo model's bias gradients, sums over every output position, came out 4-34% off the float32
    ones before its biases were added in float32 (what remains are the max pool's tie counts, at
    most 8 small integers, which are exact). C3D and the audio VGG summed 1024-4096 such terms."""
    kwargs, input_shapes = _BIASED_CONV_MODELS[name]
    with jax.default_prng_impl("rbg"):
        model = nnx.jit(lambda: build_model(name, num_classes=3, rngs=nnx.Rngs(0), **kwargs))()
    set_compute_dtype(model, "bf16")
    inputs = {key: jnp.zeros(shape) for key, shape in input_shapes.items()}
    label = jnp.zeros((B,), jnp.int32)

    def loss(model):
        logits = model(inputs)
        assert logits.dtype == jnp.float32
        return -jax.nn.log_softmax(logits)[jnp.arange(B), label].mean()

    jaxpr = jax.make_jaxpr(nnx.grad(loss))(model).jaxpr
    assert _conv_dtypes(jaxpr) == {"bfloat16"}
    assert [(shape, terms) for shape, terms in _bf16_sums(jaxpr) if terms > 8] == []


def test_unknown_precision_is_a_config_error():
    with pytest.raises(ConfigError, match="train.precision='fp8'"), jax.default_prng_impl("rbg"):
        build_state(_config("fp8"), sharding.make_mesh())
