"""data_builders/ck_plus: the published fold table, the emotion-file parser, and builds of the dummy
CK+ (in the owner's layout, with broken sequences) through `fer-jax build` (exit 3, each bad file
in build_report.json), `tfds build` and TFDS's builder test case; the records open with
tfds.data_source, folds are subject-disjoint, nine folds read as one split
(tests/test_experiments.py trains on them).

The `fer-jax build` runs on Beam's DirectRunner in multi_processing mode with two workers, and the
`tfds build` with --beam_pipeline_options saying the same."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import tensorflow_datasets as tfds

from data_builders import common
from data_builders.ck_plus import ck_plus_dataset_builder as ck
from fer_jax.errors import InputError
from helpers.builds import MULTI_PROCESSING, ROOT, background_builds, finished_build, relative, subjects_of, tfds_builder_test_case

DUMMY = ROOT / "data_builders" / "ck_plus" / "dummy_data"
# fold0: S005's two sequences and the contempt S035
GOOD_KEPT = {"fold0": 3, **{f"fold{f}": 1 for f in range(1, 10)}}
PUBLISHED_FOLDS = ROOT / "data_builders" / "ck_plus" / "emotion_fan_folds.json"


# ----------------------------------------------------------------------------------------------------
# The fold table and the label parser


def test_fold_table_places_each_of_the_118_labelled_subjects_in_exactly_one_fold():
    everyone = [s for fold in ck.FOLDS for s in fold]
    assert len(everyone) == len(set(everyone)) == 118 and ck.NUM_FOLDS == 10
    assert all(11 <= len(fold) <= 12 for fold in ck.FOLDS)
    # The published rule: sorted ids, the i-th in fold i % 10.
    assert [sorted(everyone)[f::10] for f in range(10)] == [list(fold) for fold in ck.FOLDS]
    assert all(ck.FOLD_OF_SUBJECT[s] == f for f, fold in enumerate(ck.FOLDS) for s in fold)


def test_folds_reproduce_emotion_fans_published_list(tmp_path):
    """A corpus laid out like CK+ with the 327 labelled sequences of Emotion-FAN's published
    subject-level list (emotion_fan_folds.json): find_sequences puts each in the published fold."""
    published = json.loads(PUBLISHED_FOLDS.read_text())["folds"]
    assert [len(fold) for fold in published] == [33, 39, 40, 35, 30, 37, 29, 29, 33, 22]
    for key in (key for fold in published for key in fold):
        (tmp_path / ck.IMAGES_DIR / key).mkdir(parents=True)
        labels = tmp_path / ck.EMOTION_DIR / key
        labels.mkdir(parents=True)
        (labels / f"{key.replace('/', '_')}_00000010_emotion.txt").write_text("   1.0000000e+00\n")
    report = common.BuildReport()
    items = ck.find_sequences(tmp_path, ck.CLASSES_7, report)
    assert report.skipped == [] and not report.excluded
    assert [sorted(item.key for item in items[f"fold{f}"]) for f in range(10)] == published


def test_cross_validation_splits_hold_one_fold_out():
    train, val = ck.cross_validation_splits(3)
    assert val == "fold3" and train == "fold0+fold1+fold2+fold4+fold5+fold6+fold7+fold8+fold9"
    with pytest.raises(Exception, match="folds 0..9"):
        ck.cross_validation_splits(10)


@pytest.mark.parametrize("text, code", [("   3.0000000e+00\n", 3), ("7", 7), ("0.0\r\n", 0), ("2.0000000e+00", 2)])
def test_emotion_file_parser_reads_ck_codes(tmp_path, text, code):
    path = tmp_path / "S005_001_00000011_emotion.txt"
    path.write_text(text)
    assert ck.parse_emotion_file(path) == code


@pytest.mark.parametrize(
    "text, detail",
    [("", "found 0 fields"), ("happy\n", "'happy' is not a number"), ("3.0 4.0", "found 2 fields"),
     ("3.5000000e+00", "not a CK+ emotion code"), ("9", "not a CK+ emotion code"), ("-1", "not a CK+ emotion code")],
)
def test_emotion_file_parser_names_malformed_files(tmp_path, text, detail):
    path = tmp_path / "S005_001_00000011_emotion.txt"
    path.write_text(text)
    with pytest.raises(InputError, match=re.escape(detail)) as error:
        ck.parse_emotion_file(path)
    assert error.value.reason == "bad_label" and error.value.path == str(path)


def test_the_dummy_emotion_files_are_in_the_owner_format():
    files = sorted((DUMMY / "Emotion").glob("*/*/*_emotion.txt"))
    good = [f for f in files if f.parent.parent.name not in ("S045", "S046")]
    assert good and all(f.read_text() == f"   {ck.parse_emotion_file(f)}.0000000e+00\n" for f in good)
    # Each file is named after its sequence's last frame.
    for f in good:
        frames = sorted((DUMMY / "cohn-kanade-images" / f.parent.relative_to(DUMMY / "Emotion")).glob("*.png"))
        assert not frames or f.name == frames[-1].stem + "_emotion.txt"


# ----------------------------------------------------------------------------------------------------
# TFDS's own builder checks, in-process while the command-line builds run (it reads through
# as_dataset, which ArrayRecord files do not support, so this one builds TFRecords).


# Started with the command-line builds, which run beside it.
CkPlusLemhiTest = pytest.mark.usefixtures("builds")(tfds_builder_test_case(ck.Builder, DUMMY, "lemhi", GOOD_KEPT))


# ----------------------------------------------------------------------------------------------------
# Builds of the dummy corpus


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    """The two command-line builds of this file, started by the first test that needs them (the
    TFDS builder test case, so that they run while it builds in-process)."""
    yield from background_builds(tmp_path_factory, "ck_plus/gray64_t8", DUMMY, "gray64_t8_6class",
                                 fer_jax_flags=("--runner", "direct", f"--beam-options={MULTI_PROCESSING}"),
                                 tfds_flags=(f"--beam_pipeline_options={MULTI_PROCESSING}",))


@pytest.fixture(scope="module")
def built(builds):
    """(data dir, finished `fer-jax build`, build_report.json) of ck_plus/gray64_t8."""
    return finished_build(builds["fer_jax"], "ck_plus/gray64_t8")


def test_fer_jax_build_exits_3_and_reports_each_bad_file(built):
    """Built by Beam's DirectRunner in two worker processes: the files the preprocessing rejects
    (a zero-byte frame, a sequence without a face) are reported with their reasons, like the
    label problems found while listing, and every good sequence is kept."""
    _, done, report = built
    assert done.returncode == 3, done.stderr[-3000:]
    assert report["kept"] == GOOD_KEPT
    skipped = {(relative(s["path"]), s["reason"], s["split"]) for s in report["skipped_files"]}
    images, labels = "data_builders/ck_plus/dummy_data/cohn-kanade-images", "data_builders/ck_plus/dummy_data/Emotion"
    assert skipped == {
        (f"{images}/S042/001/S042_001_00000006.png", "zero_byte", "fold2"),
        (f"{images}/S044/001", "no_face", "fold3"),
        (f"{labels}/S045/001/S045_001_00000002_emotion.txt", "bad_label", "fold4"),
        (f"{labels}/S046/001/S046_001_00000002_emotion.txt", "bad_label", "fold5"),
        (f"{images}/S998/001", "unknown_subject", "none"),
        (f"{images}/S050/001", "missing", "fold6"),
    }
    assert report["skipped"] == 6 and "skipped 2 (bad_label)" in done.stdout
    assert report["excluded_by_reason"] == {"unlabelled": 1}  # S037/001 has no emotion file
    assert report["source_frames"] == {"fold0": 3 * 6, **{f"fold{f}": 6 for f in range(1, 10)}}
    assert report["runner"] == "DirectRunner" and report["workers"] == 2 and report["frames_per_second_per_core"] > 0


def test_folds_are_subject_disjoint_in_the_records(built):
    data_dir = built[0]
    subjects = {f"fold{f}": subjects_of("ck_plus/gray64_t8", data_dir, f"fold{f}") for f in range(10)}
    assert subjects["fold0"] == {"S005", "S035"}
    # S005 has two sequences: folds are per subject, so both are in S005's fold (a fold per
    # sequence would put S005/002 in another fold, and S005 in two).
    fold0 = tfds.data_source("ck_plus/gray64_t8", split="fold0", data_dir=str(data_dir), download=False)
    clips = sorted(r["clip_id"].decode() if isinstance(r["clip_id"], bytes) else r["clip_id"] for r in fold0)
    assert clips == ["S005/001", "S005/002", "S035/001"]
    for fold, found in subjects.items():
        assert all(ck.FOLD_OF_SUBJECT[s] == int(fold[4:]) for s in found)
    everyone = [s for found in subjects.values() for s in found]
    assert len(everyone) == len(set(everyone))


def test_nine_folds_read_as_one_split_with_the_config_shapes(built):
    data_dir = built[0]
    train_split, _ = ck.cross_validation_splits(0)
    source = tfds.data_source("ck_plus/gray64_t8", split=train_split, data_dir=str(data_dir), download=False)
    assert len(source) == 9
    record = source[0]
    assert record["frames"].shape == (8, 64, 64, 1) and record["frames"].dtype == np.uint8
    assert record["landmarks"].shape == (8, 68, 2) and np.isfinite(record["landmarks"]).all()
    names = source.dataset_info.features["label"].names
    assert tuple(names) == ck.CLASSES_7


def test_each_record_carries_its_emotion_file_label(built):
    from data_builders.ck_plus.make_dummy_data import GOOD, SECOND_SEQUENCES

    data_dir = built[0]
    source = tfds.data_source("ck_plus/gray64_t8", split="+".join(f"fold{f}" for f in range(10)),
                              data_dir=str(data_dir), download=False)
    labels = {(r["clip_id"].decode() if isinstance(r["clip_id"], bytes) else r["clip_id"]): ck.CLASSES_7[r["label"]]
              for r in source}
    broken = ("S042", "S998")  # a zero-byte frame, a subject CK+ does not have
    kept = {f"{subject}/{sequence}": code for subject, sequence, code, _ in GOOD + SECOND_SEQUENCES
            if code and subject not in broken}
    assert labels == kept


def test_tfds_build_command_builds_the_6_class_config(builds):
    done = builds["tfds"].result()
    assert done.returncode == 0, done.stderr[-3000:]
    data_dir = done.args[done.args.index("--data_dir") + 1]
    source = tfds.data_source("ck_plus/gray64_t8_6class", split="+".join(f"fold{f}" for f in range(10)),
                              data_dir=data_dir, download=False)
    assert len(source) == 11  # the contempt sequence is left out
    assert tuple(source.dataset_info.features["label"].names) == ck.CLASSES_6


def test_lemhi_config_declares_lemhi_and_variable_length():
    info = ck.Builder(config="lemhi", data_dir="/nonexistent").info
    assert info.features["lemhi"].shape == (112, 112, 1)
    assert info.features["frames"].shape == (32, 112, 112, 1) and "frame_mask" in info.features
