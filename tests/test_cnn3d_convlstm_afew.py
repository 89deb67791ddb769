"""Smoke test of cnn3d_convlstm_afew: FER2013 weights load, shapes, a frozen frame CNN, learning."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import fer_jax.models.cnn3d_convlstm_afew  # noqa: F401  (registers "cnn3d_convlstm_afew")
from fer_jax.errors import ConfigError
from fer_jax.models.mini_xception import fer2013_weights_path
from fer_jax.models.registry import build_model
from fer_jax.models.transfer import read_keras_weights

B, T, SIZE, CLASSES = 2, 4, 64, 7


@pytest.fixture(scope="module")
def model():
    # Built inside jit with rbg keys: eager threefry initialisation compiles slowly on small CPUs.
    # No dropout, so training-mode losses are comparable from step to step; a 2-layer clip trunk
    # (tests/test_models.py covers the default one) to keep compile time down.
    return nnx.jit(
        lambda: build_model(
            "cnn3d_convlstm_afew", num_classes=CLASSES, rngs=nnx.Rngs(jax.random.key(0, impl="rbg")),
            frames=T, size=SIZE, conv_features=(8, 8), pool_windows=((1, 2, 2), (2, 4, 4)), dropout=0.0,
            pretrained=True, freeze_frame_cnn=True,
        )
    )()


def test_pretrained_frame_cnn_holds_the_fer2013_weights(model):
    keras = read_keras_weights(fer2013_weights_path())
    np.testing.assert_array_equal(np.asarray(model.frame_cnn.conv1.kernel[...]), keras["conv2d_1"]["kernel"])
    np.testing.assert_array_equal(
        np.asarray(model.frame_cnn.blocks[3].bn2.var[...]), keras["batch_normalization_14"]["moving_variance"]
    )
    assert model.frame_cnn.head is None  # only its features are used
    assert not hasattr(model.clip_branch, "head")  # nor is the clip branch's own classifier


def test_wrong_clip_shape_is_a_config_error(model):
    with pytest.raises(ConfigError, match="frames of shape"):
        model({"frames": jnp.zeros((1, T + 1, SIZE, SIZE, 1))})


def test_adam_steps_train_the_new_layers_and_leave_the_frozen_cnn(model):
    frames = jnp.asarray(np.random.default_rng(0).uniform(0, 1, (B, T, SIZE, SIZE, 1)), jnp.float32)
    labels = jnp.arange(B) % CLASSES
    # Every parameter is handed to the optimizer: the frame CNN must stay put by itself.
    optimizer = nnx.jit(lambda model: nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param))(model)
    frozen_before = jax.tree.map(np.asarray, nnx.state(model.frame_cnn))
    clip_before = np.asarray(model.clip_branch.convs[0].kernel[...])

    @nnx.jit
    def train_step(model, optimizer):
        def loss_fn(model):
            logits = model({"frames": frames})
            return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean(), logits

        (loss, logits), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)
        optimizer.update(model, grads)
        return loss, logits

    model.train()
    losses = []
    for _ in range(4):
        loss, logits = train_step(model, optimizer)
        losses.append(float(loss))
    assert logits.shape == (B, CLASSES) and logits.dtype == jnp.float32
    # ln(7) ~ 1.95 at the start; 3 updates on 2 fixed clips must bring it down clearly.
    assert np.all(np.isfinite(losses)) and losses[-1] < 0.7 * losses[0], losses
    frozen_after = jax.tree.map(np.asarray, nnx.state(model.frame_cnn))
    jax.tree.map(np.testing.assert_array_equal, frozen_after, frozen_before)  # weights and BN statistics
    assert np.abs(np.asarray(model.clip_branch.convs[0].kernel[...]) - clip_before).max() > 0
