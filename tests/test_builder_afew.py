"""data_builders/afew: the layout and label parsing, the gamma correction of dark clips, and builds
of the dummy AFEW (owner's layout, with broken files) through `fer-jax build` (exit 3, each bad
file in build_report.json), `tfds build` and TFDS's builder test case; the records keep the
official train/validation split (tests/test_experiments.py trains on them).

The helpers of the first section are shared with the SAVEE, RAVDESS and CREMA-D builder tests."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from data_builders import common
from data_builders.afew import afew_dataset_builder as afew
from data_builders import one_pool
from data_builders.afew.make_dummy_data import DARK, GOOD
from fer_jax.errors import ConfigError, FerJaxError, InputError

ROOT = pathlib.Path(__file__).resolve().parents[1]

# ----------------------------------------------------------------------------------------------------
# Helpers shared with test_builder_savee.py, test_builder_ravdess.py and test_builder_crema_d.py


def _fer_jax() -> list[str]:
    script = pathlib.Path(sys.executable).with_name("fer-jax")  # the console script, as a user runs it
    return [str(script)] if script.is_file() else [sys.executable, "-m", "fer_jax.cli"]


# The installed tfds (4.9.10) entry point imports all its commands, and two of them need packages
# this environment lacks (convert_format: apache_beam; build_croissant: mlcroissant), so `tfds`
# itself cannot start here. Its build command, with the same flags and code, runs like this:
_TFDS_BUILD = (
    "from absl import app; from tensorflow_datasets.scripts.cli import build, cli_utils; "
    "app.run(lambda args: args.execute(), flags_parser=cli_utils.make_flags_parser(build.Args, 'tfds build'))"
)


def _tfds_build() -> list[str]:
    script = pathlib.Path(sys.executable).with_name("tfds")
    if script.is_file() and all(importlib.util.find_spec(m) for m in ("apache_beam", "mlcroissant")):
        return [str(script), "build"]
    return [sys.executable, "-c", _TFDS_BUILD]


class Builds:
    """`fer-jax build NAME` and `tfds build` of the same config from the same dummy corpus, started
    in the background on entering, each into its own data dir.

    A dummy build spends most of its time starting worker processes (imports, the landmark model),
    so the two run beside the module's other tests (TFDS's builder test case builds a third time)
    rather than one after another; a test asks for a build's result when it needs it.
    """

    def __init__(self, name: str, manual_dir: pathlib.Path, tmp: pathlib.Path):
        self.name = name
        self.corpus, self.config = name.split("/")
        self.fer_jax_dir, self.tfds_dir = tmp / "fer_jax", tmp / "tfds"
        manual = str(manual_dir)
        self._commands = {
            "fer_jax": _fer_jax() + ["build", name, "--manual-dir", manual, "--data-dir", str(self.fer_jax_dir)],
            "tfds": _tfds_build() + [f"data_builders/{self.corpus}", "--config", self.config, "--manual_dir", manual,
                                     "--data_dir", str(self.tfds_dir)],
        }
        self._logs = {which: tmp / f"{which}.log" for which in self._commands}
        self._running: dict[str, subprocess.Popen] = {}

    def __enter__(self) -> "Builds":
        for which, command in self._commands.items():
            with open(self._logs[which], "w") as log:
                self._running[which] = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        return self

    def __exit__(self, *exc):
        for process in self._running.values():
            if process.poll() is None:
                process.kill()
                process.wait()

    def _result(self, which: str, data_dir: pathlib.Path) -> tuple[int, dict]:
        returncode = self._running[which].wait(timeout=600)
        reports = list((data_dir / self.corpus / self.config).glob("*/build_report.json"))
        return returncode, (json.loads(reports[0].read_text()) if reports else {})

    def fer_jax(self) -> tuple[int, dict]:
        """(exit status, build_report.json) of `fer-jax build`, once it has finished."""
        return self._result("fer_jax", self.fer_jax_dir)

    def tfds(self) -> tuple[int, dict]:
        """(exit status, build_report.json) of `tfds build`, once it has finished."""
        return self._result("tfds", self.tfds_dir)

    def log(self, which: str) -> str:
        return self._logs[which].read_text()[-4000:]


def relative(path: str) -> str:
    """A path from a build report, relative to the repository."""
    return pathlib.Path(path).resolve().relative_to(ROOT).as_posix()


def text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def records(name: str, data_dir, split: str) -> list[dict]:
    return list(tfds.data_source(name, split=split, data_dir=str(data_dir), download=False))


# ----------------------------------------------------------------------------------------------------
# data_builders/afew/one_pool.py: one pool for all splits, each split's examples dealt to its generator


def _fake_pool(items, clip, split, report, num_workers=None):
    """generate_clip_examples without processes: an item labelled None fails, the others pass."""
    for item in items:
        if item.label is None:
            report.add_skip(split, {"path": item.path, "reason": "broken", "message": f"{item.path}: broken"})
            continue
        report.kept[split] += 1
        yield item.key, {"clip_id": item.key}
    report.add_throughput(split, 5 * len(items), 2.0, 1)


def _items(spec: dict[str, str]) -> dict:
    """{"A": "+-"} -> {"A": [a good clip A0, a broken clip A1]}."""
    return {split: [common.ClipItem(f"{split}{i}", f"{split}{i}.avi", 0 if c == "+" else None, "s")
                    for i, c in enumerate(marks)] for split, marks in spec.items()}


@pytest.fixture
def fake_pool(monkeypatch):
    monkeypatch.setattr(common, "generate_clip_examples", _fake_pool)


@pytest.mark.parametrize("order", [("A", "B", "C"), ("C", "A", "B")])  # TFDS's order, and another
def test_one_pool_deals_each_split_its_clips_and_books_skips_to_their_split(fake_pool, order):
    report = one_pool.CorpusReport()
    generators = one_pool.split_generators(_items({"A": "+-", "B": "-+-", "C": "-+", "D": ""}), None, report)
    assert list(generators) == ["A", "B", "C"]  # a split without clips is left out
    got = {split: [key for key, _ in generators[split]] for split in order}
    assert got == {"A": ["A0"], "B": ["B1"], "C": ["C1"]}
    assert report.kept == {"A": 1, "B": 1, "C": 1}
    assert [(s["split"], s["path"]) for s in report.skipped] == [("A", "A1.avi"), ("B", "B0.avi"), ("B", "B2.avi"),
                                                                 ("C", "C0.avi")]
    assert report.to_dict()["source_frames"] == {"all": 35} and report.to_dict()["excluded_by_reason"] == {}


def test_one_pool_names_a_split_whose_every_clip_failed(fake_pool):
    generators = one_pool.split_generators(_items({"A": "--", "B": "+"}), None, one_pool.CorpusReport())
    with pytest.raises(FerJaxError, match=r"split A: every clip was skipped \(\{'broken': 2\}\)"):
        list(generators["A"])
    with pytest.raises(ValueError, match="'A0' appears twice"):
        one_pool.split_generators({"A": _items({"A": "+"})["A"], "B": _items({"A": "+"})["A"]}, None,
                                  one_pool.CorpusReport())


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
