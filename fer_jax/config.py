"""Experiment configs: dataclasses in Python files, with type-checked `--set a.b=value` overrides.

A config file under `experiments/` defines `get_config() -> ExperimentConfig`. The config is saved
as JSON next to every checkpoint, and that saved copy is what `eval` and inference read, so how a
model's inputs were made can never drift from how it was trained.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import pathlib
import sys
import types
import typing
from typing import Any

from fer_jax.errors import ConfigError


@dataclasses.dataclass
class DataConfig:
    """Which records to read and how to batch them."""

    dataset: str = "demo_av"  # TFDS name (with optional "/config")
    data_dir: str = ""  # TFDS data dir; empty -> `<workdir>/../tfds` unless set
    train_split: str = "train"
    val_split: str = "validation"
    num_classes: int = 7
    class_names: tuple[str, ...] = ()
    frames: int = 8
    size: int = 64
    channels: int = 1
    global_batch_size: int = 32
    eval_batch_size: int = 64
    shuffle_seed: int = 0
    worker_count: int = 0  # grain worker processes; 0 reads in the main process
    read_threads: int = 4  # threads reading whole batches in each reading process
    prefetch_batches: int = 8  # batches read ahead in each reading process (grain's default, 500, is GBs)
    device_prefetch: int = 2  # batches copied onto the devices ahead of the train step
    # Cross-validation runs for `fer-jax cv`: (name, train split, validation split) triples.
    cv_runs: tuple[tuple[str, str, str], ...] = ()


@dataclasses.dataclass
class ModelConfig:
    name: str = "cnn3d_convlstm"
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class AugmentConfig:
    """The paper's augmentation: rotations by one of +-5, +-10, +-15 degrees and horizontal flips."""

    rotations_deg: tuple[float, ...] = (5.0, 10.0, 15.0)
    rotate_prob: float = 0.5
    flip_prob: float = 0.5
    enabled: bool = True
    # Random crops (off at 0): pad each clip by this many edge pixels, cut a frame-sized window at
    # a random offset (one per clip, all frames alike).
    crop_pad: int = 0
    # SpecAugment-style masks on audio spectrograms (off at 0): this many time / frequency bands of
    # up to the given width, set to the clip's mean.
    time_masks: int = 0
    time_mask_width: int = 10
    freq_masks: int = 0
    freq_mask_width: int = 8


@dataclasses.dataclass
class TrainConfig:
    learning_rate: float = 1e-4  # Adam, as in the paper
    # "constant", or "cosine": from learning_rate down to 0 at the run's last step (cosine decay,
    # Loshchilov & Hutter 2017), so a short run ends on small steps rather than wherever its last
    # large one left it.
    lr_schedule: str = "constant"
    num_epochs: int = 80
    max_steps: int = 0  # stop after this many steps in total (0: num_epochs decides)
    eval_every_epochs: int = 1
    checkpoint_every_steps: int = 0  # 0: checkpoint at every evaluation only
    seed: int = 0
    log_every_steps: int = 10
    # A step with a non-finite loss or gradient: "error" stops training naming it (the last good
    # checkpoint is kept); "skip" leaves the state as it was and counts it, up to max_skipped_steps.
    nonfinite: str = "error"
    max_skipped_steps: int = 10
    precision: str = "f32"  # "bf16": bfloat16 compute, float32 parameters and optimizer state


@dataclasses.dataclass
class ExperimentConfig:
    name: str = "experiment"
    workdir: str = "workdir"
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    augment: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)


def leave_one_fold_out(folds: typing.Sequence[str]) -> tuple[tuple[str, str, str], ...]:
    """CV runs that hold out each fold in turn and train on the rest (split names joined by '+')."""
    return tuple((fold, "+".join(f for f in folds if f != fold), fold) for fold in folds)


def load_config(path: str | pathlib.Path, overrides: typing.Sequence[str] = ()) -> ExperimentConfig:
    """Import `path`, call its `get_config()`, then apply `key=value` overrides."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found (configs live in experiments/*.py)")
    spec = importlib.util.spec_from_file_location(f"fer_jax_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    # A config may import helpers that sit beside it (experiments/_common.py).
    sys.path.insert(0, str(path.resolve().parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.pop(0)
    if not hasattr(module, "get_config"):
        raise ConfigError(f"{path}: a config file must define get_config() -> ExperimentConfig")
    config = module.get_config()
    if not isinstance(config, ExperimentConfig):
        raise ConfigError(f"{path}: get_config() returned {type(config).__name__}, not ExperimentConfig")
    return apply_overrides(config, overrides)


def apply_overrides(config: ExperimentConfig, overrides: typing.Sequence[str]) -> ExperimentConfig:
    """Apply `a.b=value` strings; the value is parsed to the field's declared type."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. train.num_epochs=10")
        *parents, leaf = key.strip().split(".")
        node = config
        for name in parents:
            node = _field_value(node, name, key)
        if isinstance(node, dict):  # free-form kwargs (e.g. model.kwargs.dropout=0.3)
            node[leaf] = _parse_untyped(raw)
            continue
        _field_value(node, leaf, key)
        hints = typing.get_type_hints(type(node))
        setattr(node, leaf, _parse_typed(raw, hints[leaf], key))
    return config


def _field_value(node, name: str, key: str):
    if isinstance(node, dict):
        if name not in node:
            raise ConfigError(f"--set {key}: no key {name!r}; known: {sorted(node)}")
        return node[name]
    names = [f.name for f in dataclasses.fields(node)]
    if name not in names:
        raise ConfigError(f"--set {key}: {type(node).__name__} has no field {name!r}; fields: {names}")
    return getattr(node, name)


def _parse_untyped(raw: str):
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _parse_typed(raw: str, hint, key: str):
    origin = typing.get_origin(hint)
    try:
        if hint is bool:
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError("expected true or false")
            return raw.lower() in ("true", "1")
        if hint in (int, float, str):
            return hint(raw)
        if origin is tuple:
            (item_type, *_rest) = typing.get_args(hint)
            items = json.loads(raw) if raw.strip().startswith("[") else [s for s in raw.split(",") if s]
            return tuple(item_type(x) for x in items)
        if origin is dict or origin in (types.UnionType, typing.Union):
            return json.loads(raw)
    except (ValueError, TypeError, json.JSONDecodeError) as e:
        raise ConfigError(f"--set {key}={raw!r}: cannot parse as {hint}: {e}") from None
    raise ConfigError(f"--set {key}: fields of type {hint} cannot be set from the command line")


def to_dict(config: ExperimentConfig) -> dict:
    return dataclasses.asdict(config)


def from_dict(d: dict) -> ExperimentConfig:
    """Inverse of `to_dict` (used to read the config saved beside a checkpoint)."""

    def build(cls, values):
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for f in dataclasses.fields(cls):
            if f.name not in values:
                continue
            value, hint = values[f.name], hints[f.name]
            if dataclasses.is_dataclass(hint):
                value = build(hint, value)
            elif typing.get_origin(hint) is tuple:
                value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
            kwargs[f.name] = value
        return cls(**kwargs)

    return build(ExperimentConfig, d)


def save_config(config: ExperimentConfig, path: str | pathlib.Path) -> None:
    pathlib.Path(path).write_text(json.dumps(to_dict(config), indent=2))


def read_saved_config(path: str | pathlib.Path) -> ExperimentConfig:
    path = pathlib.Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no saved config (is this a fer-jax workdir or checkpoint dir?)")
    return from_dict(json.loads(path.read_text()))
