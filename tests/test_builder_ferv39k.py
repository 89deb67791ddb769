"""data_builders/ferv39k: the list rows (scene, emotion), and builds of the dummy FERV39k (owners'
layout: folders of face-crop frames, with broken clips and rows) through `fer-jax build` (exit 3,
each bad file in build_report.json) and `tfds build`; the records keep the official train / test
split, disjoint by clip, with each clip's scene, and feed two training steps."""

from __future__ import annotations

import pathlib

import pytest
import tensorflow_datasets as tfds

from data_builders.ferv39k import ferv39k_dataset_builder as ferv
from data_builders.ferv39k.make_dummy_data import BAD_LABEL, BAD_SCENE, GOOD, MISSING, NO_FACE, ZERO_BYTE
from data_builders.listed_clips import ListedClip
from fer_jax.errors import InputError
from helpers.benchmark_builds import build_fixtures, skips, tfds_data_dir
from helpers.builds import ROOT, records, text, train_two_steps

DUMMY = ROOT / "data_builders" / "ferv39k" / "dummy_data"
NAME = "ferv39k/gray64_t8"
KEPT = {"train": 4, "test": 2}
CLIPS = "data_builders/ferv39k/dummy_data/2_ClipsforFaceCrop"
LISTS = "data_builders/ferv39k/dummy_data/4_setups/All_scenes"


def test_rows_give_scene_and_emotion_and_name_what_is_wrong():
    assert len(ferv.SCENES) == 22 and ferv.CLASSES == ("happy", "sad", "neutral", "angry", "surprise", "disgust", "fear")

    def row(name, label):
        return ListedClip(name, label, pathlib.Path("test_All.csv"), 7)

    assert ferv.scene_and_label(row("Talkshow/Surprise/0034", "Surprise")) == (ferv.SCENES.index("Talkshow"), 4)
    for name, label, reason in [("Cooking/Happy/0001", "Happy", "bad_name"), ("Happy/0001", "Happy", "bad_name"),
                                ("War/Sad/0001", "Happy", "bad_label"), ("War/Calm/0001", "Calm", "bad_label")]:
        with pytest.raises(InputError, match="row 7") as error:
            ferv.scene_and_label(row(name, label))
        assert error.value.reason == reason, name


builds, built = build_fixtures(NAME, DUMMY, "rgb160_t16")


def test_fer_jax_build_exits_3_and_reports_each_bad_file_and_row(built):
    _, done, report = built
    assert done.returncode == 3, done.stderr[-3000:]
    assert report["kept"] == KEPT
    assert skips(report) == {
        (f"{CLIPS}/{ZERO_BYTE}/0009.jpg", "zero_byte", "train"),
        (f"{CLIPS}/{NO_FACE}", "no_face", "train"),
        (f"{LISTS}/train_All.csv", "bad_label", "train"),
        (f"{CLIPS}/{MISSING}", "missing", "test"),
        (f"{LISTS}/test_All.csv", "bad_name", "test"),
    }
    assert BAD_LABEL in " ".join(s["message"] for s in report["skipped_files"])
    assert BAD_SCENE in " ".join(s["message"] for s in report["skipped_files"])


def test_records_keep_the_official_split_labels_and_scenes(built):
    data_dir = built[0]
    found = {split: {text(r["clip_id"]): (ferv.CLASSES[r["label"]], ferv.SCENES[r["scene"]])
                     for r in records(NAME, data_dir, split)} for split in KEPT}
    assert found == {split: {name: (label.lower(), name.split("/")[0]) for s, name, label in GOOD if s == split}
                     for split in KEPT}
    assert not set(found["train"]) & set(found["test"])


def test_records_feed_two_training_steps(built, tmp_path):
    results = train_two_steps(NAME, built[0], "train", "test", 7, tmp_path)
    assert results["steps"] == 2 and results["num_train_clips"] == 4 and results["num_val_clips"] == 2


def test_tfds_build_builds_the_16_frame_config(builds):
    data_dir = tfds_data_dir(builds)
    source = tfds.data_source("ferv39k/rgb160_t16", split="test", data_dir=data_dir, download=False)
    assert len(source) == KEPT["test"] and source[0]["frames"].shape == (16, 160, 160, 3)
    assert source.dataset_info.features["scene"].names == list(ferv.SCENES)
