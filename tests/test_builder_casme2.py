"""data_builders/casme2: the coding sheet reader (.xlsx with the standard library, or a .csv export),
the row checks, and builds of the dummy CASME II (the owner's layout, with broken clips) through
`fer-jax build` (exit 3, each bad file in build_report.json), `tfds build` and TFDS's builder test
case; the records open with tfds.data_source, one split per subject, leave-one-subject-out splits
read as one and train a model."""

from __future__ import annotations

import csv
import pathlib
import zipfile

import numpy as np
import pytest
import tensorflow_datasets as tfds

from data_builders.casme2 import casme2_dataset_builder as casme2
from data_builders.casme2 import sheet
from data_builders.casme2.make_dummy_data import GOOD, HEADER, write_xlsx
from data_builders.common import BuildReport
from fer_jax.errors import InputError
from helpers.builds import ROOT, background_builds, finished_build, relative, subjects_of, tfds_builder_test_case, train_two_steps

DUMMY = ROOT / "data_builders" / "casme2" / "dummy_data"
KEPT = {"sub01": 3, "sub02": 2, "sub03": 2}


# ----------------------------------------------------------------------------------------------------
# The coding sheet


def test_xlsx_and_its_csv_export_read_alike(tmp_path):
    (table,) = sheet.read_tables(DUMMY / casme2.SHEET_NAME)
    assert table[0] == HEADER
    assert table[1] == ["01", "EP02_01f", "", "46", "51", "55", "", "6+12", "happiness"]
    with (tmp_path / "CASME2-coding-20140508.csv").open("w", newline="") as f:
        csv.writer(f).writerows(table)
    assert casme2.read_coding(tmp_path / "CASME2-coding-20140508.csv") == casme2.read_coding(DUMMY / casme2.SHEET_NAME)
    rows = casme2.read_coding(DUMMY / casme2.SHEET_NAME)
    first = {"subject": "01", "filename": "EP02_01f", "onset": "46", "apex": "51", "offset": "55",
             "emotion": "happiness"}
    assert rows[0] == (2, first)
    assert [row["apex"] for _, row in rows if row["filename"] == "EP19_05f"] == ["/"]


def test_xlsx_reader_takes_the_first_worksheet_with_the_header_and_numeric_cells(tmp_path):
    path = tmp_path / "CASME2-coding.xlsx"
    header = ["Subject", "Filename", "Onset Frame", "Apex Frame", "Offset Frame", "Estimated Emotion"]
    write_xlsx(path, [["notes"], [], header, [26, "EP18_44", 1, 12.0, 30, "Others"]])
    assert casme2.read_coding(path) == [
        (4, {"subject": "26", "filename": "EP18_44", "onset": "1", "apex": "12.0", "offset": "30", "emotion": "Others"})
    ]


def test_unreadable_sheets_are_named(tmp_path):
    not_a_zip = tmp_path / "CASME2-coding-20140508.xlsx"
    not_a_zip.write_text("Subject,Filename\n")
    with pytest.raises(InputError, match="not a readable .xlsx") as error:
        sheet.read_tables(not_a_zip)
    assert error.value.reason == "bad_label"
    no_header = tmp_path / "no_header.csv"
    no_header.write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="no worksheet has a header row"):
        casme2.read_coding(no_header)
    lacking = tmp_path / "lacking.csv"
    lacking.write_text("Subject,Filename,OnsetFrame\n1,EP01,3\n")
    with pytest.raises(InputError, match="lacks the columns"):
        casme2.read_coding(lacking)
    empty_zip = tmp_path / "empty.xlsx"
    zipfile.ZipFile(empty_zip, "w").close()
    with pytest.raises(InputError, match="not a readable .xlsx"):
        sheet.read_tables(empty_zip)


def _frames(tmp_path, clip: str, numbers) -> pathlib.Path:
    """A CASME2_RAW_selected folder with one clip of placeholder frames img<n>.jpg; its root."""
    frames_root = tmp_path / casme2.FRAMES_DIR
    (frames_root / clip).mkdir(parents=True)
    for n in numbers:
        (frames_root / clip / f"img{n}.jpg").write_bytes(b"jpeg")
    return frames_root


@pytest.mark.parametrize(
    "row, detail",
    [
        ({"onset": "4b6"}, "must be numbers"),
        ({"subject": "Mary"}, "must be numbers"),
        ({"apex": "60"}, "onset <= apex <= offset"),
        ({"onset": "56"}, "onset <= apex <= offset"),
        ({"filename": "EP99_99"}, "clip folder not found"),
        ({"apex": "52"}, "frame 52 of the coding sheet is not in the clip folder"),
    ],
)
def test_rows_that_cannot_be_a_clip_are_named(tmp_path, row, detail):
    frames_root = _frames(tmp_path, "sub01/EP02_01f", (46, 47, 48, 49, 50, 51, 53, 54, 55))  # img52 is missing
    good = {"subject": "1", "filename": "EP02_01f", "onset": "46", "apex": "51", "offset": "55", "emotion": "happiness"}
    item = casme2.clip_item(frames_root, "sheet:row 2", good, BuildReport())
    assert item.key == "sub01/EP02_01f" and item.subject == "sub01" and item.label == 0
    assert [pathlib.Path(p).name for p in item.path] == [f"img{n}.jpg" for n in range(46, 52)]
    assert item.extra == {"onset": 46, "apex": 51, "offset": 55}
    with pytest.raises(InputError, match=detail):
        casme2.clip_item(frames_root, "sheet:row 2", {**good, **row}, BuildReport())


def test_apex_not_coded_is_the_middle_frame_and_other_classes_are_left_out(tmp_path):
    """The public protocol for CASME II's 21 rows without an apex: apex = (onset + offset) // 2, and
    the clip is onset -> that apex, not onset -> offset (which would add the expression's fall)."""
    frames_root = _frames(tmp_path, "sub02/EP01_11f", range(21, 31))
    report = BuildReport()
    row = {"subject": "02", "filename": "EP01_11f", "onset": "21", "apex": "/", "offset": "30", "emotion": "Surprise"}
    item = casme2.clip_item(frames_root, "sheet:row 3", row, report)
    assert [pathlib.Path(p).name for p in item.path] == [f"img{n}.jpg" for n in range(21, 26)]
    assert item.extra == {"onset": 21, "apex": 25, "offset": 30} and report.notes == {"apex_from_midpoint": 1}
    assert casme2.clip_item(frames_root, "sheet:row 3", {**row, "emotion": "fear"}, report) is None
    assert report.excluded == {"emotion_fear": 1}


@pytest.mark.parametrize("offset", ["0", "/", "48"])
def test_an_offset_that_cannot_be_one_is_the_rise_mirrored(tmp_path, offset):
    """An OffsetFrame of 0, "/" or before the apex (a typo in the sheet): offset = apex + (apex -
    onset), capped at the clip's last frame, as public code corrects it; the clip is kept."""
    frames_root = _frames(tmp_path, "sub01/EP02_01f", range(46, 56))
    report = BuildReport()
    row = {"subject": "1", "filename": "EP02_01f", "onset": "46", "apex": "49", "offset": offset, "emotion": "happiness"}
    item = casme2.clip_item(frames_root, "sheet:row 2", row, report)
    assert item.extra == {"onset": 46, "apex": 49, "offset": 52} and len(item.path) == 4
    assert report.notes == {"offset_corrected": 1}
    late = casme2.clip_item(frames_root, "sheet:row 2", {**row, "apex": "53"}, report)
    assert late.extra["offset"] == 55  # 53 + 7 runs past the last frame, img55


@pytest.mark.parametrize("cell, split", [("1", "sub01"), ("01", "sub01"), ("26.0", "sub26"), ("sub07", "sub07"),
                                         ("x", None), ("1.5", None), ("", None)])
def test_subject_cells_name_their_split(cell, split):
    assert casme2.subject_split(cell) == split


def test_loso_splits():
    assert casme2.loso_splits("sub02", ["sub03", "sub01", "sub02"]) == ("sub01+sub03", "sub02")
    with pytest.raises(Exception, match="no split"):
        casme2.loso_splits("sub09", ["sub01"])


# ----------------------------------------------------------------------------------------------------
# TFDS's own builder checks, in-process while the command-line builds run (it reads through
# as_dataset, which ArrayRecord files do not support, so this one builds TFRecords).


# Started with the command-line builds, which run beside it.
Casme2LemhiTest = pytest.mark.usefixtures("builds")(tfds_builder_test_case(casme2.Builder, DUMMY, "lemhi", KEPT))


# ----------------------------------------------------------------------------------------------------
# Builds of the dummy corpus


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    """The two command-line builds of this file, started by the first test that needs them (the
    TFDS builder test case, so that they run while it builds in-process)."""
    yield from background_builds(tmp_path_factory, "casme2/gray64_t8", DUMMY, "gray64_t8")


@pytest.fixture(scope="module")
def built(builds):
    return finished_build(builds["fer_jax"], "casme2/gray64_t8")


def test_fer_jax_build_exits_3_and_reports_each_bad_file(built):
    _, done, report = built
    assert done.returncode == 3, done.stderr[-3000:]
    assert report["kept"] == KEPT
    frames = "data_builders/casme2/dummy_data/CASME2_RAW_selected"
    skipped = {(s["reason"], s["split"]): s["path"] for s in report["skipped_files"]}
    assert sorted(skipped) == [
        ("bad_label", "sub03"), ("missing", "sub03"), ("no_face", "sub02"), ("zero_byte", "sub01")
    ]
    assert relative(skipped["zero_byte", "sub01"]) == f"{frames}/sub01/EP04_02/img300.jpg"
    assert relative(skipped["no_face", "sub02"]) == f"{frames}/sub02/EP05_03"
    assert relative(skipped["missing", "sub03"]) == f"{frames}/sub03/EP06_01f"
    assert skipped["bad_label", "sub03"].endswith(f"{casme2.SHEET_NAME}:row 13")
    assert report["excluded_by_reason"] == {"emotion_fear": 1}
    assert report["notes"] == {"apex_from_midpoint": 1, "offset_corrected": 1}  # EP19_05f, EP15_01


def test_records_carry_labels_and_sheet_frames_one_split_per_subject(built):
    data_dir = built[0]
    source = tfds.data_source("casme2/gray64_t8", split="sub01+sub02+sub03", data_dir=str(data_dir), download=False)
    records = {(r["clip_id"].decode() if isinstance(r["clip_id"], bytes) else r["clip_id"]): r for r in source}
    expected = {f"sub{subject}/{clip}": (emotion, onset) for subject, clip, emotion, onset in GOOD}
    assert set(records) == set(expected)
    for key, record in records.items():
        emotion, onset = expected[key]
        assert casme2.CLASSES[record["label"]] == emotion and record["onset"] == onset
        # EP19_05f's apex is not coded: the middle of its 10 frames. EP15_01's offset is 0 in the
        # sheet: apex + 5 = onset + 10, capped at its last frame, onset + 9, every clip's offset.
        assert record["apex"] == (onset + 4 if key.endswith("EP19_05f") else onset + 5)
        assert record["offset"] == onset + 9
        assert record["frames"].shape == (8, 64, 64, 1) and np.isfinite(record["landmarks"]).all()
    for subject in KEPT:
        assert subjects_of("casme2/gray64_t8", data_dir, subject) == {subject}


def test_loso_records_feed_two_training_steps(built, tmp_path):
    train_split, val_split = casme2.loso_splits("sub02", KEPT)
    results = train_two_steps("casme2/gray64_t8", built[0], train_split, val_split, 5, tmp_path)
    assert results["steps"] == 2 and results["num_train_clips"] == 5 and results["num_val_clips"] == 2


def test_tfds_build_command_builds_the_folder(builds):
    done = builds["tfds"].result()
    assert done.returncode == 0, done.stderr[-3000:]
    data_dir = done.args[done.args.index("--data_dir") + 1]
    builder = tfds.builder("casme2/gray64_t8", data_dir=data_dir)
    assert {name: split.num_examples for name, split in builder.info.splits.items()} == KEPT
