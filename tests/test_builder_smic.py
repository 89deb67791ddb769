"""data_builders/smic: the owners' layout per camera (HS, VIS, NIR configs), the optional SMIC-E
timing sheet, and builds of the dummy SMIC (bad files included) through `fer-jax build` (exit 3,
each bad file in build_report.json) and `tfds build`; the records open
with tfds.data_source, one split per subject, disjoint by subject, and leave-one-subject-out
splits train a model."""

from __future__ import annotations

import pathlib

import pytest
import tensorflow_datasets as tfds

from data_builders.casme2.make_dummy_data import write_xlsx
from data_builders.common import BuildReport
from data_builders.smic import smic_dataset_builder as smic
from data_builders.smic.make_dummy_data import FRAMES, GOOD
from fer_jax.errors import ConfigError, InputError
from helpers.builds import ROOT, background_builds, finished_build, records, relative, subjects_of, text, train_two_steps

DUMMY = ROOT / "data_builders" / "smic" / "dummy_data"
KEPT = {"s1": 2, "s2": 2, "s3": 1}


# ----------------------------------------------------------------------------------------------------
# Layout and timing


def test_the_timing_sheet_is_read_by_its_headers():
    timing = smic.read_timing(DUMMY / smic.ROOT_DIR / "HS")
    assert timing[("s1", "s1_po_01")] == {"onset": 1201, "apex": None, "offset": 1201 + FRAMES - 1}
    assert ("s2", "s2_ne_02") not in timing  # the clip without a row


def _clip(tmp_path, numbers) -> pathlib.Path:
    folder = tmp_path / "s1_po_01"
    folder.mkdir()
    for n in numbers:
        (folder / f"reg_image{n}.bmp").write_bytes(b"bmp")
    return folder


def test_a_clip_is_its_frames_onset_to_offset_with_the_apex_where_given_or_the_middle(tmp_path):
    folder = _clip(tmp_path, range(100, 110))
    report = BuildReport()
    whole = smic.clip_item(folder, "s1", "positive", None, report)
    assert whole.extra == {"onset": 100, "apex": 104, "offset": 109} and len(whole.path) == 10
    assert whole.key == "s1/s1_po_01" and whole.label == 0 and report.notes == {"timing_from_folder": 1}
    rise = smic.clip_item(folder, "s1", "positive", {"onset": 102, "apex": None, "offset": 107}, report)
    assert [pathlib.Path(p).name for p in rise.path] == [f"reg_image{n}.bmp" for n in range(102, 108)]
    assert rise.extra == {"onset": 102, "apex": 104, "offset": 107} and report.notes["apex_from_midpoint"] == 1
    given = smic.clip_item(folder, "s1", "positive", {"onset": 102, "apex": 106, "offset": 107}, report)
    assert given.extra["apex"] == 106 and report.notes["apex_from_midpoint"] == 1


@pytest.mark.parametrize("timing, reason", [
    ({"onset": 108, "apex": None, "offset": 102}, "bad_label"),
    ({"onset": 102, "apex": 109, "offset": 107}, "bad_label"),
    ({"onset": 200, "apex": None, "offset": 210}, "missing"),
])
def test_timing_that_does_not_fit_the_folder_is_named(tmp_path, timing, reason):
    with pytest.raises(InputError) as error:
        smic.clip_item(_clip(tmp_path, range(100, 110)), "s1", "positive", timing, BuildReport())
    assert error.value.reason == reason


def test_sheet_rows_that_cannot_be_read_stop_the_build(tmp_path):
    camera = tmp_path / smic.ROOT_DIR / "HS"
    (camera / "s1").mkdir(parents=True)
    write_xlsx(camera / "smic.xlsx", [["Subject", "Filename", "OnsetFrame", "OffsetFrame"], ["s1", "s1_po_01", "1x", 9]])
    with pytest.raises(ConfigError, match="row 2"):
        smic.find_clips(tmp_path, "HS", BuildReport())


@pytest.mark.parametrize("camera", ["VIS", "NIR"])
def test_each_camera_is_its_own_config(camera):
    builder = smic.Builder(data_dir="/nonexistent", config=camera.lower())
    assert builder.builder_config.camera == camera
    items = smic.find_clips(DUMMY, camera, BuildReport())
    expected = {f"{s}/{clip}" for cam, s, _, clip, _, _ in GOOD if cam == camera}
    assert {item.key for split in items.values() for item in split} == expected
    assert all(f"/{camera}/" in item.path[0] for split in items.values() for item in split)
    with pytest.raises(ConfigError, match="no SMIC_all_cropped/NIR folder"):
        smic.find_clips(DUMMY / smic.ROOT_DIR / "HS", "NIR", BuildReport())


# ----------------------------------------------------------------------------------------------------
# Builds of the dummy corpus with both command lines, side by side in the background. (TFDS's own
# DatasetBuilderTestCase, which CASME II's tests run, is left out: it builds a third time in this
# process, ~30 s on this machine, and checks nothing about SMIC that the builds below do not.)


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    yield from background_builds(tmp_path_factory, "smic/hs", DUMMY, "hs")


@pytest.fixture(scope="module")
def built(builds):
    return finished_build(builds["fer_jax"], "smic/hs")


def test_fer_jax_build_exits_3_and_reports_each_bad_file(built):
    _, done, report = built
    assert done.returncode == 3, done.stderr[-3000:]
    assert report["kept"] == KEPT
    hs = "data_builders/smic/dummy_data/SMIC_all_cropped/HS"
    skipped = {s["reason"]: (s["split"], relative(s["path"])) for s in report["skipped_files"]}
    assert skipped == {
        "zero_byte": ("s3", f"{hs}/s3/micro/negative/s3_ne_02/reg_image640.bmp"),
        "no_frames": ("s3", f"{hs}/s3/micro/surprise/s3_sur_02"),
    }
    assert report["excluded_by_reason"] == {"non_micro": 1}


def test_records_carry_class_and_timing_one_split_per_subject_disjoint(built):
    data_dir = built[0]
    kept = {(s, clip): (emotion, onset) for cam, s, emotion, clip, onset, _ in GOOD if cam == "HS"}
    for subject in KEPT:
        for record in records("smic/hs", data_dir, subject):
            emotion, onset = kept[subject, text(record["clip_id"]).split("/")[1]]
            assert smic.CLASSES[record["label"]] == emotion
            assert (record["onset"], record["apex"], record["offset"]) == (onset, onset + 1, onset + FRAMES - 1)
            assert record["frames"].shape == (8, 64, 64, 1) and record["frames"].std() > 10
    subjects = {split: subjects_of("smic/hs", data_dir, split) for split in KEPT}
    assert subjects == {s: {s} for s in KEPT}  # so any two folds share no subject
    train_split, val_split = smic.loso_splits("s2", KEPT)
    assert not subjects_of("smic/hs", data_dir, train_split) & subjects_of("smic/hs", data_dir, val_split)


def test_loso_records_feed_two_training_steps(built, tmp_path):
    train_split, val_split = smic.loso_splits("s3", KEPT)
    results = train_two_steps("smic/hs", built[0], train_split, val_split, 3, tmp_path)
    assert results["steps"] == 2 and results["num_train_clips"] == 4 and results["num_val_clips"] == 1


def test_tfds_build_command_builds_the_folder(builds):
    done = builds["tfds"].result()
    assert done.returncode == 0, done.stderr[-3000:]
    data_dir = done.args[done.args.index("--data_dir") + 1]
    builder = tfds.builder("smic/hs", data_dir=data_dir)
    assert {name: split.num_examples for name, split in builder.info.splits.items()} == KEPT
