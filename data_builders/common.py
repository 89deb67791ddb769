"""What every clip builder shares: the record features, the parallel preprocessing, the build report.

A builder only parses its corpus' layout and labels into `ClipItem`s; turning a clip (a video file,
a folder or list of image frames, or frames in memory) into an aligned-clip record is
`fer_jax.preprocess.clip`, run here in a process pool.

Per-clip fields the preprocessing does not make (SEND's valence sequence, MMI/CASME onset, apex and
offset indices, ...) travel in `ClipItem.extra` and are declared once in `clip_features(...,
extra_features=...)`:

    features = common.clip_features(clip, CLASSES, extra_features={
        "apex": tfds.features.Scalar(dtype=np.int32),
        "valence": tfds.features.Tensor(shape=(None,), dtype=np.float32),
    })
    common.ClipItem(key, path, label, subject, extra={"apex": 41, "valence": values})

Frame indices in `extra` are the source's; `ClipConfig(store_frame_indices=True)` stores which
source frame each kept frame is, so a reader can map between the two.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import multiprocessing
import os
import pathlib
import time
from collections import Counter
from typing import Iterator

import numpy as np
import tensorflow_datasets as tfds
import tqdm

from fer_jax.data.record_features import array_feature
from fer_jax.errors import InputError
from fer_jax.preprocess.clip import AUDIO_FEATURES, ClipConfig, process_clip, process_frames

# Every builder writes the same record format (clip_features, array_feature), so they share its
# version: a change to the format is one change here, and every corpus rebuilds.
RECORDS_VERSION = tfds.core.Version("1.1.0")
RECORDS_RELEASE_NOTES = {
    "1.0.0": "First release.",
    "1.1.0": "Array features stored as raw bytes (np.frombuffer to read, not a protobuf list per value).",
}

# Example keys every record has besides the preprocessing outputs; `extra` may not reuse them.
_ITEM_KEYS = ("label", "subject", "clip_id")


@dataclasses.dataclass(frozen=True)
class ClipItem:
    """One clip of a corpus as its owner ships it.

    path: a video file, a folder of image frames, or a list of image files (see `process_clip`);
    for in-memory `frames` it only names the clip in errors and reports (e.g. "train.csv:row 17").
    label: class index, or None for corpora without classes (then pass class_names=None to
    `clip_features`). frames: (T, H, W, 3) uint8 RGB (or gray (T, H, W)) to preprocess instead of
    reading `path` (`process_frames`). extra: more fields merged into the example as they are;
    declare their features in `clip_features(..., extra_features=...)`.
    """

    key: str  # unique within the split
    path: str | tuple[str, ...]
    label: int | None
    subject: str
    frames: np.ndarray | None = dataclasses.field(default=None, compare=False, repr=False)
    extra: dict = dataclasses.field(default_factory=dict, compare=False)

    def __post_init__(self):
        if isinstance(self.path, list):  # a list of image files; a tuple keeps the item hashable
            object.__setattr__(self, "path", tuple(self.path))
        reserved = sorted(set(self.extra) & (set(_ITEM_KEYS) | _ALL_OUTPUT_KEYS))
        if reserved:
            raise ValueError(f"ClipItem {self.key}: extra fields {reserved} clash with fields the record already has")


def clip_features(clip: ClipConfig, class_names, extra_features: dict | None = None) -> tfds.features.FeaturesDict:
    """Record layout: one fixed-shape `tfds.features.Tensor` (or Scalar) per array output of
    `clip.record_spec()` (uint8 frames, float32 landmarks, audio features, ...; no Video feature:
    its NumPy decoding is not supported by `tfds.data_source`), the label (unless class_names is
    None), subject and clip id, and the builder's `extra_features` (name -> FeatureConnector)."""
    features = {name: array_feature(shape, dtype) for name, (shape, dtype) in clip.record_spec().items()}
    if class_names is not None:
        features["label"] = tfds.features.ClassLabel(names=list(class_names))
    features["subject"] = tfds.features.Text()
    features["clip_id"] = tfds.features.Text()
    for name, feature in (extra_features or {}).items():
        if name in features or name in _ALL_OUTPUT_KEYS:
            raise ValueError(f"extra feature {name!r} clashes with a feature clip_features already declares")
        features[name] = feature
    return tfds.features.FeaturesDict(features)


# Every output name any ClipConfig can produce (so extras cannot take one a later config adds).
_ALL_OUTPUT_KEYS = frozenset(
    ClipConfig(variable_length=True, store_frame_indices=True, lemhi=True, audio_features=AUDIO_FEATURES).record_spec()
)


def _init_worker():
    # One core per worker: OpenCV's own thread pool would fight the other workers.
    import cv2

    cv2.setNumThreads(1)


def _process(item: ClipItem, clip: ClipConfig):
    """(item, example or None, skip or None, source frames processed) for one clip.

    A skip is a dict (split-less `BuildReport.skipped` entry), not the InputError itself: an
    InputError does not survive pickling back from a worker (its __init__ takes three arguments,
    Exception's pickling passes one), and the pool would break on the first bad file.
    """
    try:
        if item.frames is not None:
            record = process_frames(item.frames, clip, name=str(item.path))
        else:
            record = process_clip(list(item.path) if isinstance(item.path, tuple) else item.path, clip)
    except InputError as e:
        return item, None, _skip_entry(e), 0
    example = {}
    for name, (shape, dtype) in clip.record_spec().items():
        value = record[name]
        if name == "landmarks":
            value = np.nan_to_num(value)
        example[name] = np.asarray(value, dtype) if shape else dtype(value)
    if item.label is not None:
        example["label"] = item.label
    example["subject"] = item.subject
    example["clip_id"] = item.key
    example.update(item.extra)
    return item, example, None, record["num_source_frames"]


def _skip_entry(error: InputError) -> dict:
    return {"path": error.path, "reason": error.reason, "message": str(error)}


class BuildReport:
    """Counts of kept and skipped clips, with the reason and file name of each skipped one, and the
    preprocessing throughput: source frames of kept clips per second of wall time per worker."""

    def __init__(self):
        self.kept: Counter = Counter()
        self.skipped: list[dict] = []
        self.source_frames: Counter = Counter()  # per split, kept clips only
        self.core_seconds: Counter = Counter()  # per split: wall seconds x workers
        self.wall_seconds: Counter = Counter()

    def add_skip(self, split: str, error: InputError | dict):
        """Record a skipped clip: its InputError, or `_skip_entry` of one."""
        self.skipped.append({"split": split, **(error if isinstance(error, dict) else _skip_entry(error))})

    def add_throughput(self, split: str, source_frames: int, wall_seconds: float, workers: int):
        self.source_frames[split] += source_frames
        self.wall_seconds[split] += wall_seconds
        self.core_seconds[split] += wall_seconds * workers

    def to_dict(self) -> dict:
        core_seconds = sum(self.core_seconds.values())
        total_frames = sum(self.source_frames.values())
        return {
            "kept": dict(self.kept),
            "skipped": len(self.skipped),
            "skipped_by_reason": dict(Counter(s["reason"] for s in self.skipped)),
            "skipped_files": self.skipped,
            "source_frames": dict(self.source_frames),
            "wall_seconds": {split: round(s, 3) for split, s in self.wall_seconds.items()},
            "frames_per_second_per_core": total_frames / core_seconds if core_seconds else None,
        }

    def write(self, directory: str | os.PathLike) -> pathlib.Path:
        path = pathlib.Path(directory) / "build_report.json"
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path


def generate_clip_examples(
    items: list[ClipItem], clip: ClipConfig, split: str, report: BuildReport, num_workers: int | None = None
) -> Iterator[tuple[str, dict]]:
    """Preprocess `items` in a process pool; yield (key, example); record skipped files and the
    throughput in `report`. The wall time runs from starting the pool to its last result, so it
    includes the pool's start-up and whatever the consumer of this generator does in between
    (TFDS's serialisation): it is the rate a build actually runs at."""
    num_workers = num_workers or os.cpu_count() or 1
    start, frames = time.perf_counter(), 0
    # spawn, not fork: the parent may have started JAX's threads, and forking those can deadlock.
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(num_workers, mp_context=context, initializer=_init_worker) as pool:
        results = pool.map(_process, items, [clip] * len(items), chunksize=4)
        for item, example, error, source_frames in tqdm.tqdm(
            results, total=len(items), desc=f"preprocess {split}", unit="clip"
        ):
            if error is not None:
                report.add_skip(split, error)
                continue
            report.kept[split] += 1
            frames += source_frames
            yield item.key, example
    report.add_throughput(split, frames, time.perf_counter() - start, num_workers)


class WritesBuildReport:
    """Builder mixin: write `self.report` as build_report.json beside the records, also under
    `tfds build`, which knows nothing of the report. `_split_generators` must set `self.report`."""

    def _download_and_prepare(self, dl_manager, download_config):
        super()._download_and_prepare(dl_manager, download_config)
        self.report.write(self.data_dir)
