"""The jitted train and eval steps.

The model and optimizer are split once into a static graph definition and a state pytree. A step
is a pure function of (state, batch, step number): it merges, computes, and splits again, with the
state donated so parameters and optimizer moments are updated in place. Shardings are explicit:
the state is replicated over the mesh, the batch is split along its `data` axis.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from fer_jax.config import AugmentConfig
from fer_jax.train.augment import augment_batch


def model_inputs(batch: dict) -> dict:
    """uint8 frames (B, T, H, W, C) -> float32 in [0, 1]; the models never see uint8."""
    return {"frames": batch["frames"].astype(jnp.float32) / 255.0}


@dataclasses.dataclass
class Steps:
    """The compiled steps and the sharded state they act on."""

    graphdef: nnx.GraphDef
    state: nnx.State
    train: Callable  # (state, batch, step) -> (state, metrics)
    evaluate: Callable  # (state, batch) -> predicted class (B,)


def make_steps(model: nnx.Module, optimizer: nnx.Optimizer, mesh: Mesh, augment: AugmentConfig, seed: int) -> Steps:
    graphdef, state = nnx.split((model, optimizer))
    replicated = NamedSharding(mesh, PartitionSpec())
    state = jax.device_put(state, replicated)
    augment_key = jax.random.key(seed)

    def train_step(state, batch, step):
        model, optimizer = nnx.merge(graphdef, state)
        model.train()
        inputs = model_inputs(batch)
        # The augmentation key depends only on (seed, step), so a resumed run draws the same transforms.
        inputs["frames"] = augment_batch(inputs["frames"], jax.random.fold_in(augment_key, step), augment)

        def loss_fn(model):
            logits = model(inputs).astype(jnp.float32)
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()
            return loss, logits

        (loss, logits), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)
        optimizer.update(model, grads)
        metrics = {
            "loss": loss,
            "accuracy": (logits.argmax(-1) == batch["label"]).mean(),
            "grad_norm": optax.tree.norm(grads),
        }
        return nnx.state((model, optimizer)), metrics

    def eval_step(state, batch):
        model, _ = nnx.merge(graphdef, state)
        model.eval()
        return model(model_inputs(batch)).argmax(-1)

    train = jax.jit(train_step, donate_argnums=0, out_shardings=(replicated, replicated))
    evaluate = jax.jit(eval_step, out_shardings=NamedSharding(mesh, PartitionSpec("data")))
    return Steps(graphdef, state, train, evaluate)


def make_optimizer(model: nnx.Module, learning_rate: float) -> nnx.Optimizer:
    return nnx.Optimizer(model, optax.adam(learning_rate), wrt=nnx.Param)
