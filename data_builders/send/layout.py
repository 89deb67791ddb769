"""SENDv1 as its owners ship it: which videos there are, their valence ratings, their official split.

Layout (assumed from the public code that reads SENDv1; see README.md for the sources):

    <manual_dir>/
      train/ID<subject>_vid<k>.mp4                              the videos, one folder per official,
      valid/ID<subject>_vid<k>.mp4                              subject-disjoint partition
      test/ID<subject>_vid<k>.mp4
      ratings/{train,valid,test}/observer_EWE/results_<subject>_<k>.csv

Partition folders are matched without regard to case: the owners' own model code reads
`ratings/Train/...`, `ratings/Valid/...` (TAC-EA-model), other code `ratings/train/...`.

Only 112 of SENDv1's 193 rated clips are distributed as video: the storytellers of the other 81
consented to "Limited-Use", which withholds the raw video but not the ratings (the owners' README).
A ratings file without its video is therefore a clip withheld by design, counted (`withheld`), not
an error.

A ratings file has a header with (at least) `time` and `evaluatorWeightedEstimate`: one row every
0.5 s (2 Hz), the observers' evaluator-weighted estimate of the storyteller's valence on SEND's
0..100 scale (0 very negative, 100 very positive). We store valence = EWE / 50 - 1, in [-1, 1].

Problems with single files (a video without ratings, a ratings file that is not on the 0.5 s grid
or not on the 0..100 scale, a file that is not a SEND video) skip that video and are returned as
skip entries for the build report. A subject in two partitions is not a
file problem but a broken corpus copy, and raises ConfigError.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import re

import numpy as np

from fer_jax.errors import ConfigError, InputError

SPLIT_OF_FOLDER = {"train": "train", "valid": "validation", "test": "test"}
STEP_S = 0.5  # rating period
EWE_MAX = 100.0
TIME_COLUMN, EWE_COLUMN = "time", "evaluatorWeightedEstimate"
RATINGS_SUBDIR = "observer_EWE"
VIDEO_NAME = re.compile(r"ID(?P<subject>\d+)_vid(?P<k>\d+)\.mp4", re.IGNORECASE)
RATINGS_NAME = re.compile(r"results_(?P<subject>\d+)_(?P<k>\d+)\.csv")
_GRID_TOLERANCE_S = 1e-3


@dataclasses.dataclass(frozen=True, eq=False)
class Ratings:
    times: np.ndarray  # (n,) float64 seconds, 0.5 s apart
    valence: np.ndarray  # (n,) float32 in [-1, 1]


@dataclasses.dataclass(frozen=True, eq=False)
class SendVideo:
    split: str  # train | validation | test
    key: str  # "ID<subject>_vid<k>", unique in the corpus
    subject: str  # "ID<subject>"
    video: str  # path
    ratings: Ratings


def read_ratings(path) -> Ratings:
    """The valence sequence in one observer_EWE csv; InputError "malformed_ratings" saying what and where."""

    def bad(message):
        return InputError(path, "malformed_ratings", message)

    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = [c.strip() for c in next(reader, [])]
        if TIME_COLUMN not in header or EWE_COLUMN not in header:
            raise bad(f"header {header} lacks {TIME_COLUMN!r} and/or {EWE_COLUMN!r}")
        at_time, at_ewe = header.index(TIME_COLUMN), header.index(EWE_COLUMN)
        times, ewe = [], []
        for fields in reader:
            if not any(field.strip() for field in fields):
                continue  # blank line
            try:
                t, v = float(fields[at_time]), float(fields[at_ewe])
            except (IndexError, ValueError):
                raise bad(f"line {reader.line_num}: {fields!r} has no numeric time and {EWE_COLUMN}") from None
            if not (math.isfinite(t) and math.isfinite(v)):
                raise bad(f"line {reader.line_num}: time {t} / {EWE_COLUMN} {v} is not a finite number")
            if not 0.0 <= v <= EWE_MAX:
                raise bad(f"line {reader.line_num}: {EWE_COLUMN} {v} is outside SEND's 0..{EWE_MAX:g} scale")
            times.append(t)
            ewe.append(v)
    if not times:
        raise bad("no rating rows")
    times = np.asarray(times, np.float64)
    steps = np.diff(times)
    off_grid = np.flatnonzero(np.abs(steps - STEP_S) > _GRID_TOLERANCE_S)
    if off_grid.size:
        i = int(off_grid[0])
        raise bad(f"times {times[i]:g} -> {times[i + 1]:g} s: ratings must be every {STEP_S:g} s (2 Hz)")
    if times[0] < 0:
        raise bad(f"first time {times[0]:g} s is negative")
    return Ratings(times, (np.asarray(ewe, np.float64) / (EWE_MAX / 2) - 1.0).astype(np.float32))


def ratings_path(manual_dir, folder: str, subject: str, k: str) -> str:
    split_folder = _folder(os.path.join(manual_dir, "ratings"), folder)
    return os.path.join(split_folder, RATINGS_SUBDIR, f"results_{subject}_{k}.csv")


def _skip(split, path, reason, message) -> dict:
    return {"split": split, "path": str(path), "reason": reason, "message": message}


@dataclasses.dataclass(frozen=True)
class Scan:
    videos: list[SendVideo]  # with their ratings, in split then name order
    skips: list[dict]  # {"split", "path", "reason", "message"}: files that are broken or stray
    withheld: list[dict]  # the same, reason "video_withheld": rated clips distributed without video


def _folder(parent: str, name: str) -> str:
    """parent/name, or the folder in parent whose name is `name` in another case (Train for train)."""
    if os.path.isdir(parent):
        for entry in sorted(os.listdir(parent)):
            if entry.lower() == name and os.path.isdir(os.path.join(parent, entry)):
                return os.path.join(parent, entry)
    return os.path.join(parent, name)


def scan(manual_dir) -> Scan:
    """The videos of `manual_dir` with their ratings, the files skipped, and the withheld clips."""
    folders = {f: _folder(manual_dir, f) for f in SPLIT_OF_FOLDER}
    missing = [f for f, path in folders.items() if not os.path.isdir(path)]
    if missing:
        raise ConfigError(
            f"{manual_dir}: no {', '.join(missing)} folder(s); SEND's videos sit in train/, valid/ and test/ "
            "with their ratings in ratings/<split>/observer_EWE/ (see the builder's manual download instructions)"
        )
    videos, skips, withheld = [], [], []
    for folder, split in SPLIT_OF_FOLDER.items():
        found = set()
        for name in sorted(os.listdir(folders[folder])):
            path = os.path.join(folders[folder], name)
            if name.startswith(".") or not os.path.isfile(path):
                continue
            match = VIDEO_NAME.fullmatch(name)
            if match is None:
                skips.append(_skip(split, path, "unrecognised_file", "not a SEND video name (ID<subject>_vid<k>.mp4)"))
                continue
            subject, k = match["subject"], match["k"]
            found.add((subject, k))
            rating_file = ratings_path(manual_dir, folder, subject, k)
            if not os.path.isfile(rating_file):
                skips.append(_skip(split, path, "missing_ratings", f"no ratings file {rating_file}"))
                continue
            try:
                ratings = read_ratings(rating_file)
            except InputError as e:
                skips.append(_skip(split, e.path, e.reason, f"{e.message} (ratings of {name})"))
                continue
            videos.append(SendVideo(split, f"ID{subject}_vid{k}", f"ID{subject}", path, ratings))
        withheld += _withheld_clips(manual_dir, folder, split, found)
    _check_subject_disjoint(videos)
    return Scan(videos, skips, withheld)


def _withheld_clips(manual_dir, folder: str, split: str, found: set) -> list[dict]:
    """Ratings files of this split without a video: clips whose video the owners withhold."""
    folder_path = os.path.dirname(ratings_path(manual_dir, folder, "0", "0"))
    if not os.path.isdir(folder_path):
        return []
    withheld = []
    for name in sorted(os.listdir(folder_path)):
        match = RATINGS_NAME.fullmatch(name)
        if match and (match["subject"], match["k"]) not in found:
            message = f"rated, but no video ID{match['subject']}_vid{match['k']}.mp4 (Limited-Use consent)"
            withheld.append(_skip(split, os.path.join(folder_path, name), "video_withheld", message))
    return withheld


def _check_subject_disjoint(videos: list[SendVideo]) -> None:
    splits_of: dict[str, set] = {}
    for v in videos:
        splits_of.setdefault(v.subject, set()).add(v.split)
    shared = {s: sorted(splits) for s, splits in splits_of.items() if len(splits) > 1}
    if shared:
        raise ConfigError(
            f"subjects in more than one partition: {shared}. SEND's official train/valid/test partitions are "
            "subject-disjoint; a video was probably copied into the wrong folder"
        )
