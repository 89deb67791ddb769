"""data_builders/bp4d_plus: the dummy BP4D+ (participant zips of JPEG frames, physiology text files,
with a damaged zip, an empty frame, a task T11, a faceless task and a foreign zip) built through
`fer-jax build` (exit 3, each bad file in build_report.json with its reason, the rest kept) and
`tfds build`; the folds are BigSmall's subject-disjoint splits, the labels the tasks' target
emotions, and the records train a model. The face_waveform config pictures the blood-pressure wave
(BP4D+ has no audio): tests/test_experiments.py trains av_image_inception on it."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import tensorflow_datasets as tfds

from data_builders.bp4d_plus import bp4d_plus_dataset_builder as bp4d
from data_builders.bp4d_plus import physiology
from data_builders.common import BuildReport
from fer_jax.errors import ConfigError, InputError
from helpers.builds import ROOT, Builds, records, relative, subjects_of, text, train_two_steps

DUMMY = ROOT / "data_builders" / "bp4d_plus" / "dummy_data"
DUMMY_DIR = "data_builders/bp4d_plus/dummy_data"
NAME = "bp4d_plus/gray64_t8"
KEPT = {"fold0": 2, "fold1": 1, "fold2": 2}


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    """`fer-jax build` and `tfds build` of the dummy corpus, started at once in the background."""
    with Builds(NAME, DUMMY, tmp_path_factory.mktemp("bp4d_plus")) as started:
        yield started


# ----------------------------------------------------------------------------------------------------
# The folds, the labels and the listing (no preprocessing)


def test_folds_are_bigsmalls_three_subject_disjoint_splits_of_the_140_participants():
    subjects = [s for fold in bp4d.FOLDS for s in fold]
    assert len(subjects) == len(set(subjects)) == 140 and [len(f) for f in bp4d.FOLDS] == [46, 47, 47]
    assert sorted(subjects) == sorted([f"F{i:03d}" for i in range(1, 83)] + [f"M{i:03d}" for i in range(1, 59)])
    source = json.loads((DUMMY.parent / "bigsmall_folds.json").read_text())["source"]
    assert all("rPPG-Toolbox" in url and "BP4D_BigSmall_Subject_Splits" in url for url in source)


def test_each_task_is_labelled_with_its_target_emotion():
    assert list(bp4d.TASK_EMOTIONS) == [f"T{k}" for k in range(1, 11)] and len(set(bp4d.CLASSES)) == 10
    report = BuildReport()
    config = bp4d.Builder(config="gray64_t8", data_dir="/nonexistent").builder_config
    items = bp4d.find_clips(DUMMY, config, report)
    labels = {item.key: bp4d.CLASSES[item.label] for split in items.values() for item in split}
    assert labels == {"F006/T1": "happiness", "F006/T7": "fear", "M026/T5": "skepticism", "F046/T8": "pain",
                      "F046/T3": "sadness", "F078/T3": "sadness", "F078/T10": "disgust"}
    assert {(s["reason"], s["split"]) for s in report.skipped} == {
        ("truncated", "fold1"), ("unknown_task", "fold2"), ("unknown_subject", "unassigned")}


def test_a_wrong_manual_dir_says_what_the_layout_is():
    config = bp4d.Builder(config="gray64_t8", data_dir="/nonexistent").builder_config
    with pytest.raises(ConfigError, match=re.escape("no 2D+3D/F001.zip .. M058.zip")):
        bp4d.find_clips(DUMMY / "Physiology", config, BuildReport())


def test_the_signal_is_stretched_over_the_picture_and_scaled_to_fill_it(tmp_path):
    path = tmp_path / "BP_mmHg.txt"
    path.write_text("BP_mmHg\n80\n120\n100\n")  # a header line, then one value per line
    wave = physiology.stretched(physiology.read_signal(path), 5)
    # positions 0, .5, 1, 1.5, 2 of [80, 120, 100] -> 80, 100, 120, 110, 100; mean 102; largest deviation 22
    np.testing.assert_allclose(wave, np.array([-22, -2, 18, 8, -2]) / 22, atol=1e-6)  # float32 of exact ratios
    path.write_text("80\nn/a\n")
    with pytest.raises(InputError, match="not one number per line") as error:
        physiology.read_signal(path)
    assert error.value.reason == "bad_signal"


def test_face_waveform_pictures_the_tasks_blood_pressure_file():
    """BP4D+ has no audio: the face_waveform record's picture is the task's BP_mmHg.txt, stretched
    over the picture, drawn by the same function that draws RAVDESS's sound."""
    from data_builders.common import preprocess_item
    from fer_jax.preprocess import audio

    config = bp4d.Builder(config="face_waveform", data_dir="/nonexistent").builder_config
    assert "blood-pressure" in config.description and "no audio" in config.description
    item = next(i for i in bp4d.find_clips(DUMMY, config, BuildReport())["fold2"] if i.key == "F078/T3")
    _, example, skip, _ = preprocess_item(item, config.clip)
    assert skip is None and example["frames"].shape == (3, 128, 128, 1)
    samples = int(round(config.clip.audio_seconds * config.clip.sample_rate))
    signal = physiology.read_signal(DUMMY / "Physiology" / "F078" / "T3" / "BP_mmHg.txt")
    np.testing.assert_array_equal(example["waveform_image"], audio.waveform_image(physiology.stretched(signal, samples),
                                                                                  samples))


# ----------------------------------------------------------------------------------------------------
# The command-line builds


def test_fer_jax_build_skips_each_bad_file_with_its_reason_and_keeps_the_rest(builds):
    done, report = builds.fer_jax()
    assert done == 3, builds.log("fer_jax")
    assert report["kept"] == KEPT
    skipped = {(relative(s["path"].split(":")[0]), s["path"].partition(":")[2], s["reason"], s["split"])
               for s in report["skipped_files"]}
    assert skipped == {
        (f"{DUMMY_DIR}/2D+3D/M001.zip", "", "truncated", "fold1"),
        (f"{DUMMY_DIR}/2D+3D/F046.zip", "F046/T3/0004.jpg", "zero_byte", "fold1"),
        (f"{DUMMY_DIR}/2D+3D/F078.zip", "F078/T11", "unknown_task", "fold2"),
        (f"{DUMMY_DIR}/2D+3D/F006.zip", "F006/T7", "no_face", "fold0"),
        (f"{DUMMY_DIR}/2D+3D/F200.zip", "", "unknown_subject", "unassigned"),
    }


def test_tfds_build_builds_the_same_records(builds):
    done, report = builds.tfds()
    assert done == 0, builds.log("tfds")
    assert report["kept"] == KEPT and report["skipped"] == 5  # the builder writes its report under tfds build too
    ids = {fold: sorted(text(r["clip_id"]) for r in records(NAME, builds.tfds_dir, fold)) for fold in KEPT}
    assert ids == {"fold0": ["F006/T1", "M026/T5"], "fold1": ["F046/T8"], "fold2": ["F078/T10", "F078/T3"]}


# ----------------------------------------------------------------------------------------------------
# The records


def test_folds_are_disjoint_by_subject_and_records_carry_the_task_label(builds):
    builds.fer_jax()
    folds = {fold: subjects_of(NAME, builds.fer_jax_dir, fold) for fold in KEPT}
    assert folds == {"fold0": {"F006", "M026"}, "fold1": {"F046"}, "fold2": {"F078"}}
    for fold, subjects in folds.items():
        assert all(bp4d.FOLD_OF_SUBJECT[s] == int(fold[-1]) for s in subjects)
        for record in records(NAME, builds.fer_jax_dir, fold):
            subject, task = text(record["clip_id"]).split("/")
            assert text(record["subject"]) == subject and record["label"] == bp4d.CLASSES.index(bp4d.TASK_EMOTIONS[task])
            assert record["frames"].shape == (8, 64, 64, 1) and "waveform_image" not in record


def test_records_feed_two_training_steps(builds, tmp_path):
    builds.fer_jax()
    results = train_two_steps(NAME, builds.fer_jax_dir, "fold0+fold2", "fold1", len(bp4d.CLASSES), tmp_path)
    assert results["steps"] == 2 and results["num_train_clips"] == 4 and results["num_val_clips"] == 1
