"""data_builders/mmi: the session/metadata/FACS-timing parsers, the fold rule, and builds of the dummy
MMI download (the owner's Sessions/<id>/ layout, with broken sessions) through `fer-jax build`
(exit 3, each bad file in build_report.json), `tfds build` and TFDS's builder test case; the
records open with tfds.data_source, carry onset/apex/offset, folds are subject-disjoint, and nine
folds train a model."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
import tensorflow_datasets as tfds

from data_builders.common import BuildReport
from data_builders.mmi import mmi_dataset_builder as mmi
from data_builders.mmi.window import VideoWindow
from fer_jax.errors import InputError
from fer_jax.preprocess.sources import VideoFile
from helpers.builds import ROOT, background_builds, finished_build, relative, subjects_of, tfds_builder_test_case, train_two_steps

DUMMY = ROOT / "data_builders" / "mmi" / "dummy_data"
SESSIONS = DUMMY / "Sessions"
# Subjects 1..10, one emotion video each; fold 0 also holds 305 (view 0 without FACS timing) and
# 401 (dual view), which the frontal subset leaves out.
KEPT = {"fold0": 3, **{f"fold{f}": 1 for f in range(1, 10)}}


def _xml(tmp_path, text: str) -> pathlib.Path:
    path = tmp_path / "x.xml"
    path.write_text(text)
    return path


# ----------------------------------------------------------------------------------------------------
# Parsers and the fold rule


def test_oao_timing_ignores_blinks_and_takes_the_expressions_first_cycle(tmp_path):
    path = _xml(tmp_path, """<?xml version="1.0"?><ActionUnits>
      <ActionUnit Number="12"><Marker Frame="1" Type="0"/><Marker Frame="10" Type="1"/><Marker Frame="20" Type="2"/>
        <Marker Frame="40" Type="3"/><Marker Frame="50" Type="0"/>
        <Marker Frame="60" Type="1"/><Marker Frame="70" Type="2"/><Marker Frame="80" Type="3"/></ActionUnit>
      <ActionUnit Number="6"><Marker Frame="12" Type="1"/><Marker Frame="24" Type="2"/>
        <Marker Frame="44" Type="3"/></ActionUnit>
      <ActionUnit Number="45"><Marker Frame="2" Type="1"/><Marker Frame="3" Type="2"/>
        <Marker Frame="90" Type="3"/></ActionUnit>
      <ActionUnit Number="57"><Marker Frame="1" Type="1"/><Marker Frame="99" Type="2"/></ActionUnit>
    </ActionUnits>""")
    # onset: AU12 starts first (10); apex: all AUs at apex by 24 (AU6); offset: AU12 neutral at 50,
    # AU6 has no closing neutral marker, so its offset marker (44) counts. Blink (45) and head (57) ignored.
    assert mmi.parse_oao(path) == mmi.Timing(onset=9, apex=23, offset=49)


@pytest.mark.parametrize(
    "body, detail",
    [
        ('<ActionUnit Number="45"><Marker Frame="2" Type="1"/><Marker Frame="3" Type="2"/></ActionUnit>',
         "no facial action unit"),
        ('<ActionUnit Number="12"><Marker Frame="2" Type="1"/></ActionUnit>', "no facial action unit"),
        ('<ActionUnit Number="12"><Marker Frame="x" Type="1"/></ActionUnit>', "without an integer Frame"),
        ('<ActionUnit Number="12"><Marker Frame="0" Type="1"/><Marker Frame="5" Type="2"/></ActionUnit>', "1-based"),
        ('<ActionUnit Number="12"><Marker', "not well-formed XML"),
    ],
)
def test_oao_parser_names_unusable_timing(tmp_path, body, detail):
    path = _xml(tmp_path, f"<ActionUnits>{body}</ActionUnits>")
    with pytest.raises(InputError, match=detail) as error:
        mmi.parse_oao(path)
    assert error.value.reason == "bad_label" and error.value.path == str(path)


def test_emotion_and_session_parsers(tmp_path):
    assert mmi.parse_emotion(_xml(tmp_path, '<Metatags><Metatag Name="Emotion" Value="4"/></Metatags>')) == 4
    assert mmi.parse_emotion(_xml(tmp_path, '<Metatags><Metatag Name="Gender" Value="Male"/></Metatags>')) is None
    with pytest.raises(InputError, match="not a number"):
        mmi.parse_emotion(_xml(tmp_path, '<Metatags><Metatag Name="Emotion" Value="happy"/></Metatags>'))
    session = '<session><subject id="{}"/><track view="{}"/></session>'
    assert mmi.parse_session(_xml(tmp_path, session.format(34, 1)), "S034-022.avi") == (34, "1")
    # Without <subject id>, the recording's name says whose it is.
    assert mmi.parse_session(_xml(tmp_path, "<session><track view='0'/></session>"), "S007-001.avi") == (7, "0")
    with pytest.raises(InputError, match="subject"):
        mmi.parse_session(_xml(tmp_path, "<session/>"), "recording.avi")


def test_dummy_sessions_parse_to_their_written_timing():
    for folder in sorted(SESSIONS.glob("10*")):
        (oao,) = folder.glob("*-oao_aucs.xml")
        timing = mmi.parse_oao(oao)
        assert 0 <= timing.onset < timing.apex < timing.offset
        subject, view = mmi.parse_session(folder / "session.xml", next(folder.glob("*.avi")).name)
        assert view == "0" and mmi.fold_of_subject(subject) == subject % 10


def test_fold_rule_and_cross_validation_splits():
    assert [mmi.fold_of_subject(s) for s in (1, 10, 34, 75)] == [1, 0, 4, 5]
    train, val = mmi.cross_validation_splits(4)
    assert val == "fold4" and train.split("+") == [f"fold{f}" for f in range(10) if f != 4]


def test_dual_view_sessions_and_frontal_ones_without_timing_are_kept():
    """As public code reads MMI: view-2 (both cameras) emotion sessions are kept with their timing,
    view-0 ones without -oao_aucs.xml whole (no timing) and turned a quarter turn clockwise;
    profile-only (view 1) sessions are left out."""
    report = BuildReport()
    fold0 = {item.key: item for item in mmi.find_clips(DUMMY, report)["fold0"]}
    assert sorted(fold0) == ["110/S010-001", "305/S020-002", "401/S030-001"]
    assert fold0["401/S030-001"].path == VideoWindow(str(SESSIONS / "401" / "S030-001.avi"), 0, 6)
    assert fold0["401/S030-001"].label == mmi.CLASSES.index("happiness")
    whole = fold0["305/S020-002"]
    assert whole.path == VideoWindow(str(SESSIONS / "305" / "S020-002.avi"), 0, None, rotate_clockwise=True)
    assert whole.extra == {"onset": -1, "apex": -1, "offset": -1} and report.notes == {"no_facs_timing": 1}
    assert report.excluded == {"no_emotion_label": 1, "view_1": 1, "no_video": 1}


def test_frontal_only_keeps_view_0_sessions_with_facs_timing():
    report = BuildReport()
    items = mmi.find_clips(DUMMY, report, frontal_only=True)
    assert [item.key for item in items["fold0"]] == ["110/S010-001"]
    assert report.excluded == {"no_emotion_label": 1, "view_1": 1, "no_video": 1, "view_2": 1, "no_facs_timing": 1}
    assert mmi.Builder.builder_configs["gray64_t8_frontal"].frontal_only
    assert not mmi.Builder.builder_configs["gray64_t8"].frontal_only


def test_video_window_turns_frames_and_runs_to_the_end():
    video = str(next((SESSIONS / "101").glob("*.avi")))
    frames = VideoFile(video).frames_at(range(VideoFile(video).count()))
    whole = VideoWindow(video, 3, None, rotate_clockwise=True)
    assert whole.count() == len(frames) - 3
    turned = whole.frames_at([0, whole.count() - 1])
    assert np.array_equal(turned[0], np.rot90(frames[3], k=-1))  # clockwise: the top row becomes the right column
    assert np.array_equal(turned[0][:, -1], frames[3][0]) and turned[0].flags["C_CONTIGUOUS"]
    assert np.array_equal(turned[whole.count() - 1], np.rot90(frames[len(frames) - 1], k=-1))


def test_video_window_reads_onset_to_apex_and_names_short_videos():
    video = str(next((SESSIONS / "101").glob("*.avi")))
    window = VideoWindow(video, 2, 9)
    assert window.count() == 7 and window.name == video
    whole = VideoFile(video).frames_at([2, 5, 8])
    frames = window.frames_at([0, 3, 6])
    assert all(np.array_equal(frames[k], whole[k + 2]) for k in (0, 3, 6))
    with pytest.raises(InputError, match="window ends at frame 999") as error:
        VideoWindow(video, 2, 1000).count()
    assert error.value.reason == "truncated"


# ----------------------------------------------------------------------------------------------------
# TFDS's own builder checks, in-process while the command-line builds run (it reads through
# as_dataset, which ArrayRecord files do not support, so this one builds TFRecords).


# Started with the command-line builds, which run beside it.
MmiGray64Test = pytest.mark.usefixtures("builds")(tfds_builder_test_case(mmi.Builder, DUMMY, "gray64_t8", KEPT))


# ----------------------------------------------------------------------------------------------------
# Builds of the dummy corpus


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    """The two command-line builds of this file, started by the first test that needs them (the
    TFDS builder test case, so that they run while it builds in-process)."""
    yield from background_builds(tmp_path_factory, "mmi/gray64_t8", DUMMY, "lemhi")


@pytest.fixture(scope="module")
def built(builds):
    return finished_build(builds["fer_jax"], "mmi/gray64_t8")


def test_fer_jax_build_exits_3_and_reports_each_bad_file(built):
    _, done, report = built
    assert done.returncode == 3, done.stderr[-3000:]
    assert report["kept"] == KEPT
    sessions = "data_builders/mmi/dummy_data/Sessions"
    assert {(relative(s["path"]), s["reason"], s["split"]) for s in report["skipped_files"]} == {
        (f"{sessions}/301/S004-002.avi", "zero_byte", "fold4"),
        (f"{sessions}/302/S005-002.avi", "truncated", "fold5"),
        (f"{sessions}/303/S006-002.avi", "no_face", "fold6"),
        (f"{sessions}/304/S007-002.xml", "bad_label", "fold7"),
    }
    assert report["excluded_by_reason"] == {"no_emotion_label": 1, "view_1": 1, "no_video": 1}
    assert report["notes"] == {"no_facs_timing": 1}  # 305: kept whole
    assert report["frames_per_second_per_core"] > 0


def test_records_carry_timing_labels_and_disjoint_subject_folds(built):
    data_dir = built[0]
    source = tfds.data_source("mmi/gray64_t8", split="+".join(f"fold{f}" for f in range(10)),
                              data_dir=str(data_dir), download=False)
    records = {(r["clip_id"].decode() if isinstance(r["clip_id"], bytes) else r["clip_id"]): r for r in source}
    assert len(records) == 12
    for key, record in records.items():
        session = SESSIONS / key.split("/")[0]
        oao = list(session.glob("*-oao_aucs.xml"))
        timing = mmi.parse_oao(oao[0]) if oao else mmi.Timing(-1, -1, -1)  # 305 has no FACS timing
        assert (record["onset"], record["apex"], record["offset"]) == (timing.onset, timing.apex, timing.offset)
        assert mmi.CLASSES[record["label"]] == mmi.CLASSES[mmi.parse_emotion(next(session.glob("S*[0-9].xml"))) - 1]
        assert record["frames"].shape == (8, 64, 64, 1) and np.isfinite(record["landmarks"]).all()
    folds = [subjects_of("mmi/gray64_t8", data_dir, f"fold{f}") for f in range(10)]
    assert folds == [{"S010", "S020", "S030"}, *({f"S{subject:03d}"} for subject in range(1, 10))]  # subject mod 10
    everyone = [s for subjects in folds for s in subjects]
    assert len(everyone) == len(set(everyone))


def test_records_feed_two_training_steps(built, tmp_path):
    train_split, val_split = mmi.cross_validation_splits(0)
    results = train_two_steps("mmi/gray64_t8", built[0], train_split, val_split, 6, tmp_path)
    assert results["steps"] == 2 and results["num_train_clips"] == 9 and results["num_val_clips"] == 3


def test_tfds_build_command_builds_the_lemhi_config(builds):
    done = builds["tfds"].result()
    assert done.returncode == 0, done.stderr[-3000:]
    data_dir = done.args[done.args.index("--data_dir") + 1]
    source = tfds.data_source("mmi/lemhi", split="fold1+fold2", data_dir=data_dir, download=False)
    assert len(source) == 2
    record = source[0]
    assert record["lemhi"].shape == (112, 112, 1) and record["lemhi"].max() > 0
    # The clip is onset..apex: all its frames are real (fewer than 32), the rest is padding.
    assert record["frame_mask"].sum() == record["apex"] - record["onset"] + 1
