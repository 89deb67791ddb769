"""casme2: CASME II spontaneous micro-expressions (Yan et al., PLoS ONE 2014), 5 classes.

CASME II has 255 micro-expression clips of 26 subjects filmed at 200 fps (640x480). The owner
ships them as JPEG frames, `CASME2_RAW_selected/sub01/EP02_01f/img46.jpg ...` (the number is the
frame's index in the original recording), with the coding sheet `CASME2-coding-20140508.xlsx`:
one row per clip with Subject, Filename, OnsetFrame, ApexFrame, OffsetFrame, Action Units and
Estimated Emotion. The sheet is read as .xlsx with the standard library (`sheet.py`), or from a
.csv export of it (same header row) when no .xlsx is there.

Classes: happiness, disgust, repression, surprise, others, the usual 5-class protocol; the few
fear and sadness clips are left out (counted in the build report's excluded_by_reason).

Each clip is the micro-expression's rise, the frames img<onset> .. img<apex>. The sheet's gaps are
filled as the public code that the literature follows fills them (README.md, Sources):
- no apex ("/", 21 rows of the real sheet): apex = (onset + offset) // 2, the middle frame, so the
  clip is still onset -> apex (not onset -> offset, which would add the expression's fall);
  counted in the report's notes as `apex_from_midpoint`;
- an offset that cannot be one (0, "/", or before the apex): offset = apex + (apex - onset), the
  rise mirrored, capped at the clip's last frame; counted in notes as `offset_corrected`.
`onset`, `apex` and `offset` are stored as frame numbers (the sheet's, or the filled ones).

Splits: one per subject, `sub01` .. `sub26`, for leave-one-subject-out (LOSO) evaluation:
`loso_splits("sub05", subjects)` -> ("sub01+...+sub04+sub06+...", "sub05"). A subject none of
whose clips could be used has no split (its clips are in the report's skipped files).
"""

from __future__ import annotations

import pathlib
import re


from data_builders import base, common
from data_builders.casme2 import sheet
from fer_jax.errors import ConfigError, InputError

CLASSES = ("happiness", "disgust", "repression", "surprise", "others")
FRAMES_DIR = "CASME2_RAW_selected"
SHEET_NAME = "CASME2-coding-20140508.xlsx"
HOMEPAGE = "http://casme.psych.ac.cn/casme/e2"
loso_splits = base.loso_splits  # (train split, validation split) of leave-one-subject-out
# The sheet's columns, by header with case, spaces and punctuation ignored ("Onset Frame" too).
COLUMNS = {
    "subject": "subject",
    "filename": "filename",
    "onsetframe": "onset",
    "apexframe": "apex",
    "offsetframe": "offset",
    "estimatedemotion": "emotion",
}


def find_sheet(root: pathlib.Path) -> pathlib.Path:
    """The coding sheet in root: CASME2-coding-20140508.xlsx, else another CASME2-coding*.xlsx,
    else a CASME2-coding*.csv export."""
    exports = [*sorted(root.glob("CASME2-coding*.xlsx")), *sorted(root.glob("CASME2-coding*.csv"))]
    for candidate in [root / SHEET_NAME, *exports]:
        if candidate.is_file():
            return candidate
    message = f"{root}: no coding sheet ({SHEET_NAME} or a CASME2-coding*.csv export). "
    raise ConfigError(message + Builder.MANUAL_DOWNLOAD_INSTRUCTIONS)


def read_coding(path: pathlib.Path) -> list[tuple[int, dict[str, str]]]:
    """(spreadsheet row number, {subject, filename, onset, apex, offset, emotion}) per clip row."""
    for rows in sheet.read_tables(path):  # the first worksheet with the header row
        for n, row in enumerate(rows):
            names = [re.sub(r"[^a-z]", "", cell.lower()) for cell in row]
            if "subject" in names and "filename" in names:
                break
        else:
            continue
        break
    else:
        raise InputError(path, "bad_label", "no worksheet has a header row with Subject and Filename columns")
    missing = [header for header in COLUMNS if header not in names]
    if missing:
        raise InputError(path, "bad_label", f"header row {n + 1} lacks the columns {missing}")
    index = {field: names.index(header) for header, field in COLUMNS.items()}
    return [
        (n + 2 + k, {field: row[i] for field, i in index.items()})
        for k, row in enumerate(rows[n + 1 :])
        if any(cell for cell in row)
    ]


def subject_split(cell: str) -> str | None:
    """The split of a Subject cell: "1", "01", "1.0" or "sub01" -> "sub01"; None if it has no number."""
    digits = re.fullmatch(r"\s*(?:sub)?0*(\d+)(?:\.0*)?\s*", cell, flags=re.IGNORECASE)
    return None if digits is None else f"sub{int(digits.group(1)):02d}"


def _frame_number(cell: str) -> int | None:
    """A frame number cell ("46", "46.0") as an int; None for the sheet's "/" (not coded)."""
    if cell.strip() in ("/", "", "-"):
        return None
    value = float(cell)
    if not value.is_integer() or value < 0:
        raise ValueError(cell)
    return int(value)


def clip_item(
    frames_root: pathlib.Path, where: str, row: dict[str, str], report: common.BuildReport
) -> common.ClipItem | None:
    """The ClipItem of one sheet row; None (counted in report.excluded) for a class outside the 5;
    InputError for a row or clip that cannot be used (`where` names the row in errors)."""
    subject = subject_split(row["subject"])
    try:
        if subject is None:
            raise ValueError(row["subject"])
        onset, apex, offset = (_frame_number(row[k]) for k in ("onset", "apex", "offset"))
    except ValueError:
        raise InputError(where, "bad_label", f"Subject and the frame columns must be numbers; got {row}") from None
    emotion = row["emotion"].strip().lower()
    if emotion not in CLASSES:
        report.excluded[f"emotion_{emotion or 'empty'}"] += 1
        return None
    folder = frames_root / subject / row["filename"].strip()
    onset, apex, offset, filled = _fill_timing(where, folder, onset, apex, offset)
    numbered = base.numbered_frames(folder)
    for needed in (onset, apex):
        if needed not in numbered:
            message = f"frame {needed} of the coding sheet is not in the clip folder"
            raise InputError(folder / f"img{needed}.jpg", "missing", message)
    report.notes.update(filled)
    paths = tuple(str(numbered[k]) for k in sorted(numbered) if onset <= k <= apex)
    extra = {"onset": onset, "apex": apex, "offset": offset}
    return common.ClipItem(f"{subject}/{row['filename'].strip()}", paths, CLASSES.index(emotion), subject, extra=extra)


def _fill_timing(where: str, folder: pathlib.Path, onset, apex, offset) -> tuple[int, int, int, list[str]]:
    """(onset, apex, offset, notes) of a sheet row with its gaps filled (see the module docstring);
    InputError "bad_label" when they cannot be, "missing" when the clip folder is not there."""
    def bad(message):
        return InputError(where, "bad_label", f"{message}; got onset {onset}, apex {apex}, offset {offset}")

    if onset is None or (apex is None and not offset):
        raise bad("a row needs an onset, and an apex or an offset")
    if not folder.is_dir():
        raise InputError(folder, "missing", "clip folder not found; check the copy of CASME2_RAW_selected")
    notes = []
    if apex is None:
        apex = (onset + offset) // 2
        notes.append("apex_from_midpoint")
    elif not offset or offset < apex:
        offset = min(apex + (apex - onset), max(base.numbered_frames(folder), default=apex))
        notes.append("offset_corrected")
    if not onset <= apex <= offset:
        raise bad("frames must satisfy onset <= apex <= offset")
    return onset, apex, offset, notes


def find_clips(root: pathlib.Path, report: common.BuildReport) -> dict[str, list[common.ClipItem]]:
    """{subject: ClipItems} of the coding sheet's 5-class clips under root."""
    path = find_sheet(root)
    frames_root = root / FRAMES_DIR
    if (frames_root / FRAMES_DIR).is_dir():  # some copies unzip into CASME2_RAW_selected/CASME2_RAW_selected
        frames_root = frames_root / FRAMES_DIR
    if not frames_root.is_dir():
        message = f"{root}: expected the frames in {FRAMES_DIR}/sub01/EP02_01f/img46.jpg ... "
        raise ConfigError(message + Builder.MANUAL_DOWNLOAD_INSTRUCTIONS)
    items: dict[str, list[common.ClipItem]] = {}
    for row_number, row in read_coding(path):
        where = f"{path}:row {row_number}"
        try:
            item = clip_item(frames_root, where, row, report)
        except InputError as e:
            report.add_skip(subject_split(row["subject"]) or "none", e)
            continue
        if item is not None:
            items.setdefault(item.subject, []).append(item)
    return dict(sorted(items.items()))


class Builder(base.ClipCorpusBuilder):
    """CASME II micro-expressions (onset -> apex) as aligned-face clips, one split per subject."""

    CLASS_NAMES = CLASSES
    EXTRA_FEATURES = base.TIMING_FEATURES
    HOMEPAGE = HOMEPAGE
    # A subject in the coding sheet all of whose clips are unusable has no split at all.
    DROP_SPLITS_WITHOUT_CLIPS = True
    BUILDER_CONFIGS = [
        base.ClipCorpusConfig(
            name="gray64_t8",
            description="8 frames of 64x64 grey aligned faces from onset to apex (3D-CNN + ConvLSTM input).",
            clip=base.GRAY64_T8,
        ),
        base.ClipCorpusConfig(
            name="lemhi",
            description="Up to 32 frames of 112x112 grey faces from onset to apex, a frame mask, and their LEMHI.",
            clip=base.LEMHI,
        ),
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        f"CASME II is shared by its owners (Institute of Psychology, Chinese Academy of Sciences, {HOMEPAGE}) "
        "after signing their license agreement. Unzip CASME2_RAW_selected.zip next to the coding sheet and pass "
        f"that folder as --manual-dir; it must hold {SHEET_NAME} (or a .csv export of it, named "
        f"CASME2-coding*.csv) and {FRAMES_DIR}/sub01/EP02_01f/img46.jpg ..."
    )

    def find_clips(self, manual_dir, report):
        return find_clips(manual_dir, report)
