"""A run on disk: `config.json` beside `checkpoints/`, as `fer-jax train` (or `fer-jax import`) writes it.

Everything about the model and its inputs is read from the saved config; the checkpoint step is
the best by validation score, else the latest, unless one is asked for. Only the model's variables
are restored (no optimizer is built and none of its moments are read).
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec, SingleDeviceSharding

from fer_jax.config import ExperimentConfig, read_saved_config
from fer_jax.data.sources import RecordKeys, Split, open_split
from fer_jax.eval.evaluate import predict_split
from fer_jax.sharding import make_mesh
from fer_jax.train import checkpoint
from fer_jax.train.step import model_of, set_compute_dtype
from fer_jax.train.tasks import Classification, Regression, VideoScore, model_inputs, record_keys_of, task_of


def run_dir(directory) -> pathlib.Path:
    """The training workdir for a workdir or its checkpoints/ folder."""
    workdir = pathlib.Path(directory)
    return workdir.parent if workdir.name == "checkpoints" else workdir


def forward_fn(graphdef: nnx.GraphDef, keys, *, probabilities: bool) -> Callable:
    """f(params, inputs) -> the model's outputs in evaluation mode, float32 (B, ...); with
    `probabilities`, the softmax over the last axis (a classifier's class probabilities (B, C)).

    inputs: {key: record arrays (B, ...)} as the records store them (uint8 frames); scaled here
    exactly as the train step does (`fer_jax.train.tasks.model_inputs`); keys not in `inputs` are
    optional ones the records lack."""

    def forward(params, inputs):
        model = nnx.merge(graphdef, params)
        model.eval()
        out = model(model_inputs(inputs, [k for k in keys if k in inputs])).astype(jnp.float32)
        return jax.nn.softmax(out, axis=-1) if probabilities else out

    return forward


@dataclasses.dataclass
class SavedRun:
    """A restored run: its config, the step restored, the model as (graphdef, params)."""

    workdir: pathlib.Path
    config: ExperimentConfig
    step: int
    graphdef: nnx.GraphDef
    params: nnx.State  # the model's variables only
    task: Classification | Regression | VideoScore
    record_keys: RecordKeys  # what the model reads, and its targets

    def forward(self, *, probabilities: bool) -> Callable:
        """The un-jitted forward pass of the model (see forward_fn)."""
        inputs = self.record_keys.inputs + self.record_keys.optional
        return forward_fn(self.graphdef, inputs, probabilities=probabilities)

    def open_split(self, split: str | None = None) -> Split:
        """A split of the run's corpus (default its validation split), checked against the model."""
        return open_split(self.config.data, split or self.config.data.val_split, self.record_keys)

    def predict_split(self, split: Split, mesh: Mesh, *, probabilities: bool = False) -> tuple[np.ndarray, dict]:
        """(outputs (N, ...), {target: (N, ...)}) over every example of `split`, in record order."""
        forward = jax.jit(self.forward(probabilities=probabilities))
        return predict_split(forward, self.params, split, self.config.data, mesh, self.task.target_keys)


def evaluation_mesh(directory) -> Mesh:
    """The mesh to evaluate a saved run on: every device that its eval batch divides (`make_mesh`)."""
    config = read_saved_config(run_dir(directory) / "config.json")
    return make_mesh(batch_sizes=(config.data.eval_batch_size,))


def load_run(directory, step: int | None = None, *, mesh: Mesh | None = None,
             trained_precision: bool = False) -> SavedRun:
    """Restore the given (else the best, else the latest) checkpoint of a training workdir.

    mesh: the parameters are replicated over it (default: on the first device).
    trained_precision: compute in the run's `train.precision` (as its validation did) rather than float32.
    """
    workdir = run_dir(directory)
    config = read_saved_config(workdir / "config.json")
    manager = checkpoint.checkpoint_manager(workdir / "checkpoints", read_only=True)
    step = checkpoint.chosen_step(manager, step)
    model = nnx.eval_shape(lambda: model_of(config))  # shapes only: nothing computed or compiled
    if trained_precision:
        set_compute_dtype(model, config.train.precision)
    graphdef, abstract = nnx.split(model)
    placed = NamedSharding(mesh, PartitionSpec()) if mesh is not None else SingleDeviceSharding(jax.devices()[0])
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=placed), abstract)
    params = checkpoint.restore_model(manager, step, abstract)
    return SavedRun(workdir, config, int(step), graphdef, params, task_of(model), record_keys_of(model))
