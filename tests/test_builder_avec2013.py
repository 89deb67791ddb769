"""data_builders/avec2013: the partitions' layout and BDI-II label files (good and broken), windows
of a long video read after a seek (the same frames as decoding from the start), builds of the dummy
AVEC2013 by both command lines (fer-jax exiting 3 with each bad file in build_report.json), records
that are windows carrying their video's id, index and score, official partitions disjoint by
recording and subject, and two training steps of the score regressor, scored per video."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from data_builders.avec2013 import avec2013_dataset_builder as avec, layout
from data_builders.avec2013.make_dummy_data import GOOD
from data_builders.common import BuildReport
from data_builders.send.timed_frames import TimedFrames, frames_at_times
from fer_jax.errors import ConfigError, InputError
from fer_jax.preprocess import video as video_frames
from fer_jax.preprocess.clip import ClipConfig, process_frames
from helpers.builds import ROOT, background_builds, finished_build, records, relative, text, train_two_steps
from test_builder_send import _counting_video

DUMMY = ROOT / "data_builders" / "avec2013" / "dummy_data"
NAME = "avec2013/gray64_t8_w2s"
KEPT = {"train": 4, "validation": 2, "test": 2}  # windows: 2 + 2 recordings, 1 and 1, two 2 s windows each
SPLIT = {"Training": "train", "Development": "validation", "Testing": "test"}


# ---------------------------------------------------------------------------------------------------
# Layout and labels


def _write(path: pathlib.Path, text: str = "") -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.parametrize("content, value", [("12\n", 12.0), ("0", 0.0), ("63.0\n\n", 63.0), ("\ufeff7\n", 7.0)])
def test_a_label_file_is_one_bdi_score(tmp_path, content, value):
    assert layout.read_bdi(_write(tmp_path / "203_1_Depression.csv", content)) == value


@pytest.mark.parametrize("content", ["", "abc", "12,13", "64", "-1", "nan"])
def test_a_label_file_that_is_not_one_score_in_0_to_63_is_named(tmp_path, content):
    with pytest.raises(InputError) as error:
        layout.read_bdi(_write(tmp_path / "203_1_Depression.csv", content))
    assert error.value.reason == "bad_label"


def test_layout_pairs_videos_with_labels_and_names_every_stray_file(tmp_path):
    root = tmp_path / "AVEC2013"
    for rel in ["training/Video/Freeform/203_1_Freeform_video.mp4", "training/Video/204_2.avi", "training/Video/notes.txt",
                "training/Video/205_1_video.mp4", "Development/Video/206_1_video.mp4", "Testing/Video/207_1_video.mp4"]:
        _write(root / rel)
    for rel, score in [("training/DepressionLabels/203_1_Depression.csv", "3"), ("training/DepressionLabels/204_2_Depression.csv", "44"),
                       ("training/DepressionLabels/209_1_Depression.csv", "5"), ("Development/DepressionLabels/206_1_Depression.csv", "x")]:
        _write(root / rel, score)
    found = layout.scan(str(tmp_path))
    assert sorted((r.split, r.key, r.recording, r.subject, r.bdi) for r in found.recordings) == [
        ("train", "203_1_Freeform_video", "203_1", "203", 3.0), ("train", "204_2", "204_2", "204", 44.0)]
    assert sorted((s["split"], pathlib.Path(s["path"]).name, s["reason"]) for s in found.skips) == [
        ("train", "205_1_video.mp4", "missing_label"), ("train", "209_1_Depression.csv", "missing_video"),
        ("train", "notes.txt", "unrecognised_file"), ("validation", "206_1_Depression.csv", "bad_label")]
    # Testing without DepressionLabels/: its videos are left out by design, not skipped.
    assert [(e["split"], e["reason"]) for e in found.excluded] == [("test", "labels_not_distributed")]
    with pytest.raises(ConfigError, match="no Training, Development or Testing"):
        layout.scan(str(tmp_path / "AVEC2013" / "training"))


# ---------------------------------------------------------------------------------------------------
# Windows


def test_window_times_are_the_middles_of_equal_parts():
    np.testing.assert_allclose(avec.window_times(3, 2.0, 4), [6.25, 6.75, 7.25, 7.75])


def test_a_window_read_after_a_seek_has_the_frames_on_screen_at_its_times(tmp_path):
    """A key frame every 10 frames: the seek lands before the window, and the frames are those
    decoding from the start gives (frame i is on screen [i / 10, (i + 1) / 10))."""
    video = _counting_video(tmp_path / "count.mp4", seconds=6, fps=10, step=4, keyframe_every=10)
    times = avec.window_times(2, 2.0, 8)  # 4.125 .. 5.875 s
    seeked = TimedFrames(video, times, seek=True).frames_at(range(8))
    shown = [int(round(seeked[i].mean() / 4)) for i in seeked]
    assert shown == [int(t * 10) for t in times]
    assert shown == [int(round(f.mean() / 4)) for f in frames_at_times(video, times)]
    first = video_frames.iter_video_frames(video, times[0])
    assert next(first)[1] == pytest.approx(4.0)  # decoding started at the key frame before the window
    first.close()


def test_a_recording_is_its_whole_windows_and_a_short_one_is_named(tmp_path):
    recording = layout.Recording("train", "203_1_video", "203_1", "203", str(DUMMY / "AVEC2013/Training/Video/203_1_video.mp4"), 3.0)
    config = avec.Builder.builder_configs["gray64_t8_w2s"]
    items = avec.windows(recording, 7, config)  # 5.04 s: two whole 2 s windows
    assert [i.key for i in items] == ["203_1_video/w00000", "203_1_video/w00001"]
    assert [i.extra["window_start_s"] for i in items] == [0.0, 2.0] and {i.extra["video_index"] for i in items} == {7}
    assert items[1].path.times[0] == pytest.approx(2.125) and items[1].path.seek
    short = layout.Recording("train", "216_1_video", "216_1", "216", str(DUMMY / "AVEC2013/Training/Video/216_1_video.mp4"), 1.0)
    with pytest.raises(InputError) as error:
        avec.windows(short, 0, config)
    assert error.value.reason == "too_short"


# ---------------------------------------------------------------------------------------------------
# Builds of the dummy corpus: both command lines, side by side in the background.


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    yield from background_builds(tmp_path_factory, NAME, DUMMY, "gray64_t8_w2s")


@pytest.fixture(scope="module")
def built(builds):
    return finished_build(builds["fer_jax"], NAME)


def test_fer_jax_build_exits_3_and_reports_each_bad_file(built):
    _, done, report = built
    assert done.returncode == 3, done.stderr[-3000:]
    assert report["kept"] == KEPT
    base = "data_builders/avec2013/dummy_data/AVEC2013"
    assert sorted((s["split"], relative(s["path"]), s["reason"]) for s in report["skipped_files"]) == [
        ("train", f"{base}/Training/Video/214_1_video.mp4", "truncated"),
        ("train", f"{base}/Training/Video/216_1_video.mp4", "missing_label"),
        ("validation", f"{base}/Development/DepressionLabels/222_1_Depression.csv", "missing_video"),
    ]


def test_records_are_windows_carrying_their_video_and_its_score(built):
    data_dir = built[0]
    bdi = {f"{recording}_video": (SPLIT[partition], score) for partition, recording, _, _, score in GOOD}
    windows = {}
    for split in KEPT:
        for record in records(NAME, data_dir, split):
            video_id = text(record["video_id"])
            assert bdi[video_id] == (split, record["score"])
            assert text(record["clip_id"]) == f"{video_id}/w{record['window_index']:05d}"
            assert record["window_start_s"] == 2.0 * record["window_index"] and text(record["subject"]) == video_id[:3]
            windows.setdefault(video_id, []).append(record)
    assert {v: sorted(int(r["window_index"]) for r in w) for v, w in windows.items()} == {v: [0, 1] for v in bdi}
    # One video index per video, a different one for each: what the per-video scores group by.
    index = {v: {int(r["video_index"]) for r in w} for v, w in windows.items()}
    assert all(len(i) == 1 for i in index.values()) and len(set.union(*index.values())) == len(index)
    # The stored faces are the aligned frames on screen at the window's times (read after a seek).
    second = next(r for r in windows["205_2_video"] if r["window_index"] == 1)
    frames = np.stack(list(frames_at_times(str(DUMMY / "AVEC2013/Training/Video/205_2_video.mp4"), avec.window_times(1, 2.0, 8))))
    direct = process_frames(frames, ClipConfig(num_frames=8, size=64, grayscale=True, need_audio=False))
    np.testing.assert_array_equal(second["frames"], direct["frames"])


def test_official_partitions_share_no_recording_and_no_subject(built):
    data_dir = built[0]
    videos = {split: {text(r["video_id"]) for r in records(NAME, data_dir, split)} for split in KEPT}
    subjects = {split: {text(r["subject"]) for r in records(NAME, data_dir, split)} for split in KEPT}
    for a, b in (("train", "validation"), ("train", "test"), ("validation", "test")):
        assert not videos[a] & videos[b] and not subjects[a] & subjects[b]
    report = built[2]
    assert "subject_in_two_partitions" not in report["notes"]


def test_shared_subjects_are_noted_not_refused():
    report = BuildReport()
    recordings = [layout.Recording(s, f"{k}", f"{k}", "203", "v.mp4", 1.0) for k, s in enumerate(["train", "test"])]
    avec._note_shared_subjects(recordings, report)
    assert report.notes == {"subject_in_two_partitions": 1}


def test_window_records_feed_two_training_steps_scored_per_video(built, tmp_path):
    results = train_two_steps(NAME, built[0], "train", "validation", 1, tmp_path, model="cnn3d_convlstm_score")
    assert results["steps"] == 2 and results["num_train_clips"] == 4 and results["num_val_clips"] == 2
    assert results["val_num_videos"] == 1  # the two windows of 218_1 scored as one recording
    assert results["val_mae"] == pytest.approx(results["val_rmse"])  # one video: |error| = sqrt(error^2)
    assert results["val_neg_rmse"] == -results["val_rmse"]
    # `fer-jax eval` of the saved run scores the same windows per video as the training's last evaluation.
    from fer_jax.runs.evaluate import evaluate_checkpoint

    summary = evaluate_checkpoint(tmp_path)
    assert summary["num_videos"] == 1 and summary["step"] == 2
    assert summary["rmse"] == pytest.approx(results["val_rmse"], rel=1e-5)  # float32 forward, same weights


def test_tfds_build_command_builds_the_folder(builds):
    import tensorflow_datasets as tfds

    done = builds["tfds"].result()
    assert done.returncode == 0, done.stderr[-3000:]
    data_dir = done.args[done.args.index("--data_dir") + 1]
    builder = tfds.builder(NAME, data_dir=data_dir)
    assert {name: split.num_examples for name, split in builder.info.splits.items()} == KEPT
