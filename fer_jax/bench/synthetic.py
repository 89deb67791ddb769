"""A small synthetic corpus of the right record layout, so `fer-jax bench` can time the input
pipeline without a built corpus: the same array_record files, the same tfds decoding, the same
grain pipeline as training, filled with random values.
"""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np
import tensorflow_datasets as tfds

from fer_jax.data.record_features import array_feature
from fer_jax.errors import ConfigError

NAME = "fer_jax_bench_synthetic"


@dataclasses.dataclass(frozen=True)
class RecordShape:
    frames: int = 8
    size: int = 64
    channels: int = 1
    audio_frames: int = 100
    mel_bins: int = 64
    num_classes: int = 7

    def spec(self, key: str) -> tuple[tuple[int, ...], type]:
        """(shape, dtype) of one record feature, as fer_jax.preprocess.clip stores it."""
        t, s, a, m = self.frames, self.size, self.audio_frames, self.mel_bins
        specs = {
            "frames": ((t, s, s, self.channels), np.uint8),
            "frame_mask": ((t,), np.bool_),
            "lemhi": ((s, s, 1), np.uint8),
            "log_mel": ((a, m), np.float32),
            "log_mel_deltas": ((a, m, 3), np.float32),
        }
        if key not in specs:
            raise ConfigError(
                f"bench: no synthetic layout for the feature {key!r} (synthetic records hold {sorted(specs)}); "
                "pass --data-dir and --dataset of a built corpus that has it"
            )
        return specs[key]


def _random(shape, dtype, rng: np.random.Generator) -> np.ndarray:
    if dtype == np.uint8:
        return rng.integers(0, 256, shape, dtype=np.uint8)
    if dtype == np.bool_:
        return np.ones(shape, np.bool_)  # every frame real, as in a fixed-length corpus
    return rng.normal(size=shape).astype(dtype)


def write_corpus(data_dir: str | pathlib.Path, keys, shape: RecordShape, num_records: int, seed: int = 0) -> str:
    """Write `num_records` random records holding `keys` (+ "label") into `data_dir` as a one-split
    ("train") array_record corpus; returns the dataset name for `tfds.data_source`."""
    keys = [k for k in dict.fromkeys(keys) if k != "label"]
    features = {k: array_feature(*shape.spec(k)) for k in keys}
    features["label"] = tfds.features.ClassLabel(num_classes=shape.num_classes)

    class Builder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        VERSION = tfds.core.Version("1.0.0")
        name = NAME

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(features))

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples()}

        def _generate_examples(self):
            rng = np.random.default_rng(seed)
            for i in range(num_records):
                record = {k: _random(*shape.spec(k), rng) for k in keys}
                yield i, {**record, "label": i % shape.num_classes}

    Builder(data_dir=str(data_dir), file_format="array_record").download_and_prepare()
    return NAME
