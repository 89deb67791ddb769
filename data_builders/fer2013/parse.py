"""Read `fer2013.csv` as Kaggle ships it: one image per row, malformed rows set aside with a reason.

The file (Goodfellow et al. 2013, "Challenges in Representation Learning: Facial Expression
Recognition Challenge") has a header `emotion,pixels,Usage` and 35,887 rows:

    emotion  class index 0..6 (CLASSES order)
    pixels   48 * 48 = 2304 gray values 0..255, space separated, row-major
    Usage    Training | PublicTest | PrivateTest  (-> our train | validation | test)

Kaggle's later competition download ("challenges-in-representation-learning-facial-expression-
recognition-challenge") ships the same rows as `icml_face_data.csv`, header `emotion, Usage, pixels`
(other order, a space after each comma); columns are found by name with spaces stripped, so it
reads alike, and it is used when there is no fer2013.csv.

A row that breaks any of these is not guessed at: it becomes a `BadRow` with its line number in the
file (the header is line 1), a reason key and a message, for the build report.
"""

from __future__ import annotations

import csv
import dataclasses
import os
from collections.abc import Iterable, Iterator

import numpy as np

from fer_jax.errors import InputError

CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
SIDE = 48
SPLIT_OF_USAGE = {"Training": "train", "PublicTest": "validation", "PrivateTest": "test"}
COLUMNS = ("emotion", "pixels", "Usage")
# Reason keys of BadRow, in the order the checks run (a row reports its first problem only).
# "unreadable_line": a line the csv module rejects (e.g. a field over its 131,072-character limit).
REASONS = ("unreadable_line", "wrong_column_count", "unknown_usage", "bad_label", "bad_pixels", "wrong_pixel_count")


@dataclasses.dataclass(frozen=True, eq=False)
class Row:
    line: int  # line number in the file, header = 1
    label: int
    split: str  # train | validation | test
    image: np.ndarray  # (48, 48) uint8


@dataclasses.dataclass(frozen=True)
class BadRow:
    line: int
    split: str | None  # the split the row names, None when its Usage is not one we know
    reason: str  # one of REASONS
    message: str


def parse_rows(lines: Iterable[str], name: str = "fer2013.csv") -> Iterator[Row | BadRow]:
    """Each data row of the csv text `lines` as a Row, or a BadRow saying what is wrong with it.

    Raises InputError (reason "bad_header") when the header lacks one of COLUMNS: then no row can
    be read, and the file is probably not fer2013.csv.
    """
    reader = csv.reader(lines)
    header = next(reader, None)
    columns = [c.strip() for c in header] if header else []
    missing = [c for c in COLUMNS if c not in columns]
    if missing:
        raise InputError(
            name, "bad_header",
            f"header {columns} lacks column(s) {missing}; fer2013.csv starts with the line 'emotion,pixels,Usage'",
        )
    where = {c: columns.index(c) for c in COLUMNS}
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as e:  # the reader goes on with the next line: only this row is lost
            yield BadRow(reader.line_num, None, "unreadable_line", f"not a csv line ({e})")
            continue
        line = reader.line_num
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue  # a blank line (e.g. at the end of the file) is not a row
        yield _parse_row(fields, line, len(columns), where)


def _parse_row(fields: list[str], line: int, num_columns: int, where: dict) -> Row | BadRow:
    if len(fields) != num_columns:
        return BadRow(line, None, "wrong_column_count", f"{len(fields)} fields, the header has {num_columns}")
    usage = fields[where["Usage"]].strip()
    split = SPLIT_OF_USAGE.get(usage)
    if split is None:
        return BadRow(line, None, "unknown_usage", f"Usage {usage!r} is not one of {sorted(SPLIT_OF_USAGE)}")
    emotion = fields[where["emotion"]].strip()
    if not (emotion.isdigit() and int(emotion) < len(CLASSES)):
        return BadRow(line, split, "bad_label", f"emotion {emotion!r} is not a class index 0..{len(CLASSES) - 1}")
    tokens = fields[where["pixels"]].split()
    try:
        values = np.array([int(t) for t in tokens], np.int64)
    except ValueError:
        bad = next(t for t in tokens if not _is_int(t))
        return BadRow(line, split, "bad_pixels", f"pixel value {bad!r} is not an integer")
    if values.size and (values.min() < 0 or values.max() > 255):
        bad = int(values[(values < 0) | (values > 255)][0])
        return BadRow(line, split, "bad_pixels", f"pixel value {bad} is outside 0..255")
    if values.size != SIDE * SIDE:
        return BadRow(line, split, "wrong_pixel_count", f"{values.size} pixel values, a 48x48 image has {SIDE * SIDE}")
    return Row(line, int(emotion), split, values.astype(np.uint8).reshape(SIDE, SIDE))


def _is_int(token: str) -> bool:
    try:
        int(token)
    except ValueError:
        return False
    return True


def find_csv(manual_dir) -> str:
    """`<manual_dir>/fer2013.csv`, or `<manual_dir>/fer2013/fer2013.csv` as Kaggle's fer2013.tar.gz
    unpacks, else `<manual_dir>/icml_face_data.csv` from the competition's later download."""
    candidates = [os.path.join(manual_dir, "fer2013.csv"), os.path.join(manual_dir, "fer2013", "fer2013.csv"),
                  os.path.join(manual_dir, "icml_face_data.csv")]
    for path in candidates:
        if os.path.isfile(path):
            return path
    raise InputError(
        manual_dir, "missing",
        f"no fer2013.csv in this folder (looked for {', '.join(candidates)}); extract Kaggle's fer2013.tar.gz "
        "(or the competition download with icml_face_data.csv) here",
    )


def read_fer2013(path) -> tuple[dict[str, list[Row]], list[BadRow]]:
    """({split: rows in file order}, malformed rows) of the csv at `path`."""
    rows: dict[str, list[Row]] = {split: [] for split in SPLIT_OF_USAGE.values()}
    bad: list[BadRow] = []
    # Bytes that are not UTF-8 become U+FFFD, so the row holding them fails its checks (a BadRow)
    # rather than the whole file.
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        for row in parse_rows(f, str(path)):
            if isinstance(row, BadRow):
                bad.append(row)
            else:
                rows[row.split].append(row)
    return rows, bad


def image_from_last_frame(example: dict) -> dict:
    """A FER2013 record's "image" (H, W, 1): its one frame, as image models read it. (Here, not in
    the builder module, so the Beam workers import it by name, however `tfds build` loaded that.)"""
    example["image"] = example["frames"][-1]
    return example
