"""A saved run -> a model ready for new videos: restored weights, a jitted forward pass, and how
its inputs were made.

How the inputs were made is never given by hand: `config.json` beside the checkpoints names the
corpus (`data.dataset`, e.g. "demo_av/gray64_t8"), and that corpus' builder config holds the
`ClipConfig` its records were built with and the class names. A run may instead carry
`preprocessing.json` beside `config.json` (written by `fer-jax import`, and for corpora that are
not fer-jax builders), which then wins: {"clip": {ClipConfig fields}, "class_names": [...]}.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from fer_jax.config import ExperimentConfig, read_saved_config
from fer_jax.errors import CheckpointError, ConfigError
from fer_jax.preprocess.clip import ClipConfig

PREPROCESSING_FILE = "preprocessing.json"


@dataclasses.dataclass
class Preprocessing:
    clip: ClipConfig
    class_names: list[str]

    def to_json(self) -> dict:
        return {"clip": dataclasses.asdict(self.clip), "class_names": list(self.class_names)}

    @classmethod
    def from_json(cls, d: dict) -> "Preprocessing":
        return cls(ClipConfig(**d["clip"]), list(d["class_names"]))


def run_dir(directory) -> pathlib.Path:
    """The training workdir for a workdir or its checkpoints/ folder."""
    workdir = pathlib.Path(directory)
    return workdir.parent if workdir.name == "checkpoints" else workdir


def preprocessing_of(workdir: pathlib.Path, config: ExperimentConfig) -> Preprocessing:
    """How the run's inputs were made (see the module docstring)."""
    saved = workdir / PREPROCESSING_FILE
    if saved.is_file():
        return Preprocessing.from_json(json.loads(saved.read_text()))
    import data_builders

    try:
        builder = data_builders.builder(config.data.dataset)
    except ConfigError as e:
        raise ConfigError(
            f"{workdir}: cannot tell how this run's inputs were made: {e}; its corpus is not a fer-jax "
            f"builder, so write {PREPROCESSING_FILE} beside config.json") from None
    clip = getattr(builder.builder_config, "clip", None)
    if not isinstance(clip, ClipConfig):
        raise ConfigError(f"{workdir}: corpus {config.data.dataset} was not made by the clip preprocessing "
                          f"(its builder config has no ClipConfig), so new videos cannot be prepared like it")
    names = list(config.data.class_names)
    features = builder.info.features
    if not names and "label" in features:
        names = list(features["label"].names)
    return Preprocessing(clip, names)


def forward_fn(graphdef, task_name: str, keys):
    """f(state, inputs) -> probabilities (B, C) for classifiers, values (B, T) for regressors.

    inputs: {key: record arrays (B, ...)} as the records store them (uint8 frames); scaled here
    exactly as the train step does (`fer_jax.train.tasks.model_inputs`).
    """
    from fer_jax.train.tasks import model_inputs

    def forward(state, inputs):
        model, _ = nnx.merge(graphdef, state)
        model.eval()
        out = model(model_inputs(inputs, keys)).astype(jnp.float32)
        return jax.nn.softmax(out, axis=-1) if task_name == "classification" else out

    return forward


@dataclasses.dataclass
class InferenceModel:
    """A restored run: `predict(inputs)` on batches of record arrays, and what they must look like."""

    workdir: pathlib.Path
    config: ExperimentConfig
    preprocessing: Preprocessing
    task: str  # "classification" or "regression"
    keys: tuple[str, ...]  # the record features the model reads
    step: int
    graphdef: object
    state: object
    batch_size: int = 8

    def __post_init__(self):
        self._forward = jax.jit(forward_fn(self.graphdef, self.task, self.keys))

    @property
    def clip(self) -> ClipConfig:
        return self.preprocessing.clip

    @property
    def class_names(self) -> list[str]:
        return self.preprocessing.class_names

    def input_spec(self) -> dict:
        """{key: (shape of one example, dtype)}."""
        spec = self.clip.record_spec()
        return {k: spec[k] for k in self.keys}

    def predict(self, examples: list[dict]) -> np.ndarray:
        """Outputs for a list of examples, run in padded batches of `batch_size` (one compile)."""
        outputs = []
        for start in range(0, len(examples), self.batch_size):
            chunk = examples[start: start + self.batch_size]
            padded = chunk + [chunk[0]] * (self.batch_size - len(chunk))
            batch = {k: np.stack([e[k] for e in padded]) for k in self.keys}
            outputs.append(np.asarray(self._forward(self.state, batch))[: len(chunk)])
        return np.concatenate(outputs) if outputs else np.zeros((0,), np.float32)

    def warm_up(self) -> None:
        """Compile now (a server does this at start, not on its first request)."""
        spec = self.input_spec()
        self.predict([{k: np.zeros(shape, dtype) for k, (shape, dtype) in spec.items()}])


def abstract_run(config: ExperimentConfig):
    """(graphdef, abstract state) of the run's (model, optimizer), with nothing computed or compiled:
    the shapes Orbax restores into, on one device."""
    from fer_jax.models import build_model
    from fer_jax.train.step import make_optimizer

    def create():
        model = build_model(config.model.name, num_classes=config.data.num_classes,
                            rngs=nnx.Rngs(config.train.seed), **config.model.kwargs)
        return model, make_optimizer(model, config.train.learning_rate)

    model, optimizer = nnx.eval_shape(create)
    graphdef, abstract = nnx.split((model, optimizer))
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), abstract)
    return model, graphdef, abstract


def load_model(directory, step: int | None = None, batch_size: int = 8) -> InferenceModel:
    """Restore the best (else the latest, or the given) checkpoint of a training workdir."""
    from fer_jax.train import checkpoint
    from fer_jax.train.tasks import input_keys_of, optional_input_keys_of, task_of

    workdir = run_dir(directory)
    config = read_saved_config(workdir / "config.json")
    preprocessing = preprocessing_of(workdir, config)
    manager = checkpoint.checkpoint_manager(workdir / "checkpoints", read_only=True)
    step = step if step is not None else checkpoint.best_step(manager) or manager.latest_step()
    if step is None:
        raise CheckpointError(f"{workdir / 'checkpoints'}: no checkpoint to predict with")
    model, graphdef, abstract = abstract_run(config)
    state, _ = checkpoint.restore(manager, step, abstract)
    spec = preprocessing.clip.record_spec()
    keys = input_keys_of(model) + tuple(k for k in optional_input_keys_of(model) if k in spec)
    task = task_of(model).name
    if task == "classification" and len(preprocessing.class_names) != config.data.num_classes:
        raise ConfigError(f"{workdir}: {len(preprocessing.class_names)} class names for "
                          f"{config.data.num_classes} classes ({preprocessing.class_names})")
    return InferenceModel(workdir, config, preprocessing, task, keys, int(step), graphdef, state, batch_size)
