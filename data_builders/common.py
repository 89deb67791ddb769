"""What every clip builder shares: the record features, the parallel preprocessing, the build report.

A builder only parses its corpus' layout and labels into `ClipItem`s; turning a clip file into an
aligned-clip record is `fer_jax.preprocess.clip.process_clip`, run here in a process pool.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import multiprocessing
import os
import pathlib
from collections import Counter
from typing import Iterator

import numpy as np
import tensorflow_datasets as tfds
import tqdm

from fer_jax.errors import InputError
from fer_jax.preprocess.clip import ClipConfig, process_clip


@dataclasses.dataclass(frozen=True)
class ClipItem:
    """One clip of a corpus as its owner ships it."""

    key: str  # unique within the split
    path: str
    label: int
    subject: str


def clip_features(clip: ClipConfig, class_names) -> tfds.features.FeaturesDict:
    """Record layout: uint8 frames, landmarks and log-mel as plain Tensors (no Video feature: its
    NumPy decoding is not supported by `tfds.data_source`)."""
    channels = 1 if clip.grayscale else 3
    features = {
        "frames": tfds.features.Tensor(shape=(clip.num_frames, clip.size, clip.size, channels), dtype=np.uint8),
        "landmarks": tfds.features.Tensor(shape=(clip.num_frames, 68, 2), dtype=np.float32),
        "label": tfds.features.ClassLabel(names=list(class_names)),
        "subject": tfds.features.Text(),
        "clip_id": tfds.features.Text(),
    }
    if clip.need_audio:
        features["log_mel"] = tfds.features.Tensor(shape=(clip.log_mel_frames, clip.n_mels), dtype=np.float32)
        features["audio_frames"] = tfds.features.Scalar(dtype=np.int32)
    return tfds.features.FeaturesDict(features)


def _init_worker():
    # One core per worker: OpenCV's own thread pool would fight the other workers.
    import cv2

    cv2.setNumThreads(1)


def _process(item: ClipItem, clip: ClipConfig):
    try:
        record = process_clip(item.path, clip)
    except InputError as e:
        return item, None, e
    example = {
        "frames": record["frames"],
        "landmarks": np.nan_to_num(record["landmarks"]).astype(np.float32),
        "label": item.label,
        "subject": item.subject,
        "clip_id": item.key,
    }
    if clip.need_audio:
        example["log_mel"] = record["log_mel"].astype(np.float32)
        example["audio_frames"] = np.int32(record["audio_frames"])
    return item, example, None


class BuildReport:
    """Counts of kept and skipped clips, with the reason and file name of each skipped one."""

    def __init__(self):
        self.kept: Counter = Counter()
        self.skipped: list[dict] = []

    def add_skip(self, split: str, error: InputError):
        self.skipped.append({"split": split, "path": error.path, "reason": error.reason, "message": str(error)})

    def to_dict(self) -> dict:
        return {
            "kept": dict(self.kept),
            "skipped": len(self.skipped),
            "skipped_by_reason": dict(Counter(s["reason"] for s in self.skipped)),
            "skipped_files": self.skipped,
        }

    def write(self, directory: str | os.PathLike) -> pathlib.Path:
        path = pathlib.Path(directory) / "build_report.json"
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path


def generate_clip_examples(
    items: list[ClipItem], clip: ClipConfig, split: str, report: BuildReport, num_workers: int | None = None
) -> Iterator[tuple[str, dict]]:
    """Preprocess `items` in a process pool; yield (key, example); record skipped files in `report`."""
    num_workers = num_workers or os.cpu_count() or 1
    # spawn, not fork: the parent may have started JAX's threads, and forking those can deadlock.
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(num_workers, mp_context=context, initializer=_init_worker) as pool:
        results = pool.map(_process, items, [clip] * len(items), chunksize=4)
        for item, example, error in tqdm.tqdm(results, total=len(items), desc=f"preprocess {split}", unit="clip"):
            if error is not None:
                report.add_skip(split, error)
                continue
            report.kept[split] += 1
            yield item.key, example
