"""data_builders/afew: the layout and label parsing, the gamma correction of dark clips, and builds
of the dummy AFEW (owner's layout, with broken files) through `fer-jax build` (exit 3, each bad
file in build_report.json), `tfds build` and TFDS's builder test case; the records keep the
official train/validation split (tests/test_experiments.py trains on them)."""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np
import pytest
import tensorflow_datasets as tfds

from data_builders.afew import afew_dataset_builder as afew
from data_builders.afew.make_dummy_data import DARK, GOOD
from fer_jax.errors import ConfigError, InputError
from helpers.builds import ROOT, Builds, records, relative, text

# ----------------------------------------------------------------------------------------------------
# AFEW

DUMMY = ROOT / "data_builders" / "afew" / "dummy_data"
NAME = "afew/gray64_t8"
KEPT = {"train": 4, "validation": 3}


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    """`fer-jax build` and `tfds build` of the dummy corpus, started at once in the background."""
    with Builds(NAME, DUMMY, tmp_path_factory.mktemp("afew")) as started:
        yield started


# TFDS's own builder checks, first: the two command-line builds run meanwhile. TFDS reads through
# as_dataset, which ArrayRecord files do not support, so this one builds TFRecords.
@pytest.mark.usefixtures("builds")
class AfewBuilderTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = afew.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["gray64_t8"]
    SPLITS = KEPT
    SKIP_CHECKSUMS = True

    def _make_builder(self, config=None):
        return self.dataset_class(data_dir=self.tmp_dir, config=config, version=self.VERSION, file_format="tfrecord")


def test_labels_come_from_the_emotion_folder():
    assert afew.label_of(pathlib.Path("/afew/Val/Surprise/011603980.avi")) == afew.CLASSES.index("surprise")
    assert afew.CLASSES == ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
    for folder in ("Contempt", "angry", "Happy ", "Train"):
        with pytest.raises(InputError, match="not one of AFEW's emotions") as error:
            afew.label_of(pathlib.Path(f"/afew/Train/{folder}/000000001.avi"))
        assert error.value.reason == "bad_label"


def test_split_folders_accept_the_emotiw_archive_names(tmp_path):
    (tmp_path / "Train_AFEW" / "Angry").mkdir(parents=True)
    assert afew.split_folder(tmp_path, "train") == tmp_path / "Train_AFEW"
    (tmp_path / "Train").mkdir()
    assert afew.split_folder(tmp_path, "train") == tmp_path / "Train"
    with pytest.raises(ConfigError, match="no Val or Val_AFEW folder"):
        afew.split_folder(tmp_path, "validation")


def test_every_config_gamma_corrects_dark_clips_only():
    assert {c.name for c in afew.Builder.BUILDER_CONFIGS} == {"gray64_t8", "rgb224_t16_av", "lemhi"}
    for config in afew.Builder.BUILDER_CONFIGS:
        assert (config.clip.gamma, config.clip.gamma_if_dark_below) == (1.5, afew.DARK_LUMA)
    av = afew.Builder(config="rgb224_t16_av", data_dir="/nonexistent").info.features
    assert av["frames"].shape == (16, 224, 224, 3) and av["log_mel_deltas"].shape == (300, 64, 3)
    lemhi = afew.Builder(config="lemhi", data_dir="/nonexistent").info.features
    assert lemhi["lemhi"].shape == (112, 112, 1) and "log_mel" not in lemhi


def test_the_dark_dummy_clip_is_brightened_and_the_others_are_not(builds):
    from fer_jax.preprocess import photometric, sources  # dlib and the landmark model: only for this test
    from fer_jax.preprocess.clip import process_clip

    config = afew.Builder(config="gray64_t8", data_dir="/nonexistent").builder_config.clip
    for relative_path, _ in GOOD:
        video = sources.VideoFile(DUMMY / relative_path)
        luma = photometric.mean_luma(video.frames_at(range(video.count())).values())
        assert (luma < afew.DARK_LUMA) == (relative_path == DARK), (relative_path, luma)
    builds.fer_jax()
    record = next(r for r in records(NAME, builds.fer_jax_dir, "train") if text(r["clip_id"]) == DARK)
    corrected = process_clip(str(DUMMY / DARK), config)
    assert corrected["gamma_applied"]
    np.testing.assert_array_equal(record["frames"], corrected["frames"])  # the build applied the gamma
    uncorrected = process_clip(str(DUMMY / DARK), dataclasses.replace(config, gamma=1.0))
    assert record["frames"].mean() > uncorrected["frames"].mean() + 10


def test_fer_jax_build_exits_3_and_reports_each_bad_file(builds):
    done, report = builds.fer_jax()
    assert done == 3, builds.log("fer_jax")
    assert report["kept"] == KEPT
    skipped = {(relative(s["path"]), s["reason"], s["split"]) for s in report["skipped_files"]}
    folder = "data_builders/afew/dummy_data"
    assert skipped == {
        (f"{folder}/Train/Disgust/000200001.avi", "zero_byte", "train"),
        (f"{folder}/Train/Fear/000200002.avi", "truncated", "train"),
        (f"{folder}/Val/Angry/000200003.avi", "no_audio", "validation"),
        (f"{folder}/Val/Happy/000200004.avi", "no_face", "validation"),
        (f"{folder}/Train/Contempt/000200005.avi", "bad_label", "train"),
    }
    assert report["frames_per_second_per_core"] > 0


def test_tfds_build_builds_the_same_records(builds):
    done, report = builds.tfds()
    assert done == 0, builds.log("tfds")
    assert report["kept"] == KEPT and report["skipped"] == 5  # the builder writes its report under tfds build too
    assert sorted(text(r["clip_id"]) for r in records(NAME, builds.tfds_dir, "validation")) == [
        "Val/Disgust/000100007.avi", "Val/Fear/000100005.avi", "Val/Surprise/000100006.avi"]


def test_records_keep_the_official_split_and_the_folder_labels(builds):
    builds.fer_jax()
    for split, folder in (("train", "Train"), ("validation", "Val")):
        found = {text(r["clip_id"]): r for r in records(NAME, builds.fer_jax_dir, split)}
        assert sorted(found) == sorted(path for path, _ in GOOD if path.startswith(folder + "/"))
        for clip_id, record in found.items():
            assert afew.CLASSES[record["label"]] == pathlib.PurePath(clip_id).parent.name.lower()
            assert text(record["subject"]) == "unknown"
            assert record["frames"].shape == (8, 64, 64, 1) and record["log_mel"].shape == (300, 64)
