"""A saved run (`fer_jax.runs.saved_run`) -> a model ready for new videos: batched prediction, and
how its inputs were made.

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
import numpy as np

from fer_jax.config import ExperimentConfig
from fer_jax.errors import ConfigError
from fer_jax.infer.onnx_model import predict_padded
from fer_jax.preprocess.clip import ClipConfig
from fer_jax.runs.saved_run import SavedRun, load_run

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


@dataclasses.dataclass
class InferenceModel:
    """A restored run: `predict(inputs)` on batches of record arrays, and what they must look like."""

    run: SavedRun
    preprocessing: Preprocessing
    keys: tuple[str, ...]  # the record features the model reads
    batch_size: int = 8

    def __post_init__(self):
        self.forward = self.run.forward(probabilities=self.task == "classification")
        self._jitted = jax.jit(self.forward)

    @property
    def workdir(self) -> pathlib.Path:
        return self.run.workdir

    @property
    def config(self) -> ExperimentConfig:
        return self.run.config

    @property
    def model_name(self) -> str:
        return self.config.model.name

    @property
    def step(self) -> int:
        return self.run.step

    @property
    def task(self) -> str:
        """"classification" or "regression"."""
        return self.run.task.name

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
        return predict_padded(lambda batch: self._jitted(self.run.params, batch), examples, self.keys,
                              self.batch_size)

    def warm_up(self) -> None:
        """Compile now (a server does this at start, not on its first request)."""
        spec = self.input_spec()
        self.predict([{k: np.zeros(shape, dtype) for k, (shape, dtype) in spec.items()}])


def load_model(directory, step: int | None = None, batch_size: int = 8) -> InferenceModel:
    """Restore the best (else the latest, or the given) checkpoint of a training workdir."""
    run = load_run(directory, step)
    preprocessing = preprocessing_of(run.workdir, run.config)
    spec = preprocessing.clip.record_spec()
    keys = run.record_keys.inputs + tuple(k for k in run.record_keys.optional if k in spec)
    classes = run.config.data.num_classes
    if run.task.name == "classification" and len(preprocessing.class_names) != classes:
        raise ConfigError(f"{run.workdir}: {len(preprocessing.class_names)} class names for "
                          f"{classes} classes ({preprocessing.class_names})")
    return InferenceModel(run, preprocessing, keys, batch_size)
