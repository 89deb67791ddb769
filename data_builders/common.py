"""The pieces of a clip build: the clip item, the record features, one clip's preprocessing, the report.

A builder only parses its corpus' layout and labels into `ClipItem`s; turning a clip (a video file,
a folder or list of image frames, or frames in memory) into an aligned-clip record is
`fer_jax.preprocess.clip` (`preprocess_item`), which `data_builders.beam_pipeline` runs on every
clip of a build and `data_builders.base.ClipCorpusBuilder` wires into TFDS.

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

import dataclasses
import json
import os
from collections import Counter

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from fer_jax.data.record_features import array_feature
from fer_jax.errors import InputError
from fer_jax.preprocess.clip import AUDIO_FEATURES, ClipConfig, process_clip, process_frames
from fer_jax.preprocess.sources import FrameSource

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

    path: a video file, a folder of image frames, a list of image files, or a
    `fer_jax.preprocess.sources.FrameSource` (BP4D+'s zipped frames; see `process_clip`);
    for in-memory `frames` it only names the clip in errors and reports (e.g. "train.csv:row 17").
    label: class index, or None for corpora without classes (then pass class_names=None to
    `clip_features`). frames: (T, H, W, 3) uint8 RGB (or gray (T, H, W)) to preprocess instead of
    reading `path` (`process_frames`). extra: more fields merged into the example as they are;
    declare their features in `clip_features(..., extra_features=...)`.
    """

    key: str  # unique within the split
    path: str | tuple[str, ...] | FrameSource
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


def preprocess_item(item: ClipItem, clip: ClipConfig | None):
    """(key, example or None, skip entry or None, source frames processed) for one clip.

    `clip` None: no preprocessing, the item's `frames` are stored as they are (FER2013's raw48).
    A skip is a dict (split-less `BuildReport.skipped` entry), not the InputError itself: an
    InputError does not survive pickling back from a worker (its __init__ takes three arguments,
    Exception's pickling passes one).
    """
    if clip is None:
        example, frames = {"frames": item.frames}, len(item.frames)
    else:
        example = {}
        try:
            if item.frames is not None:
                record = process_frames(item.frames, clip, name=str(item.path))
            else:
                record = process_clip(list(item.path) if isinstance(item.path, tuple) else item.path, clip)
        except InputError as e:
            return item.key, None, _skip_entry(e), 0
        for name, (shape, dtype) in clip.record_spec().items():
            value = record[name]
            if name == "landmarks":
                value = np.nan_to_num(value)
            example[name] = np.asarray(value, dtype) if shape else dtype(value)
        frames = record["num_source_frames"]
    if item.label is not None:
        example["label"] = item.label
    example["subject"] = item.subject
    example["clip_id"] = item.key
    example.update(item.extra)
    return item.key, example, None, frames


def _skip_entry(error: InputError) -> dict:
    return {"path": error.path, "reason": error.reason, "message": str(error)}


class BuildReport:
    """What a build kept, skipped (with the reason and file name of each), left out by design, and
    how fast it preprocessed.

    excluded: clips a config leaves out by design, not errors (so not `skipped`, and no reason for
    `fer-jax build`'s exit status 3): unlabelled CK+ sequences, RAVDESS's audio-only files, ...
    notes: remarks about kept clips (e.g. a CASME II clip without an apex frame).
    The throughput is source frames of kept clips per second of wall time per worker process, over
    the whole pipeline (worker start-up and TFDS's writing included: the rate a build runs at), and
    per second a worker spent inside the preprocessing (`frames_per_clip_second`, which a remote
    runner, whose worker count is not known here, reports too).
    """

    def __init__(self):
        self.kept: Counter = Counter()
        self.skipped: list[dict] = []
        self.excluded: Counter = Counter()
        self.notes: Counter = Counter()
        self.source_frames: Counter = Counter()  # per split, kept clips only
        self.clip_seconds = 0.0  # summed over clips: time inside the preprocessing
        self.wall_seconds: float | None = None  # of the whole pipeline
        self.workers: int | None = None  # processes it ran on; None on a remote runner
        self.runner: str | None = None

    def add_skip(self, split: str, error: InputError | dict):
        """Record a skipped clip: its InputError, or `_skip_entry` of one."""
        self.skipped.append({"split": split, **(error if isinstance(error, dict) else _skip_entry(error))})

    def to_dict(self) -> dict:
        total_frames = sum(self.source_frames.values())
        core_seconds = self.wall_seconds * self.workers if self.wall_seconds and self.workers else None
        return {
            "kept": dict(self.kept),
            "skipped": len(self.skipped),
            "skipped_by_reason": dict(Counter(s["reason"] for s in self.skipped)),
            "skipped_files": self.skipped,
            "excluded_by_reason": dict(self.excluded),
            "notes": dict(self.notes),
            "source_frames": dict(sorted(self.source_frames.items())),
            "runner": self.runner,
            "workers": self.workers,
            "wall_seconds": round(self.wall_seconds, 3) if self.wall_seconds is not None else None,
            "frames_per_second_per_core": total_frames / core_seconds if core_seconds else None,
            "frames_per_clip_second": total_frames / self.clip_seconds if self.clip_seconds else None,
        }

    def write(self, directory: str | os.PathLike) -> pathlib.Path:
        path = epath.Path(directory) / "build_report.json"
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path
