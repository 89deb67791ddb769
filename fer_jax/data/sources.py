"""Opening a split of a built corpus and checking it against the config and the model.

`open_split` is the one way in, for training, evaluation and the bench alike: it opens the split's
array_record files, works out which record features a batch carries (what the model reads, what it
reads when the records have it, its targets) and refuses records that disagree with the config
before anything is compiled.
"""

from __future__ import annotations

import dataclasses

import tensorflow_datasets as tfds

from fer_jax.config import DataConfig
from fer_jax.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class RecordKeys:
    """The record features a model needs: its `inputs`, the `optional` inputs it uses when the
    records have them (e.g. "frame_mask"), and its training `targets`."""

    inputs: tuple[str, ...]
    optional: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()

    def for_features(self, features) -> tuple[str, ...]:
        """The features a batch carries, given those a corpus has."""
        return tuple(self.inputs) + tuple(k for k in self.optional if k in features) + tuple(self.targets)


@dataclasses.dataclass
class Split:
    """One opened split: its name, its random-access source and the features a batch carries."""

    name: str
    source: object  # a tfds.data_source over array_record files
    keys: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.source)

    @property
    def features(self):
        return self.source.dataset_info.features


def open_source(config: DataConfig, split: str):
    """A random-access view of one split's array_record files (no TensorFlow involved)."""
    try:
        return tfds.data_source(config.dataset, split=split, data_dir=config.data_dir or None, download=False)
    except Exception as e:  # tfds raises several types for "not built" / "no such split"
        raise ConfigError(
            f"cannot open {config.dataset}[{split}] in {config.data_dir or 'the default TFDS data dir'}: {e}. "
            f"Build it first: fer-jax build {config.dataset.split('/')[0]}"
        ) from e


def check_source_matches(config: DataConfig, source, split: str, keys=("frames", "label")) -> None:
    """Catch a config that disagrees with the records (missing features, frame shape, class count)
    before anything is compiled."""
    features = source.dataset_info.features
    missing = [k for k in keys if k not in features]
    if missing:
        raise ConfigError(
            f"{config.dataset}[{split}]: the model reads {missing}, which these records do not have "
            f"(they have {sorted(features.keys())}); pick a builder config that stores them"
        )
    expected = (config.frames, config.size, config.size, config.channels)
    if "frames" in keys and tuple(features["frames"].shape) != expected:
        raise ConfigError(
            f"{config.dataset}[{split}]: records hold frames of shape {tuple(features['frames'].shape)}, "
            f"the config expects {expected} (data.frames, data.size, data.channels)"
        )
    if "label" in keys and features["label"].num_classes != config.num_classes:
        raise ConfigError(
            f"{config.dataset}[{split}]: records have {features['label'].num_classes} classes, "
            f"the config says data.num_classes={config.num_classes}"
        )


def open_split(config: DataConfig, split: str, model_keys: RecordKeys) -> Split:
    """Open `split`, work out the features its batches carry for a model reading `model_keys`, and
    check the records against the config and the model."""
    source = open_source(config, split)
    keys = model_keys.for_features(source.dataset_info.features)
    check_source_matches(config, source, split, keys)
    return Split(split, source, keys)


def class_names_of(config: DataConfig, source) -> list[str]:
    """The config's class names, else the records' label names (none for a regression corpus)."""
    if config.class_names:
        return list(config.class_names)
    features = source.dataset_info.features
    return list(features["label"].names) if "label" in features else []
