"""An exported ONNX model (`fer-jax export --format onnx`) run by onnxruntime, as `predict` runs a
checkpoint: nothing here imports JAX or the training stack, so a small device needs only
onnxruntime, the preprocessing (OpenCV, dlib, PyAV) and this package's infer/ and preprocess/.

The model has the fixed batch size its sidecar names; `predict` pads the last batch to it.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib

import numpy as np

from fer_jax.errors import CheckpointError, ConfigError
from fer_jax.preprocess.clip import ClipConfig

ONNX_FORMAT = "fer-jax onnx model 1"


@dataclasses.dataclass
class OnnxModel:
    """`predict(examples)` as `InferenceModel.predict`, and the facts `predict_video` reads."""

    path: pathlib.Path
    meta: dict
    session: object  # onnxruntime.InferenceSession

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(self.meta["inputs"])

    @property
    def batch_size(self) -> int:
        return int(next(iter(self.meta["inputs"].values()))["shape"][0])

    @property
    def clip(self) -> ClipConfig:
        return ClipConfig(**self.meta["clip"])

    @property
    def class_names(self) -> list[str]:
        return list(self.meta["class_names"])

    @property
    def task(self) -> str:
        return self.meta["task"]

    @property
    def model_name(self) -> str:
        return self.meta["model"]

    @property
    def workdir(self) -> pathlib.Path:
        return self.path

    @property
    def step(self) -> int:
        return int(self.meta["step"])

    def predict(self, examples: list[dict]) -> np.ndarray:
        return predict_padded(lambda feed: self.session.run(None, feed)[0], examples, self.keys, self.batch_size)


def predict_padded(run, examples: list[dict], keys, batch_size: int) -> np.ndarray:
    """Outputs (N, ...) of `run({key: (batch_size, ...)})` for N examples, in batches of exactly
    `batch_size` (the last padded with copies of its first example, whose outputs are dropped):
    one compiled shape, or the fixed batch of an ONNX model."""
    outputs = []
    for start in range(0, len(examples), batch_size):
        chunk = examples[start: start + batch_size]
        padded = chunk + [chunk[0]] * (batch_size - len(chunk))
        outputs.append(np.asarray(run({k: np.stack([e[k] for e in padded]) for k in keys}))[: len(chunk)])
    return np.concatenate(outputs) if outputs else np.zeros((0,), np.float32)


def sidecar_path(path) -> pathlib.Path:
    """FILE.json beside an exported FILE (either format; here, where no JAX is imported)."""
    path = pathlib.Path(path)
    return path.with_name(path.name + ".json")


def read_sidecar(path: pathlib.Path, format: str) -> dict:
    """The sidecar of an exported FILE, checked to be there, beside FILE, and of `format`."""
    side = sidecar_path(path)
    for p in (path, side):
        if not p.is_file():
            raise CheckpointError(f"{p}: missing; `fer-jax export` writes FILE and FILE.json together")
    meta = json.loads(side.read_text())
    if meta.get("format") != format:
        raise CheckpointError(f"{side}: not a sidecar of a {format!r} (format {meta.get('format')!r})")
    return meta


def load_onnx(path, threads: int | None = None) -> OnnxModel:
    """An exported ONNX file and its sidecar; threads: onnxruntime's intra-op threads (default all)."""
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError("running an ONNX model needs onnxruntime: pip install onnxruntime") from None
    path = pathlib.Path(path)
    meta = read_sidecar(path, ONNX_FORMAT)
    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    try:
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own assorted errors on a damaged file
        raise CheckpointError(f"{path}: not a readable ONNX model ({type(e).__name__}: {e})") from None
    return OnnxModel(path, meta, session)
