"""DFEW: Dynamic Facial Expression in the Wild (Jiang et al., ACM MM 2020), its single-labelled clips.

16,372 film clips; 11,697 of them carry one of 7 emotions and are split by the owners into 5 folds.
The owners ship the clips and the fold lists:

    Clip/original/<5 digits>.mp4                          (.avi read as well)
    EmoLabel_DataSplit/test(single-labeled)/set_<k>.csv   k = 1..5, columns video_name,label
    EmoLabel_DataSplit/train(single-labeled)/set_<k>.csv  the other four test sets (not read)

`video_name` is the clip number (written without its leading zeros, e.g. 2522 for 02522.mp4) and
`label` 1..7 is happy, sad, neutral, angry, surprise, disgust, fear. Fold k-1 of the records is
test set k, so `fer-jax cv` over fold0..fold4 is DFEW's 5-fold protocol; a clip listed in two test
sets is in no fold ("fold_conflict"). DFEW names no actors: every record's subject is "unknown".

Skipped with their reason: rows naming a clip that is not in Clip/original ("missing"), a
video_name that is not a number ("bad_name"), a label outside 1..7 ("bad_label"), and the clips the
preprocessing rejects (zero_byte, truncated, no_face, no_audio in the audio-visual config, ...).
"""

from __future__ import annotations

import csv
import io
import pathlib

from data_builders import base, common, listed_clips
from data_builders.listed_clips import ListedClip
from fer_jax.errors import ConfigError, InputError

# Label codes 1..7 of the EmoLabel_DataSplit lists, in order.
CLASSES = ("happy", "sad", "neutral", "angry", "surprise", "disgust", "fear")
NUM_FOLDS = 5
CLIP_DIR, SPLIT_DIR = "Clip/original", "EmoLabel_DataSplit"
TEST_LIST = "test(single-labeled)/set_{k}.csv"
VIDEO_EXTENSIONS = (".mp4", ".avi")


def test_list(root: pathlib.Path, k: int) -> pathlib.Path:
    return root / SPLIT_DIR / TEST_LIST.format(k=k)


def read_test_list(path: pathlib.Path) -> list[ListedClip]:
    """The rows of one DFEW list file (video_name,label with a header)."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such list file. {Builder.MANUAL_DOWNLOAD_INSTRUCTIONS}")
    lines = listed_clips.read_rows(path)
    header = [c.strip() for c in next(csv.reader(io.StringIO(lines[0][1])))] if lines else []
    if header[:2] != ["video_name", "label"]:
        raise ConfigError(f"{path}: expected the header video_name,label, found {header}; is this DFEW's list?")
    rows = []
    for n, line in lines[1:]:
        fields = [f.strip() for f in next(csv.reader(io.StringIO(line)))] + ["", ""]
        rows.append(ListedClip(name=fields[0], label=fields[1], list_file=path, row=n))
    return rows


def label_of(row: ListedClip) -> int:
    """Class index of a list row's label code 1..7; InputError "bad_label" otherwise."""
    if not (row.label.isdigit() and 1 <= int(row.label) <= len(CLASSES)):
        raise InputError(row.list_file, "bad_label", f"row {row.row}: label {row.label!r} is not one of DFEW's "
                         f"codes 1..7 ({', '.join(CLASSES)})")
    return int(row.label) - 1


def clip_path(root: pathlib.Path, row: ListedClip) -> pathlib.Path:
    """The clip file a row names (InputError "bad_name" or "missing" when there is none)."""
    if not row.name.isdigit():
        raise InputError(row.list_file, "bad_name", f"row {row.row}: video_name {row.name!r} is not a clip number")
    stem = f"{int(row.name):05d}"
    for extension in VIDEO_EXTENSIONS:
        path = root / CLIP_DIR / f"{stem}{extension}"
        if path.is_file():
            return path
    raise InputError(root / CLIP_DIR / f"{stem}.mp4", "missing",
                     f"{row.where} names clip {stem}, which is not in {CLIP_DIR}/ (as .mp4 or .avi)")


def find_clips(root: pathlib.Path, report: common.BuildReport) -> dict[str, list[common.ClipItem]]:
    """{"fold0": items, ..., "fold4": items}: fold k-1 holds the clips of test set k."""
    test_lists = [read_test_list(test_list(root, k)) for k in range(1, NUM_FOLDS + 1)]
    return listed_clips.fold_items(test_lists, lambda row: clip_path(root, row), label_of, report)


class Builder(base.ClipCorpusBuilder):
    """DFEW's single-labelled clips (7 emotions) in the owners' 5 folds."""

    CLASS_NAMES = CLASSES
    HOMEPAGE = "https://dfew-dataset.github.io/"
    CITATION = (
        "@inproceedings{jiang2020dfew, title={DFEW: A Large-Scale Database for Recognizing Dynamic Facial "
        "Expressions in the Wild}, author={Jiang, Xingxun and Zong, Yuan and Zheng, Wenming and Tang, Chuangao "
        "and Xia, Wanchuang and Lu, Cheng and Liu, Jiateng}, booktitle={Proceedings of the 28th ACM "
        "International Conference on Multimedia}, pages={2881--2889}, year={2020}}"
    )
    BUILDER_CONFIGS = listed_clips.benchmark_configs(audio=True)
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "DFEW comes from its owners (https://dfew-dataset.github.io/) after signing their licence; it is "
        "for non-commercial research. Unpack it and pass the folder that holds Clip/ and EmoLabel_DataSplit/ "
        "as --manual-dir. Layout: <manual_dir>/Clip/original/00001.mp4 ... and "
        "<manual_dir>/EmoLabel_DataSplit/test(single-labeled)/set_1.csv .. set_5.csv (video_name,label). "
        "The face crops the owners also ship (Clip/clip_224x224*) are not read: the builder samples and aligns "
        "the faces of the original clips."
    )

    def find_clips(self, manual_dir, report):
        return find_clips(manual_dir, report)
