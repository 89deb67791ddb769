"""data_builders/mafw: the 11 classes and the fold lists, and builds of the dummy MAFW (owners' layout,
with broken files and rows) through `fer-jax build` (video-only config, exit 3, each bad file in
build_report.json) and `tfds build` (the audio-visual config: the clip without sound skipped there);
the folds are the test lists, disjoint by clip, and the records feed two training steps
(tests/test_experiments.py trains the MAFW configs)."""

from __future__ import annotations

import pytest
import tensorflow_datasets as tfds

from data_builders import listed_clips
from data_builders.mafw import mafw_dataset_builder as mafw
from data_builders.mafw.make_dummy_data import BAD_LABEL, GOOD, MISSING, NO_AUDIO, ZERO_BYTE
from fer_jax.errors import ConfigError, InputError
from helpers.benchmark_builds import build_fixtures, skips, tfds_data_dir
from helpers.builds import ROOT, build_report, records, text, train_two_steps

DUMMY = ROOT / "data_builders" / "mafw" / "dummy_data"
NAME = "mafw/gray64_t8"
KEPT = {"fold0": 3, "fold1": 1, "fold2": 1, "fold3": 1, "fold4": 1}  # fold0: the clip without sound too
ALL_FOLDS = "+".join(f"fold{k}" for k in range(5))
CLIPS = "data_builders/mafw/dummy_data/data/clips"
LISTS = "data_builders/mafw/dummy_data/Train & Test Set/single/no_caption"


def test_the_11_classes_and_the_list_rows(tmp_path):
    assert len(mafw.CLASSES) == 11 and mafw.CLASSES[:7] == ("anger", "disgust", "fear", "happiness", "neutral",
                                                            "sadness", "surprise")
    path = tmp_path / "test.txt"
    path.write_text("00025.mp4 anger\n\n00028.mp4 Anger\n00031.mp4\n")
    rows = mafw.read_test_list(path)
    assert [(r.name, r.label, r.row) for r in rows] == [("00025.mp4", "anger", 1), ("00028.mp4", "Anger", 3),
                                                        ("00031.mp4", "", 4)]
    assert mafw.label_of(rows[0]) == 0
    for row in rows[1:]:
        with pytest.raises(InputError, match=f"row {row.row}: label") as error:
            mafw.label_of(row)
        assert error.value.reason == "bad_label"
    with pytest.raises(ConfigError, match="no Train & Test Set/single/no_caption or split/single/no_caption"):
        mafw.split_dir(tmp_path)


builds, built = build_fixtures(NAME, DUMMY, "rgb224_t16_av")


def test_fer_jax_build_exits_3_and_reports_each_bad_file_and_row(built):
    _, done, report = built
    assert done.returncode == 3, done.stderr[-3000:]
    assert report["kept"] == KEPT
    assert skips(report) == {
        (f"{CLIPS}/{ZERO_BYTE:05d}.mp4", "zero_byte", "fold1"),
        (f"{CLIPS}/{MISSING:05d}.mp4", "missing", "fold3"),
        (f"{LISTS}/set_5/test.txt", "bad_label", "fold4"),
    }


def test_folds_are_the_test_lists_and_disjoint_by_clip(built):
    data_dir = built[0]
    found = {f"fold{k}": {text(r["clip_id"]): mafw.CLASSES[r["label"]] for r in records(NAME, data_dir, f"fold{k}")}
             for k in range(5)}
    expected = {f"fold{k - 1}": {f"{n:05d}": label for n, label, s in GOOD if s == k} for k in range(1, 6)}
    expected["fold0"][f"{NO_AUDIO:05d}"] = "sadness"  # no sound: kept by the video-only config
    assert found == expected
    clip_ids = [clip for fold in found.values() for clip in fold]
    assert len(clip_ids) == len(set(clip_ids)) and f"{BAD_LABEL:05d}" not in clip_ids


def test_records_feed_two_training_steps(built, tmp_path):
    train_split, test_split = listed_clips.cross_validation_splits(0)
    results = train_two_steps(NAME, built[0], train_split, test_split, 11, tmp_path)
    assert results["steps"] == 2 and results["num_train_clips"] == 4 and results["num_val_clips"] == 3


def test_tfds_build_keeps_the_sound_and_skips_the_clip_without_it(builds):
    data_dir = tfds_data_dir(builds)
    report = build_report("mafw/rgb224_t16_av", data_dir)
    assert report["kept"] == {**KEPT, "fold0": 2}
    assert (f"{CLIPS}/{NO_AUDIO:05d}.mp4", "no_audio", "fold0") in skips(report)
    record = tfds.data_source("mafw/rgb224_t16_av", split="fold0", data_dir=data_dir, download=False)[0]
    assert record["frames"].shape == (16, 224, 224, 3) and record["log_mel_deltas"].shape == (300, 64, 3)
    assert record["audio_frames"] > 0
