"""MAFW: a Multi-modal Affective database for dynamic Facial expression recognition in the Wild (Liu et
al., ACM MM 2022), its single-labelled clips, with their sound.

10,045 film and TV clips; 9,172 carry one of 11 emotions and are split by the owners into 5 folds.
The owners ship the clips and the fold lists:

    data/clips/<5 digits>.mp4
    Train & Test Set/single/no_caption/set_<k>/test.txt    k = 1..5, rows "00025.mp4 anger"
    Train & Test Set/single/no_caption/set_<k>/train.txt   the other four test sets (not read)

(a `split/` folder in place of `Train & Test Set/` is read too). Fold k-1 of the records is test set
k, so `fer-jax cv` over fold0..fold4 is MAFW's 5-fold protocol; a clip listed in two test sets is in
no fold ("fold_conflict"). MAFW names no actors: every record's subject is "unknown".

The audio-visual config keeps each clip's sound (log-mel with deltas); a clip without a sound track
(HiCMAE's extraction found 21 of the 10,045) is skipped there as "no_audio" and kept in the
video-only configs. Also skipped, with their reason: rows naming a clip that is not in data/clips
("missing"), a label that is not one of the 11 ("bad_label"), and the clips the preprocessing
rejects (zero_byte, truncated, no_face, ...).
"""

from __future__ import annotations

import pathlib

from data_builders import base, common, listed_clips
from data_builders.listed_clips import ListedClip
from fer_jax.errors import ConfigError, InputError

# The single-label classes, in the order MAE-DFER's and HiCMAE's preprocessing number them.
CLASSES = ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise", "contempt", "anxiety",
           "helplessness", "disappointment")
NUM_FOLDS = 5
CLIP_DIR = "data/clips"
SPLIT_DIRS = ("Train & Test Set/single/no_caption", "split/single/no_caption")


def split_dir(root: pathlib.Path) -> pathlib.Path:
    for name in SPLIT_DIRS:
        if (root / name).is_dir():
            return root / name
    raise ConfigError(f"{root}: no {' or '.join(SPLIT_DIRS)} folder. {Builder.MANUAL_DOWNLOAD_INSTRUCTIONS}")


def read_test_list(path: pathlib.Path) -> list[ListedClip]:
    """The rows of one MAFW list file ("<clip>.mp4 <label>" per line)."""
    return listed_clips.read_space_separated(path, Builder.MANUAL_DOWNLOAD_INSTRUCTIONS)


def label_of(row: ListedClip) -> int:
    if row.label not in CLASSES:
        raise InputError(row.list_file, "bad_label", f"row {row.row}: label {row.label!r} is not one of MAFW's 11 "
                         f"single-label classes ({', '.join(CLASSES)})")
    return CLASSES.index(row.label)


def clip_path(root: pathlib.Path, row: ListedClip) -> pathlib.Path:
    path = root / CLIP_DIR / row.name
    if not path.is_file():
        raise InputError(path, "missing", f"{row.where} names clip {row.name}, which is not in {CLIP_DIR}/")
    return path


def find_clips(root: pathlib.Path, report: common.BuildReport) -> dict[str, list[common.ClipItem]]:
    """{"fold0": items, ..., "fold4": items}: fold k-1 holds the clips of test set k."""
    lists = split_dir(root)
    test_lists = [read_test_list(lists / f"set_{k}" / "test.txt") for k in range(1, NUM_FOLDS + 1)]
    return listed_clips.fold_items(test_lists, lambda row: clip_path(root, row), label_of, report)


class Builder(base.ClipCorpusBuilder):
    """MAFW's single-labelled clips (11 emotions) with their sound, in the owners' 5 folds."""

    CLASS_NAMES = CLASSES
    HOMEPAGE = "https://mafw-database.github.io/MAFW/"
    CITATION = (
        "@inproceedings{liu2022mafw, title={MAFW: A Large-scale, Multi-modal, Compound Affective Database for "
        "Dynamic Facial Expression Recognition in the Wild}, author={Liu, Yuanyuan and Dai, Wei and Feng, Chuanxu "
        "and Wang, Wenbin and Yin, Guanghao and Zeng, Jiabei and Shan, Shiguang}, booktitle={Proceedings of the "
        "30th ACM International Conference on Multimedia}, pages={24--32}, year={2022}}"
    )
    BUILDER_CONFIGS = listed_clips.benchmark_configs(audio=True)
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "MAFW comes from its owners (https://mafw-database.github.io/MAFW/) after signing their licence "
        "agreement; it is for non-commercial research. Unpack it and pass the folder that holds data/ and "
        "'Train & Test Set/' as --manual-dir. Layout: <manual_dir>/data/clips/00025.mp4 ... and "
        "<manual_dir>/Train & Test Set/single/no_caption/set_1/test.txt .. set_5/test.txt (rows "
        "'00025.mp4 anger'). The owners' frames and face crops, and the compound-label lists, are not read."
    )

    def find_clips(self, manual_dir, report):
        return find_clips(manual_dir, report)
