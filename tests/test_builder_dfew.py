"""data_builders/dfew: the label codes and fold lists, and builds of the dummy DFEW (owners' layout,
with broken files and rows) through `fer-jax build` (exit 3, each bad file in build_report.json),
`tfds build` and TFDS's builder test case; the folds are the test lists, disjoint by clip, and the
records feed two training steps (tests/test_experiments.py trains the DFEW configs)."""

from __future__ import annotations

import pathlib

import pytest
import tensorflow_datasets as tfds

from data_builders import common, listed_clips
from data_builders.dfew import dfew_dataset_builder as dfew
from data_builders.dfew.make_dummy_data import BAD, BAD_LABEL, CONFLICT, GOOD, MISSING, NO_FACE, ZERO_BYTE
from fer_jax.errors import ConfigError, InputError
from helpers.benchmark_builds import build_fixtures, skips, tfds_data_dir
from helpers.builds import ROOT, records, text, tfds_builder_test_case, train_two_steps

DUMMY = ROOT / "data_builders" / "dfew" / "dummy_data"
NAME = "dfew/gray64_t8"
KEPT = {"fold0": 2, "fold1": 1, "fold2": 1, "fold3": 1, "fold4": 1}
ALL_FOLDS = "+".join(f"fold{k}" for k in range(5))


def test_label_codes_are_dfews_and_fold_k_is_test_set_k_plus_1():
    # EmoLabel_DataSplit codes 1..7, as MAE-DFER's preprocess/dfew.py (label - 1) and DFEW's annotation use them
    assert dfew.CLASSES == ("happy", "sad", "neutral", "angry", "surprise", "disgust", "fear")
    assert listed_clips.cross_validation_splits(2) == ("fold0+fold1+fold3+fold4", "fold2")
    with pytest.raises(ConfigError, match="set_1..set_5"):
        listed_clips.cross_validation_splits(5)
    assert dfew.test_list(pathlib.Path("/d"), 3) == pathlib.Path("/d/EmoLabel_DataSplit/test(single-labeled)/set_3.csv")


def test_list_rows_name_their_file_and_row(tmp_path):
    path = tmp_path / "set_1.csv"
    path.write_text("\ufeffvideo_name,label\n2522,5\nx1,3\n2578,0\n")
    rows = dfew.read_test_list(path)
    assert [(r.name, r.label, r.row) for r in rows] == [("2522", "5", 2), ("x1", "3", 3), ("2578", "0", 4)]
    assert dfew.label_of(rows[0]) == dfew.CLASSES.index("surprise")
    with pytest.raises(InputError, match="row 4: label '0' is not one of DFEW's codes") as error:
        dfew.label_of(rows[2])
    assert error.value.reason == "bad_label"
    with pytest.raises(InputError, match="row 3: video_name 'x1'") as error:
        dfew.clip_path(tmp_path, rows[1])
    assert error.value.reason == "bad_name"
    (tmp_path / "Clip" / "original").mkdir(parents=True)
    (tmp_path / "Clip" / "original" / "02522.avi").write_bytes(b"avi")
    assert dfew.clip_path(tmp_path, rows[0]).name == "02522.avi"  # zero-padded, .avi read too
    path.write_text("name,emotion\n1,1\n")
    with pytest.raises(ConfigError, match="expected the header video_name,label"):
        dfew.read_test_list(path)


def test_a_clip_in_two_test_lists_is_in_no_fold(tmp_path):
    lists = [[listed_clips.ListedClip(name, "1", tmp_path / f"set_{k}.csv", n) for n, name in enumerate(names, 2)]
             for k, names in enumerate((["1", "2"], ["3", "2"], ["4"]), 1)]
    report = common.BuildReport()
    folds = listed_clips.folds_from_test_lists(lists, report)
    assert {fold: [r.name for r in rows] for fold, rows in folds.items()} == {
        "fold0": ["1"], "fold1": ["3"], "fold2": ["4"]}
    assert [(s["reason"], s["split"]) for s in report.skipped] == [("fold_conflict", "none")]
    assert "set_1.csv row 3 and set_2.csv row 3" in report.skipped[0]["message"]


# ----------------------------------------------------------------------------------------------------
# Builds of the dummy corpus: TFDS's own checks in-process while the command-line builds run.

DfewBuilderTest = pytest.mark.usefixtures("builds")(tfds_builder_test_case(dfew.Builder, DUMMY, "gray64_t8", KEPT))


builds, built = build_fixtures(NAME, DUMMY, "rgb160_t16")


def test_fer_jax_build_exits_3_and_reports_each_bad_file_and_row(built):
    _, done, report = built
    assert done.returncode == 3, done.stderr[-3000:]
    assert report["kept"] == KEPT
    lists = "data_builders/dfew/dummy_data/EmoLabel_DataSplit/test(single-labeled)"
    clips = "data_builders/dfew/dummy_data/Clip/original"
    assert skips(report) == {
        (f"{clips}/{ZERO_BYTE:05d}.mp4", "zero_byte", "fold1"),
        (f"{clips}/{NO_FACE:05d}.mp4", "no_face", "fold2"),
        (f"{clips}/{MISSING:05d}.mp4", "missing", "fold3"),
        (f"{lists}/set_5.csv", "bad_label", "fold4"),
        (f"{lists}/set_1.csv", "fold_conflict", "none"),
    }


def test_folds_are_the_test_lists_and_disjoint_by_clip(built):
    """Each fold holds exactly the good clips of its test list, with their list labels; no clip is in
    two folds, and every clip the 5 test lists name is in one fold or named in the report."""
    data_dir, _, report = built
    found = {f"fold{k}": {text(r["clip_id"]): dfew.CLASSES[r["label"]] for r in records(NAME, data_dir, f"fold{k}")}
             for k in range(5)}
    assert found == {f"fold{k - 1}": {f"{n:05d}": e for n, e, sets in GOOD if k in sets} for k in range(1, 6)}
    clip_ids = [clip for fold in found.values() for clip in fold]
    assert len(clip_ids) == len(set(clip_ids))
    clip_skips = {pathlib.Path(s["path"]).stem for s in report["skipped_files"] if s["path"].endswith(".mp4")}
    row_skips = {f"{BAD_LABEL:05d}", f"{CONFLICT:05d}"}  # named by their list file and row
    assert {f"{n:05d}" for n, _, _ in GOOD + BAD} == set(clip_ids) | clip_skips | row_skips
    assert all(text(r["subject"]) == "unknown" for r in records(NAME, data_dir, ALL_FOLDS))


def test_records_feed_two_training_steps(built, tmp_path):
    train_split, test_split = listed_clips.cross_validation_splits(0)
    results = train_two_steps(NAME, built[0], train_split, test_split, 7, tmp_path)
    assert results["steps"] == 2 and results["num_train_clips"] == 4 and results["num_val_clips"] == 2


def test_tfds_build_builds_the_16_frame_config(builds):
    data_dir = tfds_data_dir(builds)
    source = tfds.data_source("dfew/rgb160_t16", split=ALL_FOLDS, data_dir=data_dir, download=False)
    assert len(source) == sum(KEPT.values())
    assert source[0]["frames"].shape == (16, 160, 160, 3) and "log_mel" not in source[0]


def test_the_audio_visual_config_stores_what_the_attention_model_reads():
    features = dfew.Builder(config="rgb224_t16_av", data_dir="/nonexistent").info.features
    assert features["frames"].shape == (16, 224, 224, 3) and features["log_mel_deltas"].shape == (300, 64, 3)
