"""A model that learns at all fits a fixed small batch in a few Adam steps: the check each model's
tests make, with its own loss, step size and number of steps; and one compiled forward pass that
keeps what training mode updates."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx


def assert_adam_steps_fit(model: nnx.Module, batch, loss_of, *, learning_rate: float, steps: int = 30,
                          forward=None, factor: float = 0.6) -> tuple[float, float]:
    """Train `model` for `steps` Adam steps (training mode: dropout on) on `batch`; assert that its
    evaluation-mode loss ends below `factor` times where it started; return (before, after).

    loss_of(outputs) -> scalar loss of the model's outputs on `batch`. forward(model, batch) ->
    outputs: a jitted evaluation forward the test file already compiled for these shapes (default:
    a new one)."""
    optimizer = nnx.Optimizer(model, optax.adam(learning_rate), wrt=nnx.Param)

    @nnx.jit
    def train_step(model, optimizer):
        loss, grads = nnx.value_and_grad(lambda m: loss_of(m(batch)))(model)
        optimizer.update(model, grads)
        return loss

    forward = forward or nnx.jit(lambda m, x: m(x))

    def eval_loss():
        model.eval()
        return float(loss_of(forward(model, batch)))

    before = eval_loss()
    model.train()
    for _ in range(steps):
        train_step(model, optimizer)
    after = eval_loss()
    assert np.isfinite(after) and after < factor * before, (before, after)
    return before, after


def cross_entropy(labels):
    """loss_of for classifiers: the mean softmax cross-entropy of logits (B, C) against `labels` (B,)."""
    return lambda logits: optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


# Parity tests compare numbers, not speed: XLA's optimisation level 0 compiles the big backbones fast.
FAST_COMPILE = {"xla_backend_optimization_level": 0}


@functools.partial(jax.jit, static_argnums=0, compiler_options=FAST_COMPILE)
def _apply(graphdef, state, inputs):
    model = nnx.merge(graphdef, state)
    return model(inputs), nnx.state(model)


def forward_keeping_state(model, inputs):
    """model(inputs) compiled; what it updates in training mode (BatchNorm's running averages, RNG
    counts) written back into `model`."""
    graphdef, state = nnx.split(model)
    out, state = _apply(graphdef, state, inputs)
    nnx.update(model, state)
    return out


def masked_batch(video, real_frames_of_first: int, **others) -> dict:
    """{"frames": video, **others, "frame_mask"} as jax arrays (float32 but the mask): every clip's
    frames real, but the first clip's after `real_frames_of_first`, which are padding."""
    mask = np.ones(video.shape[:2], bool)
    mask[0, real_frames_of_first:] = False
    return {"frames": jnp.asarray(video, jnp.float32), **{k: jnp.asarray(v, jnp.float32) for k, v in others.items()},
            "frame_mask": jnp.asarray(mask)}
