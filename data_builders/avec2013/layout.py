"""AVEC2013's depression data as its organisers ship it: the videos of each official partition and
each recording's BDI-II score (README.md, Sources, for where each assumption comes from):

    <manual_dir>/[AVEC2013/]Training/Video/<subject>_<session>[_<rest>].mp4|.avi   (any depth below Video/)
    <manual_dir>/[AVEC2013/]Training/DepressionLabels/<subject>_<session>_Depression.csv
    ... Development/..., Testing/...

A label file holds one number, the BDI-II score (0..63) of that recording. Partition folders are
matched without regard to case. A partition without a DepressionLabels folder (the test labels
came out after the challenge) has its videos counted as excluded, not skipped. A video without
its label file, a label file that is not one number in 0..63, and a label file without a video
are skip entries for the build report.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re

from fer_jax.errors import ConfigError, InputError

SPLIT_OF_PARTITION = {"training": "train", "development": "validation", "testing": "test"}
VIDEO_FOLDER, LABEL_FOLDER = "video", "depressionlabels"
VIDEO_EXTENSIONS = (".mp4", ".avi")
RECORDING = re.compile(r"(?P<subject>\d+)_(?P<session>\d+)(?:_.*)?")
LABEL_NAME = re.compile(r"(?P<recording>\d+_\d+)_Depression\.csv", re.IGNORECASE)
BDI_MAX = 63.0  # BDI-II: 21 items scored 0..3


@dataclasses.dataclass(frozen=True)
class Recording:
    split: str  # train | validation | test
    key: str  # the video's file stem, unique in the corpus
    recording: str  # "<subject>_<session>", the label's id
    subject: str
    video: str  # path
    bdi: float


@dataclasses.dataclass(frozen=True)
class Scan:
    recordings: list[Recording]  # in split then name order
    skips: list[dict]  # {"split", "path", "reason", "message"}
    excluded: list[dict]  # the same, reason "labels_not_distributed"


def _skip(split, path, reason, message) -> dict:
    return {"split": split, "path": str(path), "reason": reason, "message": message}


def _child(parent: str, name: str) -> str | None:
    """The folder in `parent` named `name` in any case, or None."""
    if os.path.isdir(parent):
        for entry in sorted(os.listdir(parent)):
            if entry.lower() == name and os.path.isdir(os.path.join(parent, entry)):
                return os.path.join(parent, entry)
    return None


def corpus_root(manual_dir: str) -> str:
    """manual_dir, or its AVEC2013 folder: the one holding the partition folders."""
    for root in (_child(manual_dir, "avec2013"), manual_dir):
        if root and any(_child(root, p) for p in SPLIT_OF_PARTITION):
            return root
    raise ConfigError(
        f"{manual_dir}: no Training, Development or Testing folder (nor AVEC2013/ holding them); AVEC2013's videos "
        "sit in <Partition>/Video/ and their BDI-II scores in <Partition>/DepressionLabels/"
    )


def read_bdi(path: str) -> float:
    """The BDI-II score in one label file: one number in 0..63; InputError "bad_label" otherwise."""
    with open(path, encoding="utf-8-sig") as f:
        cells = [c.strip() for line in f for c in line.split(",") if c.strip()]
    try:
        value = float(cells[0])
    except (IndexError, ValueError):
        raise InputError(path, "bad_label", f"expected one number, the BDI-II score; got {cells[:3]}") from None
    if len(cells) != 1 or not math.isfinite(value) or not 0 <= value <= BDI_MAX:
        raise InputError(path, "bad_label", f"expected one BDI-II score in 0..{BDI_MAX:g}; got {cells[:3]}")
    return value


def _videos(folder: str) -> list[str]:
    found = []
    for parent, _, names in os.walk(folder):
        found += [os.path.join(parent, n) for n in names if not n.startswith(".")]
    return sorted(found)


def scan(manual_dir: str) -> Scan:
    """Every partition's videos with their BDI-II scores, the files skipped, the videos excluded."""
    root = corpus_root(manual_dir)
    recordings, skips, excluded = [], [], []
    for partition, split in SPLIT_OF_PARTITION.items():
        folder = _child(root, partition)
        videos = _child(folder, VIDEO_FOLDER) if folder else None
        if videos is None:
            continue
        labels = _child(folder, LABEL_FOLDER)
        label_files = {} if labels is None else {
            m["recording"]: os.path.join(labels, n) for n in sorted(os.listdir(labels)) if (m := LABEL_NAME.fullmatch(n))
        }
        seen = set()
        for path in _videos(videos):
            name = os.path.basename(path)
            stem, extension = os.path.splitext(name)
            match = RECORDING.fullmatch(stem)
            if extension.lower() not in VIDEO_EXTENSIONS or match is None:
                skips.append(_skip(split, path, "unrecognised_file", "not an AVEC2013 video (<subject>_<session>_*.mp4 or .avi)"))
                continue
            recording = f"{match['subject']}_{match['session']}"
            seen.add(recording)
            if labels is None:
                excluded.append(_skip(split, path, "labels_not_distributed", f"{folder} has no DepressionLabels folder"))
                continue
            if recording not in label_files:
                skips.append(_skip(split, path, "missing_label", f"no {recording}_Depression.csv in {labels}"))
                continue
            try:
                bdi = read_bdi(label_files[recording])
            except InputError as e:
                skips.append(_skip(split, e.path, e.reason, e.message))
                continue
            recordings.append(Recording(split, stem, recording, match["subject"], path, bdi))
        for recording in sorted(set(label_files) - seen):
            skips.append(_skip(split, label_files[recording], "missing_video", f"a BDI-II score, but no video {recording}_* in {videos}"))
    return Scan(recordings, skips, excluded)
