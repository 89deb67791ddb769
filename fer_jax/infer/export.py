"""`fer-jax export`: a run's model as one serialized `jax.export` artifact, plus the preprocessing
that makes its inputs, so inference needs neither fer-jax's model classes nor its training config.

    FILE         jax.export.Exported.serialize(): StableHLO with the weights inside, polymorphic
                 in the batch size; inputs {key: (b, ...) record arrays as the records store them
                 (uint8 frames)}, output probabilities (b, classes), or values (b, T) for regressors
    FILE.json    {"format", "inputs": {key: {"shape", "dtype"}}, "output", "task", "class_names",
                  "clip": ClipConfig fields (how frames, faces and audio are prepared), "model",
                  "checkpoint", "step"}

Load with `load_exported(FILE)`, or with nothing but JAX:
`jax.export.deserialize(open(FILE, "rb").read()).call(inputs)`.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib

import jax
import numpy as np

from fer_jax.errors import CheckpointError
from fer_jax.infer.loader import InferenceModel, Preprocessing, load_model
from fer_jax.infer.onnx_model import read_sidecar, sidecar_path
from fer_jax.preprocess.clip import ClipConfig

FORMAT = "fer-jax exported model 1"


def export_model(model: InferenceModel, out) -> tuple[pathlib.Path, pathlib.Path]:
    """Serialize `model` to `out` and its preprocessing to `out`.json; returns both paths."""
    forward, params = model.forward, model.run.params

    def apply(inputs):  # the weights become constants of the program
        return forward(params, inputs)

    (batch,) = jax.export.symbolic_shape("b")
    args = {k: jax.ShapeDtypeStruct((batch, *shape), dtype) for k, (shape, dtype) in model.input_spec().items()}
    exported = jax.export.export(jax.jit(apply))(args)
    out = pathlib.Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(exported.serialize())
    meta = sidecar_meta(model, FORMAT, batch="b")
    side = sidecar_path(out)
    side.write_text(json.dumps(meta, indent=1))
    return out, side


def sidecar_meta(model: InferenceModel, format: str, batch) -> dict:
    """What an exported model's sidecar holds (the module docstring); batch: "b" or a fixed size."""
    return {
        "format": format,
        "inputs": {k: {"shape": [batch, *shape], "dtype": np.dtype(dtype).name}
                   for k, (shape, dtype) in model.input_spec().items()},
        "output": f"probabilities ({batch}, classes)" if model.task == "classification" else f"values ({batch}, T)",
        "task": model.task,
        "class_names": list(model.class_names),
        "clip": dataclasses.asdict(model.clip),
        "model": model.config.model.name,
        "checkpoint": str(model.workdir),
        "step": model.step,
    }


def export_checkpoint(directory, out, step: int | None = None) -> tuple[pathlib.Path, pathlib.Path]:
    return export_model(load_model(directory, step), out)


@dataclasses.dataclass
class ExportedModel:
    """An exported artifact and its sidecar: `predict(examples)` as `InferenceModel.predict`."""

    path: pathlib.Path
    meta: dict
    exported: jax.export.Exported
    batch_size: int = 8

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(self.meta["inputs"])

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing(ClipConfig(**self.meta["clip"]), self.meta["class_names"])

    def predict(self, examples: list[dict]) -> np.ndarray:
        outputs = []
        for start in range(0, len(examples), self.batch_size):
            chunk = examples[start: start + self.batch_size]
            batch = {k: np.stack([e[k] for e in chunk]) for k in self.keys}
            outputs.append(np.asarray(self.exported.call(batch)))
        return np.concatenate(outputs)


def load_exported(path) -> ExportedModel:
    path = pathlib.Path(path)
    meta = read_sidecar(path, FORMAT)
    try:
        exported = jax.export.deserialize(bytearray(path.read_bytes()))
    except Exception as e:  # flatbuffers raise assorted errors on a damaged file
        raise CheckpointError(f"{path}: not a readable jax.export artifact ({type(e).__name__}: {e})") from None
    return ExportedModel(path, meta, exported)
