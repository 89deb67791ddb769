"""data_builders/ravdess: the strict file-name parser, the published actor folds, and builds of the
dummy RAVDESS (owner's layout, with broken, video-only, audio-only and song files) through
`fer-jax build` (exit 3, each bad file in build_report.json), `tfds build` and TFDS's builder test
case; the records hold only full-AV files, the folds are actor-disjoint, and they train a model."""

from __future__ import annotations

import pathlib

import pytest
import tensorflow_datasets as tfds

from data_builders.ravdess import ravdess_dataset_builder as ravdess
from fer_jax.errors import ConfigError, InputError
from helpers.builds import Builds, relative, text

ROOT = pathlib.Path(__file__).resolve().parents[1]
DUMMY = ROOT / "data_builders" / "ravdess" / "dummy_data"
NAME = "ravdess/gray64_t8"
KEPT = {"fold0": 2, "fold1": 1, "fold2": 1, "fold3": 1, "fold4": 1, "fold5": 1}
DUMMY_DIR = "data_builders/ravdess/dummy_data"


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    """`fer-jax build` and `tfds build` of the dummy corpus, started at once in the background."""
    with Builds(NAME, DUMMY, tmp_path_factory.mktemp("ravdess")) as started:
        yield started


# ----------------------------------------------------------------------------------------------------
# TFDS's own builder checks, first: the two command-line builds run meanwhile. TFDS reads through
# as_dataset, which ArrayRecord files do not support, so this one builds TFRecords.


@pytest.mark.usefixtures("builds")
class RavdessBuilderTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = ravdess.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["gray64_t8"]
    SPLITS = KEPT
    SKIP_CHECKSUMS = True

    def _make_builder(self, config=None):
        return self.dataset_class(data_dir=self.tmp_dir, config=config, version=self.VERSION, file_format="tfrecord")


# ----------------------------------------------------------------------------------------------------
# The file-name parser and the fold table


def test_parser_decodes_every_code():
    name = ravdess.parse_name("Actor_12/01-02-06-02-01-02-12.mp4")
    assert name == ravdess.RavdessName(modality=1, vocal_channel="song", label=ravdess.CLASSES.index("fearful"),
                                       intensity="strong", statement=1, repetition=2, actor=12)
    assert name.subject == "Actor_12"
    assert ravdess.parse_name("03-01-08-01-02-02-01.wav").modality == 3
    assert ravdess.parse_name("02-01-01-01-01-01-24.mp4").label == 0


@pytest.mark.parametrize(
    "filename, detail",
    [
        ("01-01-09-01-01-01-01.mp4", "emotion 09"),
        ("01-01-00-01-01-01-01.mp4", "emotion 00"),
        ("04-01-01-01-01-01-01.mp4", "modality 04"),
        ("01-03-01-01-01-01-01.mp4", "vocal channel 03"),
        ("01-01-02-03-01-01-01.mp4", "intensity 03"),
        ("01-01-02-01-03-01-01.mp4", "statement 03"),
        ("01-01-02-01-01-03-01.mp4", "repetition 03"),
        ("01-01-02-01-01-01-25.mp4", "actor 25"),
        ("01-01-01-02-01-01-01.mp4", "neutral has no strong"),
        ("01-02-07-01-01-01-01.mp4", "no disgust"),
        ("01-01-02-01-01-01-01.wav", "modality 01 files are .mp4"),
        ("03-01-02-01-01-01-01.mp4", "modality 03 files are .wav"),
        ("01-01-02-01-01-01.mp4", "seven two-digit codes"),
        ("1-1-2-1-1-1-1.mp4", "seven two-digit codes"),
        ("01_01_02_01_01_01_01.mp4", "seven two-digit codes"),
        ("video.mp4", "seven two-digit codes"),
    ],
)
def test_parser_rejects_malformed_names_with_the_wrong_code(filename, detail):
    with pytest.raises(InputError, match=detail) as error:
        ravdess.parse_name(f"/corpus/Actor_01/{filename}")
    assert error.value.reason == "bad_name" and error.value.path == f"/corpus/Actor_01/{filename}"


def test_fold_table_is_six_actor_disjoint_folds_of_two_men_and_two_women():
    actors = [a for fold in ravdess.FOLDS for a in fold]
    assert sorted(actors) == list(range(1, 25)) and len(ravdess.FOLDS) == 6
    assert all(sum(a % 2 for a in fold) == 2 and len(fold) == 4 for fold in ravdess.FOLDS)  # odd = male
    assert ravdess.FOLDS[0] == (1, 2, 3, 4) and ravdess.FOLDS[5] == (21, 22, 23, 24)
    assert all(ravdess.FOLD_OF_ACTOR[a] == f for f, fold in enumerate(ravdess.FOLDS) for a in fold)


# ----------------------------------------------------------------------------------------------------
# The command-line builds


def test_fer_jax_build_exits_3_and_reports_each_bad_file(builds):
    done, report = builds.fer_jax()
    assert done == 3, builds.log("fer_jax")
    assert report["kept"] == KEPT
    skipped = {(relative(s["path"]), s["reason"], s["split"]) for s in report["skipped_files"]}
    assert skipped == {
        (f"{DUMMY_DIR}/Actor_02/01-01-04-01-01-01-02.mp4", "zero_byte", "fold0"),
        (f"{DUMMY_DIR}/Actor_03/01-01-06-01-01-02-03.mp4", "truncated", "fold0"),
        (f"{DUMMY_DIR}/Actor_04/01-01-03-02-02-01-04.mp4", "no_audio", "fold0"),
        (f"{DUMMY_DIR}/Actor_05/01-01-07-01-01-01-05.mp4", "no_face", "fold1"),
        (f"{DUMMY_DIR}/Actor_07/01-01-09-01-01-01-07.mp4", "bad_name", "unassigned"),
        (f"{DUMMY_DIR}/Actor_08/01-01-02-01-01-01-10.mp4", "bad_name", "unassigned"),
    }
    assert report["excluded_by_reason"] == {
        "video-only file (only full-AV files are read)": 1,
        "audio-only file (only full-AV files are read)": 1,
        "song file (not in this config)": 1,
    }
    assert report["frames_per_second_per_core"] > 0


def test_tfds_build_builds_the_same_records(builds):
    done, report = builds.tfds()
    assert done == 0, builds.log("tfds")
    assert report["kept"] == KEPT and report["skipped"] == 6  # the builder writes its report under tfds build too
    source = tfds.data_source(NAME, split="fold0", data_dir=str(builds.tfds_dir), download=False)
    assert sorted(text(r["clip_id"]) for r in source) == ["Actor_01/01-01-05-02-01-01-01.mp4",
                                                          "Actor_01/01-01-08-01-02-02-01.mp4"]


# ----------------------------------------------------------------------------------------------------
# The records


def test_records_hold_only_full_av_speech_and_folds_are_actor_disjoint(builds):
    builds.fer_jax()
    seen = {}
    for fold in range(6):
        source = tfds.data_source(NAME, split=f"fold{fold}", data_dir=str(builds.fer_jax_dir), download=False)
        for record in source:
            clip_id, subject = text(record["clip_id"]), text(record["subject"])
            name = ravdess.parse_name(clip_id)
            assert name.modality == 1 and name.vocal_channel == "speech", clip_id  # never 02/03, never song
            assert clip_id.startswith(f"{subject}/") and ravdess.FOLD_OF_ACTOR[name.actor] == fold
            assert record["label"] == name.label and record["statement"] == name.statement
            assert record["frames"].shape == (8, 64, 64, 1) and record["log_mel"].shape == (350, 64)
            seen.setdefault(subject, set()).add(fold)
    assert all(len(folds) == 1 for folds in seen.values())
    assert sorted(seen) == ["Actor_01", "Actor_06", "Actor_09", "Actor_14", "Actor_17", "Actor_22"]


def test_song_config_says_23_actors_sang():
    """Actor 18 recorded no song (RAVDESS's release): the song config and its docs say so."""
    assert len(ravdess.SONG_ACTORS) == 23 and 18 not in ravdess.SONG_ACTORS
    assert [sum(a in ravdess.SONG_ACTORS for a in fold) for fold in ravdess.FOLDS] == [4, 4, 4, 4, 3, 4]
    song = ravdess.Builder(config="gray64_t8_song", data_dir="/nonexistent").builder_config
    assert "23 actors" in song.description and "actor 18" in song.description
    readme = (DUMMY.parent / "README.md").read_text()
    assert "actor 18 recorded no song" in readme and "23 actors" in readme


def test_configs_and_a_wrong_manual_dir():
    av = ravdess.Builder(config="rgb224_t16_av", data_dir="/nonexistent").info.features
    assert av["frames"].shape == (16, 224, 224, 3) and av["log_mel_deltas"].shape == (350, 64, 3)
    faces = ravdess.Builder(config="face_waveform", data_dir="/nonexistent").info.features  # av_image_inception's
    assert faces["frames"].shape == (3, 128, 128, 1) and faces["waveform_image"].shape == (256, 256, 1)
    assert ravdess.Builder(config="gray64_t8_song", data_dir="/nonexistent").builder_config.vocal_channels == (
        "speech", "song")
    with pytest.raises(ConfigError, match="no Actor_01 .. Actor_24 folders"):
        ravdess.find_clips(DUMMY / "Actor_01", ("speech",), None)
