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
from fer_jax.train.tasks import (
    Classification,
    Regression,
    input_keys_of,
    model_inputs,
    optional_input_keys_of,
    task_of,
)


@dataclasses.dataclass
class Steps:
    """The compiled steps and the sharded state they act on."""

    graphdef: nnx.GraphDef
    state: nnx.State
    train: Callable  # (state, batch, step) -> (state, metrics)
    evaluate: Callable  # (state, batch) -> predictions (class (B,) or values (B, T))
    task: Classification | Regression
    input_keys: tuple[str, ...]  # record features the model reads
    optional_keys: tuple[str, ...]  # ... and those it reads when the records have them

    def batch_keys(self, features) -> tuple[str, ...]:
        """The record features a batch must carry, given the features a corpus has."""
        return self.input_keys + tuple(k for k in self.optional_keys if k in features) + self.task.target_keys


def make_steps(model: nnx.Module, optimizer: nnx.Optimizer, mesh: Mesh, augment: AugmentConfig, seed: int) -> Steps:
    task, input_keys = task_of(model), input_keys_of(model) + optional_input_keys_of(model)
    graphdef, state = nnx.split((model, optimizer))
    replicated = NamedSharding(mesh, PartitionSpec())
    state = jax.device_put(state, replicated)
    augment_key = jax.random.key(seed)

    def train_step(state, batch, step):
        model, optimizer = nnx.merge(graphdef, state)
        model.train()
        inputs = model_inputs(batch, [k for k in input_keys if k in batch])
        if "frames" in inputs:
            # The key depends only on (seed, step), so a resumed run draws the same transforms.
            inputs["frames"] = augment_batch(inputs["frames"], jax.random.fold_in(augment_key, step), augment)

        def loss_fn(model):
            return task.loss(model(inputs).astype(jnp.float32), batch)

        (loss, metrics), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)
        optimizer.update(model, grads)
        metrics = {"loss": loss, **metrics, "grad_norm": optax.tree.norm(grads)}
        return nnx.state((model, optimizer)), metrics

    def eval_step(state, batch):
        model, _ = nnx.merge(graphdef, state)
        model.eval()
        return task.predict(model(model_inputs(batch, [k for k in input_keys if k in batch])).astype(jnp.float32))

    train = jax.jit(train_step, donate_argnums=0, out_shardings=(replicated, replicated))
    evaluate = jax.jit(eval_step, out_shardings=NamedSharding(mesh, PartitionSpec("data")))
    return Steps(graphdef, state, train, evaluate, task, input_keys_of(model), optional_input_keys_of(model))


def make_optimizer(model: nnx.Module, learning_rate: float) -> nnx.Optimizer:
    return nnx.Optimizer(model, optax.adam(learning_rate), wrt=nnx.Param)
