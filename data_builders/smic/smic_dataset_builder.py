"""smic: SMIC, the Spontaneous Micro-expression Corpus (Li et al., FG 2013), 3 classes, 3 cameras.

SMIC's micro-expressions were filmed by three cameras: HS, a high-speed camera at 100 fps (164
clips of 16 subjects), and, for 8 of them, VIS (a normal colour camera at 25 fps) and NIR (near
infrared, 25 fps), 71 clips each. The owners ship the cropped, registered faces as numbered frames,
one folder per clip, the class in the path (README.md, Sources):

    SMIC_all_cropped/HS/s1/micro/negative/s1_ne_01/reg_image46811.bmp ...
    SMIC_all_cropped/HS/s1/non_micro/s1_n_01/...     (not micro-expressions: left out, counted)

Classes: positive, negative, surprise (the folder names). Each camera is a builder config (`hs`,
`vis`, `nir`): the camera's folder, 8 frames of 64x64 grey faces (3D-CNN + ConvLSTM input).

Onset, apex and offset: a clip folder holds the micro-expression's frames, onset to offset. Where a
coding sheet gives the timing (SMIC-E's annotations, as public code reads them from an .xlsx with
subject, clip, onset and offset columns; `<camera folder>/*.xlsx` or `.csv`), the clip is its
frames onset .. offset, and SMIC-E gives no apex, so apex = onset + (offset - onset) // 2 (as
public code takes it; counted in the report's notes as `apex_from_midpoint`). Without a row for a
clip, onset and offset are its first and last frame numbers (notes: `timing_from_folder`). The
three are stored as frame numbers (those in the file names).

Splits: one per subject, `s1` .. `s20`, for leave-one-subject-out (LOSO) evaluation:
`loso_splits("s2", subjects)` -> ("s1+s3+...", "s2").
"""

from __future__ import annotations

import pathlib
import re

from data_builders import base, common
from data_builders.casme2 import sheet
from fer_jax.errors import ConfigError, InputError

CLASSES = ("positive", "negative", "surprise")
ROOT_DIR = "SMIC_all_cropped"
CAMERAS = {"hs": "HS", "vis": "VIS", "nir": "NIR"}
HOMEPAGE = "https://www.oulu.fi/en/university/faculties-and-units/faculty-information-technology-and-electrical-engineering/center-machine-vision-and-signal-analysis"
SUBJECT = re.compile(r"s\d+", re.IGNORECASE)
# The coding sheet's columns, by header with case, spaces and punctuation ignored.
SHEET_COLUMNS = {
    "subject": ("subject",),
    "clip": ("filename", "material", "clip", "sample"),
    "onset": ("onset", "onsetframe", "onsetf"),
    "apex": ("apex", "apexframe", "apexf"),
    "offset": ("offset", "offsetframe", "offsetf"),
}
loso_splits = base.loso_splits


def camera_folder(root: pathlib.Path, camera: str) -> pathlib.Path:
    """<root>/SMIC_all_cropped/<CAMERA>, or <root>/<CAMERA> (a copy unzipped one level down)."""
    for candidate in (root / ROOT_DIR / camera, root / camera):
        if candidate.is_dir():
            return candidate
    message = f"{root}: no {ROOT_DIR}/{camera} folder (expected {ROOT_DIR}/{camera}/s1/micro/negative/s1_ne_01/...). "
    raise ConfigError(message + Builder.MANUAL_DOWNLOAD_INSTRUCTIONS)


def _normalised(cell: str) -> str:
    return re.sub(r"[^a-z]", "", cell.lower())


def read_timing(folder: pathlib.Path) -> dict[tuple[str, str], dict[str, int | None]]:
    """{(subject, clip): {"onset", "apex", "offset"}} of the coding sheet in the camera folder ({}
    when there is none); InputError "bad_label" naming the sheet and row that cannot be read."""
    sheets = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".xlsx", ".csv") and p.is_file())
    timing = {}
    for path in sheets:
        for rows in sheet.read_tables(path):
            found = _timing_rows(path, rows)
            if found is not None:
                timing.update(found)
                break
    return timing


def _timing_rows(path: pathlib.Path, rows: list[list[str]]):
    """The timing of one table, or None when it has no header row with subject, clip, onset, offset."""
    for n, row in enumerate(rows):
        names = [_normalised(cell) for cell in row]
        index = {field: next((names.index(h) for h in headers if h in names), None)
                 for field, headers in SHEET_COLUMNS.items()}
        if all(index[f] is not None for f in ("subject", "clip", "onset", "offset")):
            break
    else:
        return None
    timing = {}
    for k, row in enumerate(rows[n + 1:]):
        if not any(row):
            continue
        subject, clip = _subject(row[index["subject"]]), row[index["clip"]].strip()
        try:
            frames = {f: None if index[f] is None or not row[index[f]].strip() else _frame(row[index[f]])
                      for f in ("onset", "apex", "offset")}
        except ValueError:
            raise InputError(f"{path}:row {n + k + 2}", "bad_label", f"frame columns must be numbers; got {row}") from None
        if subject is None or frames["onset"] is None or frames["offset"] is None:
            raise InputError(f"{path}:row {n + k + 2}", "bad_label", f"a row needs a subject, an onset and an offset; got {row}")
        timing[subject, clip] = frames
    return timing


def _subject(cell: str) -> str | None:
    """"1", "1.0", "s1", "S01" -> "s1"."""
    digits = re.fullmatch(r"\s*s?0*(\d+)(?:\.0*)?\s*", cell, flags=re.IGNORECASE)
    return None if digits is None else f"s{int(digits.group(1))}"


def _frame(cell: str) -> int:
    value = float(cell)
    if not value.is_integer() or value < 0:
        raise ValueError(cell)
    return int(value)


def clip_item(folder: pathlib.Path, subject: str, emotion: str, timing: dict | None,
              report: common.BuildReport) -> common.ClipItem:
    """The ClipItem of one clip folder (`timing`: its sheet row, or None); InputError for a folder
    that cannot be a clip."""
    numbered = base.numbered_frames(folder)
    if not numbered:
        raise InputError(folder, "no_frames", "the clip folder holds no numbered image frames")
    if timing is None:
        onset, offset, apex = min(numbered), max(numbered), None
        report.notes["timing_from_folder"] += 1
    else:
        onset, apex, offset = timing["onset"], timing["apex"], timing["offset"]
        if not onset <= offset or (apex is not None and not onset <= apex <= offset):
            raise InputError(folder, "bad_label", f"the sheet's frames break onset <= apex <= offset: {timing}")
        if not any(onset <= n <= offset for n in numbered):
            message = f"no frame of the folder lies in the sheet's onset {onset} .. offset {offset}"
            raise InputError(folder, "missing", message)
    if apex is None:
        apex = onset + (offset - onset) // 2
        if timing is not None:
            report.notes["apex_from_midpoint"] += 1
    paths = tuple(str(numbered[n]) for n in sorted(numbered) if onset <= n <= offset)
    extra = {"onset": onset, "apex": apex, "offset": offset}
    return common.ClipItem(f"{subject}/{folder.name}", paths, CLASSES.index(emotion), subject, extra=extra)


def find_clips(root: pathlib.Path, camera: str, report: common.BuildReport) -> dict[str, list[common.ClipItem]]:
    """{subject: ClipItems} of one camera's micro-expression clips under root."""
    folder = camera_folder(root, camera)
    try:
        timing = read_timing(folder)
    except InputError as e:  # a sheet that cannot be read stops the build: its timing would be wrong
        raise ConfigError(str(e)) from None
    items: dict[str, list[common.ClipItem]] = {}
    for subject_folder in sorted(p for p in folder.iterdir() if p.is_dir()):
        if not SUBJECT.fullmatch(subject_folder.name):
            report.add_skip("none", InputError(subject_folder, "unrecognised_file", "not a subject folder (s<n>)"))
            continue
        subject = subject_folder.name.lower()
        report.excluded["non_micro"] += sum(1 for p in (subject_folder / "non_micro").glob("*") if p.is_dir())
        for emotion_folder in sorted(p for p in (subject_folder / "micro").glob("*") if p.is_dir()):
            emotion = emotion_folder.name.lower()
            for clip_folder in sorted(p for p in emotion_folder.iterdir() if p.is_dir()):
                try:
                    if emotion not in CLASSES:
                        raise InputError(clip_folder, "bad_label", f"class folder {emotion_folder.name!r} is not one of {CLASSES}")
                    item = clip_item(clip_folder, subject, emotion, timing.get((subject, clip_folder.name)), report)
                except InputError as e:
                    report.add_skip(subject, e)
                    continue
                items.setdefault(subject, []).append(item)
    return dict(sorted(items.items()))


class Builder(base.ClipCorpusBuilder):
    """SMIC micro-expressions (onset -> offset) as aligned-face clips, one split per subject; a config per camera."""

    CLASS_NAMES = CLASSES
    EXTRA_FEATURES = base.TIMING_FEATURES
    HOMEPAGE = HOMEPAGE
    CITATION = (
        "@inproceedings{li2013smic, title={A Spontaneous Micro-expression Database: Inducement, collection and "
        "baseline}, author={Li, Xiaobai and Pfister, Tomas and Huang, Xiaohua and Zhao, Guoying and "
        "Pietik{\\\"a}inen, Matti}, booktitle={10th IEEE International Conference and Workshops on Automatic Face "
        "and Gesture Recognition (FG)}, pages={1--6}, year={2013}}"
    )
    # A subject none of whose clips is usable has no split (its clips are in the report).
    DROP_SPLITS_WITHOUT_CLIPS = True
    BUILDER_CONFIGS = [
        base.ClipCorpusConfig(
            name=name,
            description=f"{folder} camera: 8 frames of 64x64 grey aligned faces, onset to offset (3D-CNN + ConvLSTM input).",
            clip=base.GRAY64_T8,
            camera=folder,
        )
        for name, folder in CAMERAS.items()
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "SMIC is shared by its owners (Center for Machine Vision and Signal Analysis, University of Oulu) after "
        "signing their license agreement. Unzip it and pass the folder holding SMIC_all_cropped/ as --manual-dir: "
        "SMIC_all_cropped/<HS|VIS|NIR>/s<n>/micro/<positive|negative|surprise>/<clip>/<numbered frames>.bmp; a "
        "coding sheet with onset and offset frames (SMIC-E) may sit in the camera's folder as .xlsx or .csv."
    )

    def find_clips(self, manual_dir, report):
        return find_clips(manual_dir, self.builder_config.camera, report)
