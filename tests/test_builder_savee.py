"""data_builders/savee: the strict file-name parser, the published speaker folds and random 80:20
split, and builds of the dummy SAVEE (owner's layout, with broken files) through `fer-jax build`
(exit 3, each bad file in build_report.json), `tfds build` and TFDS's builder test case; the
folds are speaker-disjoint and train/test is the published table (tests/test_experiments.py
trains on them)."""

from __future__ import annotations

import collections
import pathlib

import pytest
import tensorflow_datasets as tfds

from data_builders import common
from data_builders.savee import savee_dataset_builder as savee
from data_builders.savee.make_dummy_data import GOOD, in_random_test
from fer_jax.errors import ConfigError, InputError
from helpers.builds import Builds, records, relative, text

ROOT = pathlib.Path(__file__).resolve().parents[1]
DUMMY = ROOT / "data_builders" / "savee" / "dummy_data"
NAME = "savee/gray64_t8"
KEPT = {"fold0": 2, "fold1": 2, "fold2": 2, "fold3": 2, "train": 4, "test": 4}


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    """`fer-jax build` and `tfds build` of the dummy corpus, started at once in the background."""
    with Builds(NAME, DUMMY, tmp_path_factory.mktemp("savee")) as started:
        yield started


# TFDS's own builder checks, first: the two command-line builds run meanwhile. TFDS reads through
# as_dataset, which ArrayRecord files do not support, so this one builds TFRecords.
@pytest.mark.usefixtures("builds")
class SaveeBuilderTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = savee.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["gray64_t8"]
    SPLITS = KEPT
    OVERLAPPING_SPLITS = ["train", "test"]  # the same clips as the folds, split another way
    SKIP_CHECKSUMS = True

    def _make_builder(self, config=None):
        return self.dataset_class(data_dir=self.tmp_dir, config=config, version=self.VERSION, file_format="tfrecord")

    def test_registered(self):
        # Not registered by design (TFDS's own audio-only "savee" has the name; see the Builder).
        from tensorflow_datasets.core import registered

        assert registered._DATASET_REGISTRY.get("savee") is not savee.Builder


def test_parser_reads_speaker_emotion_and_sentence():
    assert savee.parse_name("/x/AudioVisualClip/KL/sa3.avi") == ("KL", savee.CLASSES.index("sadness"), 3)
    assert savee.parse_name("AudioVisualClip/DC/su15.avi") == ("DC", savee.CLASSES.index("surprise"), 15)
    assert savee.parse_name("AudioVisualClip/JE/n30.avi") == ("JE", savee.CLASSES.index("neutral"), 30)
    # The owner's AVIs are not zero-padded (a1.avi); a padded copy (a01.avi) is the same clip.
    assert savee.parse_name("AudioVisualClip/JK/a1.avi") == savee.parse_name("AudioVisualClip/JK/a01.avi") == ("JK", 0, 1)


def test_every_clip_named_as_the_owner_names_it_is_kept(tmp_path):
    """All 480 clips with the owner's unpadded names (a1.avi ... n30.avi): none rejected, each in
    its speaker's fold, and the test split is the seeded table, keyed by the sentence number."""
    owner_names = [(s, c, n) for s in savee.SPEAKERS for c in savee.CODES for n in range(1, savee.SENTENCES[c] + 1)]
    for speaker, code, number in owner_names:
        path = tmp_path / savee.CLIP_FOLDER / speaker / f"{code}{number}.avi"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    report = common.BuildReport()
    items = savee.find_clips(tmp_path, report)
    assert [(pathlib.Path(s["path"]).name, s["reason"]) for s in report.skipped] == []
    assert [len(items[f"fold{k}"]) for k in range(4)] == [120] * 4
    assert len(items["train"]) == 384 and len(items["test"]) == 96
    test = {savee.parse_name(item.path) for item in items["test"]}
    assert {(s, savee.CODES[label], n) for s, label, n in test} == savee.RANDOM_TEST
    assert sorted(item.key for item in items["fold0"])[:2] == ["DC/a1", "DC/a10"]  # keys are clip ids, one per split


def test_a_clip_present_padded_and_unpadded_is_kept_once(tmp_path):
    for name in ("a1.avi", "a01.avi", "a2.avi"):
        (tmp_path / savee.CLIP_FOLDER / "DC").mkdir(parents=True, exist_ok=True)
        (tmp_path / savee.CLIP_FOLDER / "DC" / name).touch()
    report = common.BuildReport()
    items = savee.find_clips(tmp_path, report)
    assert sorted(item.key for item in items["fold0"]) == ["DC/a1", "DC/a2"]
    assert [(pathlib.Path(s["path"]).name, s["reason"]) for s in report.skipped] == [("a1.avi", "duplicate")]


@pytest.mark.parametrize(
    "path, detail",
    [
        ("AudioVisualClip/XY/a01.avi", "folder 'XY' is not a SAVEE speaker"),
        ("AudioVisualClip/DC/x01.avi", "'x01.avi' is not a SAVEE clip name"),
        ("AudioVisualClip/DC/a001.avi", "'a001.avi' is not a SAVEE clip name"),
        ("AudioVisualClip/DC/sa01.wav", "'sa01.wav' is not a SAVEE clip name"),
        ("AudioVisualClip/DC/A01.avi", "'A01.avi' is not a SAVEE clip name"),
        ("AudioVisualClip/DC/a16.avi", "sentence 16 out of range: 'a' has 1-15"),
        ("AudioVisualClip/DC/n31.avi", "sentence 31 out of range: 'n' has 1-30"),
        ("AudioVisualClip/DC/su00.avi", "sentence 0 out of range"),
        ("AudioVisualClip/DC/su0.avi", "sentence 0 out of range"),
    ],
)
def test_parser_rejects_malformed_names(path, detail):
    with pytest.raises(InputError, match=detail) as error:
        savee.parse_name(path)
    assert error.value.reason == "bad_name" and error.value.path == path


def test_random_split_is_a_fixed_stratified_80_20_table():
    everything = savee.all_clips()
    assert len(everything) == len(set(everything)) == 480 and len(savee.RANDOM_TEST) == 96
    assert savee.RANDOM_TEST <= set(everything)
    per_group = collections.Counter((speaker, code) for speaker, code, _ in savee.RANDOM_TEST)
    assert all(per_group[(s, code)] == (6 if code == "n" else 3) for s in savee.SPEAKERS for code in savee.CODES)
    assert savee._random_test_clips(seed=0) == savee.RANDOM_TEST  # seeded: the same table every time
    assert savee._random_test_clips(seed=1) != savee.RANDOM_TEST


def test_fer_jax_build_exits_3_and_reports_each_bad_file(builds):
    done, report = builds.fer_jax()
    assert done == 3, builds.log("fer_jax")
    assert report["kept"] == KEPT
    skipped = {(relative(s["path"]), s["reason"], s["split"]) for s in report["skipped_files"]}
    folder = "data_builders/savee/dummy_data/AudioVisualClip"
    bad = {"DC/d1": ("zero_byte", "fold0"), "JE/f5": ("truncated", "fold1"), "JK/h1": ("no_audio", "fold2"),
           "KL/n1": ("no_face", "fold3")}
    # a clip that fails is skipped from its fold and from train (none of these is in RANDOM_TEST)
    expected = {(f"{folder}/{c}.avi", reason, split) for c, (reason, fold) in bad.items() for split in (fold, "train")}
    assert skipped == expected | {(f"{folder}/KL/x1.avi", "bad_name", "unassigned")}
    assert report["frames_per_second_per_core"] > 0


def test_tfds_build_builds_the_same_records(builds):
    done, report = builds.tfds()
    assert done == 0, builds.log("tfds")
    assert report["kept"] == KEPT and report["skipped"] == 9
    assert sorted(text(r["clip_id"]) for r in records(NAME, builds.tfds_dir, "fold0")) == ["DC/a3", "DC/su1"]


def test_folds_are_speaker_disjoint_and_random_split_follows_the_table(builds):
    builds.fer_jax()
    for fold, speaker in enumerate(savee.SPEAKERS):
        found = records(NAME, builds.fer_jax_dir, f"fold{fold}")
        assert {text(r["subject"]) for r in found} == {speaker}
        assert sorted(text(r["clip_id"]) for r in found) == sorted(c for c in GOOD if c.startswith(speaker))
    test = {text(r["clip_id"]) for r in records(NAME, builds.fer_jax_dir, "test")}
    train = {text(r["clip_id"]) for r in records(NAME, builds.fer_jax_dir, "train")}
    assert test == {c for c in GOOD if in_random_test(c)} and train == set(GOOD) - test
    for record in records(NAME, builds.fer_jax_dir, "train+test"):
        assert savee.parse_name(f"AudioVisualClip/{text(record['clip_id'])}.avi")[1] == record["label"]
        assert record["frames"].shape == (8, 64, 64, 1) and record["log_mel"].shape == (400, 64)


def test_configs_and_a_wrong_manual_dir():
    av = savee.Builder(config="rgb224_t16_av", data_dir="/nonexistent").info.features
    assert av["frames"].shape == (16, 224, 224, 3) and av["log_mel_deltas"].shape == (400, 64, 3)
    with pytest.raises(ConfigError, match="no AudioVisualClip folder"):
        savee.find_clips(DUMMY / "AudioData", None)
