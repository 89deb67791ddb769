"""data_builders/crema_d: the strict file-name parser, the published sex-balanced actor folds, and
builds of the dummy CREMA-D (owner's layout, with broken files) through `fer-jax build` (exit 3,
each bad file in build_report.json), `tfds build` and TFDS's builder test case; the folds are
actor-disjoint in the records (tests/test_experiments.py trains on them)."""

from __future__ import annotations

import pathlib
import shutil
import wave

import numpy as np
import pytest
import tensorflow_datasets as tfds

from data_builders import common

from data_builders.crema_d import crema_d_dataset_builder as crema
from data_builders.crema_d.audio_source import VideoWithWavAudio
from data_builders.crema_d.make_dummy_data import GOOD
from fer_jax.errors import ConfigError, InputError
from fer_jax.preprocess import clip as clip_lib
from fer_jax.preprocess import video
from helpers.builds import Builds, records, relative, text

ROOT = pathlib.Path(__file__).resolve().parents[1]
DUMMY = ROOT / "data_builders" / "crema_d" / "dummy_data"
NAME = "crema_d/gray64_t8"
KEPT = {"fold0": 2, "fold1": 1, "fold2": 1, "fold3": 1, "fold4": 1}
ALL_FOLDS = "+".join(f"fold{k}" for k in range(5))


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    """`fer-jax build` and `tfds build` of the dummy corpus, started at once in the background."""
    with Builds(NAME, DUMMY, tmp_path_factory.mktemp("crema_d")) as started:
        yield started


# TFDS's own builder checks, first: the two command-line builds run meanwhile. TFDS reads through
# as_dataset, which ArrayRecord files do not support, so this one builds TFRecords.
@pytest.mark.usefixtures("builds")
class CremaDBuilderTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = crema.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["gray64_t8"]
    SPLITS = KEPT
    SKIP_CHECKSUMS = True

    def _make_builder(self, config=None):
        return self.dataset_class(data_dir=self.tmp_dir, config=config, version=self.VERSION, file_format="tfrecord")

    def test_registered(self):
        # Not registered by design (TFDS's own audio-only "crema_d" has the name; see the Builder).
        from tensorflow_datasets.core import registered

        assert registered._DATASET_REGISTRY.get("crema_d") is not crema.Builder


def test_parser_decodes_actor_sentence_emotion_and_level():
    assert crema.parse_name("/c/VideoFlash/1001_IEO_ANG_HI.flv") == crema.CremaName(1001, "IEO", 0, "high")
    sad = crema.CLASSES.index("sad")
    assert crema.parse_name("1091_WSI_SAD_XX.flv") == crema.CremaName(1091, "WSI", sad, "unspecified")
    assert crema.parse_name("1045_IEO_NEU_XX.flv").label == crema.CLASSES.index("neutral")
    assert crema.parse_name("1076_IEO_DIS_LO.flv").level == "low"


@pytest.mark.parametrize(
    "filename, detail",
    [
        ("1000_DFA_ANG_XX.flv", "actor 1000 is not 1001-1091"),
        ("1092_DFA_ANG_XX.flv", "actor 1092"),
        ("1001_ABC_ANG_XX.flv", "sentence ABC"),
        ("1001_DFA_XYZ_XX.flv", "emotion XYZ"),
        ("1001_DFA_CON_XX.flv", "emotion CON"),
        ("1001_IEO_ANG_ZZ.flv", "level ZZ"),
        ("1001_DFA_ANG_HI.flv", "only the IEO sentence"),
        ("1001_IEO_NEU_MD.flv", "other than neutral"),
        ("1001_DFA_ANG_XX.mp4", "extension .mp4"),
        ("1001_dfa_ang_xx.flv", "not four digits"),
        ("1001-DFA-ANG-XX.flv", "not four digits"),
        ("1001_DFA_ANG.flv", "not four digits"),
    ],
)
def test_parser_rejects_malformed_names(filename, detail):
    with pytest.raises(InputError, match=detail) as error:
        crema.parse_name(f"/c/VideoFlash/{filename}")
    assert error.value.reason == "bad_name" and error.value.path == f"/c/VideoFlash/{filename}"


def test_fold_table_is_the_published_rule_and_balances_sex():
    actors = [a for fold in crema.FOLDS for a in fold]
    assert sorted(actors) == list(range(1001, 1092))  # each of the 91 actors in exactly one fold
    assert crema.SEXES.count("M") == 48 and crema.SEXES.count("F") == 43 and len(crema.SEXES) == 91
    actors = range(1001, 1092)
    ordered = [a for a in actors if crema.sex_of(a) == "M"] + [a for a in actors if crema.sex_of(a) == "F"]
    assert [tuple(sorted(ordered[k::5])) for k in range(5)] == list(crema.FOLDS)
    men = [sum(crema.sex_of(a) == "M" for a in fold) for fold in crema.FOLDS]
    assert men == [10, 10, 10, 9, 9] and [len(f) for f in crema.FOLDS] == [19, 18, 18, 18, 18]
    assert crema.sex_of(1001) == "M" and crema.sex_of(1002) == "F" and crema.sex_of(1091) == "F"


def test_fer_jax_build_exits_3_and_reports_each_bad_file(builds):
    done, report = builds.fer_jax()
    assert done == 3, builds.log("fer_jax")
    assert report["kept"] == KEPT
    skipped = {(relative(s["path"]), s["reason"], s["split"]) for s in report["skipped_files"]}
    folder = "data_builders/crema_d/dummy_data/VideoFlash"
    assert skipped == {
        (f"{folder}/1004_DFA_DIS_XX.flv", "zero_byte", "fold0"),
        (f"{folder}/1005_IOM_FEA_XX.flv", "truncated", "fold1"),
        (f"{folder}/1007_ITH_HAP_XX.flv", "no_audio", "fold2"),
        (f"{folder}/1008_TAI_SAD_XX.flv", "no_face", "fold3"),
        (f"{folder}/1009_IWW_XYZ_XX.flv", "bad_name", "unassigned"),
        (f"{folder}/1009_DFA_ANG_HI.flv", "bad_name", "unassigned"),
    }
    assert report["frames_per_second_per_core"] > 0


def test_tfds_build_builds_the_same_records(builds):
    done, report = builds.tfds()
    assert done == 0, builds.log("tfds")
    assert report["kept"] == KEPT and report["skipped"] == 6
    assert sorted(text(r["clip_id"]) for r in records(NAME, builds.tfds_dir, "fold0")) == [
        "1001_IEO_ANG_HI.flv", "1001_TIE_NEU_XX.flv"]


def test_folds_are_actor_disjoint_in_the_records(builds):
    builds.fer_jax()
    seen = {}
    for fold in range(5):
        for record in records(NAME, builds.fer_jax_dir, f"fold{fold}"):
            name = crema.parse_name(text(record["clip_id"]))
            assert text(record["subject"]) == str(name.actor) and crema.FOLD_OF_ACTOR[name.actor] == fold
            assert record["label"] == name.label and text(record["sentence"]) == name.sentence
            assert record["frames"].shape == (8, 64, 64, 1) and record["log_mel"].shape == (300, 64)
            seen.setdefault(name.actor, set()).add(fold)
    assert all(len(folds) == 1 for folds in seen.values())
    assert sorted(text(r["clip_id"]) for r in records(NAME, builds.fer_jax_dir, ALL_FOLDS)) == sorted(
        f"{stem}.flv" for stem in GOOD)


def test_a_video_without_sound_takes_it_from_audio_wav(tmp_path):
    """An FLV without an audio stream (some copies' are so) and AudioWAV/<same name>.wav: the clip
    is kept, its audio features made from the WAV; an FLV with sound keeps its own."""
    stem, voiced = "1007_ITH_HAP_XX", "1001_IEO_ANG_HI"
    for folder, name in (("VideoFlash", f"{stem}.flv"), ("VideoFlash", f"{voiced}.flv"), ("AudioWAV", f"{voiced}.wav")):
        (tmp_path / folder).mkdir(exist_ok=True)
        shutil.copy(DUMMY / folder / name, tmp_path / folder / name)
    shutil.copy(DUMMY / "AudioWAV" / f"{voiced}.wav", tmp_path / "AudioWAV" / f"{stem}.wav")
    items = {item.key: item for fold in crema.find_clips(tmp_path, None).values() for item in fold}
    config = crema.Builder.builder_configs["gray64_t8"].clip
    _, example, skip, _ = common.preprocess_item(items[f"{stem}.flv"], config)
    assert skip is None
    from_wav = clip_lib.audio_outputs(video.read_audio(tmp_path / "AudioWAV" / f"{stem}.wav", config.sample_rate), config)
    np.testing.assert_array_equal(example["log_mel"], from_wav["log_mel"])
    own = items[f"{voiced}.flv"].path
    assert isinstance(own, VideoWithWavAudio)
    np.testing.assert_array_equal(own.read_audio(16_000), video.read_audio(own.path, 16_000))


def test_digital_silence_is_no_usable_sound(tmp_path):
    silent = tmp_path / "silent.wav"
    with wave.open(str(silent), "wb") as out:  # an audio track of zeros, as a muted copy's
        out.setnchannels(1), out.setsampwidth(2), out.setframerate(16_000)
        out.writeframes(np.zeros(16_000, np.int16).tobytes())
    voice = DUMMY / "AudioWAV" / "1001_IEO_ANG_HI.wav"
    np.testing.assert_array_equal(VideoWithWavAudio(str(silent), str(voice)).read_audio(16_000),
                                  video.read_audio(voice, 16_000))


def test_configs_and_a_wrong_manual_dir():
    av = crema.Builder(config="rgb224_t16_av", data_dir="/nonexistent").info.features
    assert av["frames"].shape == (16, 224, 224, 3) and av["log_mel_deltas"].shape == (300, 64, 3)
    assert av["level"].names == ["low", "medium", "high", "unspecified"]
    with pytest.raises(ConfigError, match="no VideoFlash folder"):
        crema.find_clips(DUMMY / "AudioWAV", None)


def test_readme_publishes_the_same_fold_table():
    readme = (ROOT / "data_builders" / "crema_d" / "README.md").read_text()
    rows = [line.split("|")[1:4] for line in readme.splitlines() if line[:4] in {f"| {k} " for k in range(5)}]
    assert [tuple(int(a) for a in actors.split()) for _, actors, _ in rows] == list(crema.FOLDS)
