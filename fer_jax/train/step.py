"""The jitted train and eval steps.

The model and optimizer are split once into a static graph definition and a state pytree. A step
is a pure function of (state, batch, step number): it merges, computes, and splits again, with the
state donated so parameters and optimizer moments are updated in place. Shardings are explicit:
the state is replicated over the mesh, the batch is split along its `data` axis.

Precision: "f32", or "bf16" for bfloat16 compute with float32 parameters and optimizer state (every
layer's compute dtype is set to bfloat16; each layer casts its float32 weights on use, so gradients
and Adam moments stay float32; logits and the loss are float32).

The train step is compiled ahead of time (`lower().compile()`) on its first call, once per batch
signature, and the executable's memory analysis is logged and kept in `Steps.memory`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from fer_jax.config import AugmentConfig, ExperimentConfig
from fer_jax.data.sources import RecordKeys
from fer_jax.errors import ConfigError
from fer_jax.models import build_model
from fer_jax.train.augment import augment_batch, spec_augment_batch
from fer_jax.train.faults import select_if_finite
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
    precision: str = "f32"

    @property
    def memory(self) -> dict | None:
        """The compiled train step's memory analysis (bytes), once it has been compiled."""
        return getattr(self.train, "memory", None)

    @property
    def compile_seconds(self) -> float | None:
        return getattr(self.train, "compile_seconds", None)

    @property
    def record_keys(self) -> RecordKeys:
        """The record features the model reads and its targets (`fer_jax.data.sources.open_split`)."""
        return RecordKeys(self.input_keys, self.optional_keys, self.task.target_keys)


log = logging.getLogger(__name__)

SPECTROGRAM_KEYS = ("log_mel", "log_mel_deltas", "linear_spectrogram")  # SpecAugment masks these
COMPUTE_DTYPES = {"f32": jnp.float32, "bf16": jnp.bfloat16}


def set_compute_dtype(model: nnx.Module, precision: str) -> None:
    """Set the compute dtype of every layer of `model` (parameters keep their float32 storage)."""
    if precision not in COMPUTE_DTYPES:
        raise ConfigError(f"train.precision={precision!r}: choose one of {sorted(COMPUTE_DTYPES)}")
    dtype = COMPUTE_DTYPES[precision]
    # Flax layers and ours read `self.dtype` at call time and cast inputs and weights to it.
    for _, module in nnx.iter_modules(model):
        if hasattr(module, "dtype"):
            module.dtype = dtype


class AotStep:
    """A jitted function compiled ahead of time on its first call (per argument signature), so
    compilation is timed apart from running and the executable's memory analysis can be logged."""

    def __init__(self, jitted, name: str):
        self.jitted, self.name = jitted, name
        self.compiler_options: dict | None = None  # XLA options for the compile (e.g. from the bench)
        self.compiled: dict = {}
        self._last = None  # the executable of the latest call
        self.memory: dict | None = None
        self.compile_seconds: float | None = None

    @staticmethod
    def _signature(args):
        def leaf(x):
            if not hasattr(x, "dtype"):  # a Python scalar such as the step number
                return type(x).__name__
            return tuple(x.shape), str(x.dtype), str(getattr(x, "sharding", None))
        return jax.tree.structure(args), tuple(leaf(x) for x in jax.tree.leaves(args))

    def lower_and_compile(self, *args):
        tic = time.perf_counter()
        compiled = self.jitted.lower(*args).compile(self.compiler_options)
        self.compile_seconds = time.perf_counter() - tic
        self.memory = memory_of(compiled)
        log.info("%s compiled in %.1f s; memory (bytes): %s", self.name, self.compile_seconds, self.memory)
        if jax.process_count() > 1:
            # Hosts finish compiling at different times; meeting here before the first run keeps
            # them within the time CPU (gloo) collectives allow for joining a new collective.
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices(f"fer_jax: {self.name} compiled")
        return compiled

    def __call__(self, *args):
        if self._last is not None:
            # Fast path: the executable checks its arguments itself (in C++) and raises TypeError on
            # a mismatch before running anything; the Python signature costs ~ms per call.
            try:
                return self._last(*args)
            except TypeError:
                pass
        key = self._signature(args)
        if key not in self.compiled:
            self.compiled[key] = self.lower_and_compile(*args)
        self._last = self.compiled[key]
        return self._last(*args)


def memory_of(compiled) -> dict | None:
    """The fields of XLA's memory analysis as a dict of bytes (None where a backend has none)."""
    analysis = compiled.memory_analysis()
    if analysis is None:
        return None
    names = ("argument_size_in_bytes", "output_size_in_bytes", "alias_size_in_bytes", "temp_size_in_bytes",
             "generated_code_size_in_bytes")
    return {n: int(getattr(analysis, n)) for n in names if hasattr(analysis, n)}


def _put_replicated(x: jax.Array, sharding: NamedSharding) -> jax.Array:
    """One process's copy of a leaf -> a global array replicated over the mesh. With several
    processes device_put cannot reach the other hosts' devices: each process gives its own copy,
    identical everywhere since every process initialised from the same seed."""
    if jax.process_count() == 1:
        return jax.device_put(x, sharding)
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        data = _put_replicated(jax.random.key_data(x), sharding)
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
    return jax.make_array_from_process_local_data(sharding, np.asarray(x))


def make_steps(model: nnx.Module, optimizer: nnx.Optimizer, mesh: Mesh, augment: AugmentConfig, seed: int,
               precision: str = "f32", skip_nonfinite: bool = False) -> Steps:
    """`skip_nonfinite`: a step whose loss or gradient is not finite leaves the state unchanged
    (fer_jax.train.faults); every step returns metrics["finite"] either way."""
    task, input_keys = task_of(model), input_keys_of(model) + optional_input_keys_of(model)
    set_compute_dtype(model, precision)
    graphdef, state = nnx.split((model, optimizer))
    replicated = NamedSharding(mesh, PartitionSpec())
    state = jax.tree.map(lambda x: _put_replicated(x, replicated), state)
    augment_key = jax.random.key(seed)

    def train_step(state, batch, step):
        before = jax.tree.map(lambda x: x, state) if skip_nonfinite else None  # merge shares `state`'s variables
        model, optimizer = nnx.merge(graphdef, state)
        model.train()
        inputs = model_inputs(batch, [k for k in input_keys if k in batch])
        if "frames" in inputs:
            # The key depends only on (seed, step), so a resumed run draws the same transforms.
            inputs["frames"] = augment_batch(inputs["frames"], jax.random.fold_in(augment_key, step), augment)
        for i, key in enumerate(k for k in SPECTROGRAM_KEYS if k in inputs):
            audio_key = jax.random.fold_in(jax.random.fold_in(augment_key, step), 1 + i)
            inputs[key] = spec_augment_batch(inputs[key], audio_key, augment)

        def loss_fn(model):
            return task.loss(model(inputs).astype(jnp.float32), batch)

        (loss, metrics), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)
        optimizer.update(model, grads)
        grad_norm = optax.tree.norm(grads)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        new_state = nnx.state((model, optimizer))
        if skip_nonfinite:
            new_state = select_if_finite(finite, new_state, before)
        metrics = {"loss": loss, **metrics, "grad_norm": grad_norm, "finite": finite}
        return new_state, metrics

    def eval_step(state, batch):
        model, _ = nnx.merge(graphdef, state)
        model.eval()
        return task.predict(model(model_inputs(batch, [k for k in input_keys if k in batch])).astype(jnp.float32))

    train = AotStep(jax.jit(train_step, donate_argnums=0, out_shardings=(replicated, replicated)), "train step")
    evaluate = jax.jit(eval_step, out_shardings=NamedSharding(mesh, PartitionSpec("data")))
    return Steps(graphdef, state, train, evaluate, task, input_keys_of(model), optional_input_keys_of(model),
                 precision)


def model_of(config: ExperimentConfig) -> nnx.Module:
    """The config's model, initialised from `train.seed`. Call it inside `nnx.jit` (eagerly, every
    random initialiser is compiled and run on its own, ~20 s on CPU) or `nnx.eval_shape` (shapes only)."""
    return build_model(config.model.name, num_classes=config.data.num_classes, rngs=nnx.Rngs(config.train.seed),
                       **config.model.kwargs)


LR_SCHEDULES = ("constant", "cosine")


def check_lr_schedule(schedule: str) -> None:
    """Raise ConfigError unless `schedule` is one of LR_SCHEDULES (train() checks before reading data)."""
    if schedule not in LR_SCHEDULES:
        raise ConfigError(f"train.lr_schedule must be one of {LR_SCHEDULES}, got {schedule!r}")


def make_optimizer(model: nnx.Module, learning_rate: float, schedule: str = "constant",
                   total_steps: int | None = None) -> nnx.Optimizer:
    """Adam at `learning_rate`, held ("constant") or decayed to 0 over `total_steps` ("cosine")."""
    check_lr_schedule(schedule)
    if schedule == "constant":
        return nnx.Optimizer(model, optax.adam(learning_rate), wrt=nnx.Param)
    if not total_steps or total_steps < 1:  # cosine
        raise ConfigError(f"train.lr_schedule 'cosine' needs the run's number of steps, got {total_steps!r}")
    return nnx.Optimizer(model, optax.adam(optax.cosine_decay_schedule(learning_rate, total_steps)), wrt=nnx.Param)
