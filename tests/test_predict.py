"""fer-jax predict: streaming windows prepared exactly like the records, per face, gaps left as gaps."""

import csv
import dataclasses
import json

import av
import cv2
import numpy as np
import pytest

import predict_videos
from fer_jax.cli import main
from fer_jax.errors import InputError
from fer_jax.infer.predict import predict_video
from fer_jax.infer.stream import StreamStats, iter_windows
from fer_jax.preprocess.align import align_face
from fer_jax.preprocess.clip import process_frames
from fer_jax.preprocess.face import track_face
from fer_jax.preprocess.temporal import sample_indices


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    return {
        "astronaut": predict_videos.astronaut_video(folder / "astronaut.mp4", seconds=3, fps=10),
        "gap": predict_videos.astronaut_video(folder / "gap.mp4", seconds=4, fps=10, blank=[(1.0, 2.0)]),
    }


def test_fer2013_model_finds_happiness_in_every_window(fer2013_run, videos, tmp_path, capsys):
    out = {k: tmp_path / f"astronaut.{k}" for k in ("json", "csv", "png", "mp4")}
    status = main(["predict", videos["astronaut"], "--checkpoint", str(fer2013_run), "--out", str(out["json"]),
                   "--csv", str(out["csv"]), "--plot", str(out["png"]), "--annotate", str(out["mp4"])])
    assert status == 0, capsys.readouterr().err
    timeline = json.loads(out["json"].read_text())
    windows = timeline["windows"]
    assert timeline["window_frames"] == 1 and timeline["num_frames"] == 30
    assert len(windows) == 30 and timeline["gaps"] == []  # her face is in every frame
    assert {w["top_class"] for w in windows} == {"happy"}, [w["top_class"] for w in windows]
    for w in windows:
        assert abs(sum(w["probabilities"].values()) - 1) < 1e-4
        assert w["end"] > w["start"]
    # The CSV holds the same windows; the plot is a picture; the annotated video has every frame.
    rows = list(csv.DictReader(out["csv"].open()))
    assert [r["top_class"] for r in rows] == [w["top_class"] for w in windows]
    assert float(rows[3]["p_happy"]) == windows[3]["probabilities"]["happy"]
    picture = cv2.imread(str(out["png"]))
    assert picture is not None and picture.shape[0] > 200 and picture.shape[1] > 400
    with av.open(str(out["mp4"])) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 30
    # The box is drawn in green (40, 220, 40) where the face is.
    left, top, right, bottom = (int(round(v)) for v in windows[0]["box"])
    edge = frames[0][top:bottom, left].astype(int)
    assert np.mean((edge[:, 1] > 160) & (edge[:, 0] < 110)) > 0.5


def test_windows_are_prepared_like_the_records(tiny_model, videos):
    """A window of the model's length: its arrays equal what the corpus preprocessing makes of the
    same frames (the same detector, tracker, landmarks and alignment, run on the same frames)."""
    with av.open(videos["astronaut"]) as container:
        first = np.stack([f.to_ndarray(format="rgb24") for _, f in zip(range(8), container.decode(video=0))])
    record = process_frames(first, tiny_model.clip)
    got = next(iter_windows(videos["astronaut"], tiny_model.clip, tiny_model.keys, window=8, stride=4))
    assert got.start_frame == 0 and got.end_frame == 7
    np.testing.assert_array_equal(got.inputs["frames"], record["frames"])


def test_longer_windows_are_sampled_like_the_records(tiny_model, videos):
    """A 16-frame window gives the model 8 of them, first and last kept (temporal.sample_indices),
    each aligned with the landmarks of the face tracked through every frame."""
    clip = dataclasses.replace(tiny_model.clip, store_frame_indices=True)
    with av.open(videos["astronaut"]) as container:
        first = [f.to_ndarray(format="rgb24") for _, f in zip(range(16), container.decode(video=0))]
    kept = sample_indices(16, 8)
    track = track_face(first, upsample=clip.upsample)
    expected = np.stack([align_face(first[i], track.landmarks[i], clip.size)[0] for i in kept])
    got = next(iter_windows(videos["astronaut"], clip, ("frames", "frame_indices"), window=16, stride=4))
    np.testing.assert_array_equal(got.inputs["frame_indices"], kept)
    np.testing.assert_array_equal(got.inputs["frames"], expected)


def test_stride_and_window_times(tiny_model, videos):
    timeline, _ = predict_video(videos["astronaut"], tiny_model, stride=3)
    starts = [w["start_frame"] for w in timeline["windows"]]
    assert starts == list(range(0, 30 - 8 + 1, 3))  # a face in every frame: every window is there
    first = timeline["windows"][0]
    assert first["end_frame"] == 7 and first["start"] == 0.0 and first["end"] == pytest.approx(0.8)
    assert timeline["windows"][1]["start"] == pytest.approx(0.3)
    assert set(timeline["class_names"]) == set(first["probabilities"]) == {"right", "down", "still"}


def test_frames_without_a_face_are_gaps_not_guesses(tiny_model, videos, tmp_path):
    timeline, _ = predict_video(videos["gap"], tiny_model, stride=2)
    assert timeline["gaps"] == [{"start": 1.0, "end": 2.0}]
    blank = set(range(10, 20))
    for w in timeline["windows"]:
        assert not blank & set(range(w["start_frame"], w["end_frame"] + 1)), w
    # Every window that does not touch the blank second is predicted.
    expected = [s for s in range(0, 40 - 8 + 1, 2) if not blank & set(range(s, s + 8))]
    assert [w["start_frame"] for w in timeline["windows"]] == expected


def test_largest_face_by_default_every_face_on_request(tiny_model, tmp_path):
    # Two astronauts side by side, the right one smaller.
    big, small = predict_videos.astronaut_frames(2, 10, (160, 120)), predict_videos.astronaut_frames(2, 10, (110, 82))
    frames = []
    for a, b in zip(big, small):
        canvas = np.full((120, 280, 3), 90, np.uint8)
        canvas[:, :160] = a
        canvas[20:102, 165:275] = b
        frames.append(canvas)
    path = predict_videos.write_video(tmp_path / "two.mp4", frames, fps=10)
    one, _ = predict_video(path, tiny_model, stride=4)
    assert len(one["tracks"]) == 1
    assert all(w["box"][2] <= 165 for w in one["windows"])  # the larger, left face
    both, _ = predict_video(path, tiny_model, stride=4, all_faces=True)
    assert len(both["tracks"]) == 2
    by_track = {t: [w for w in both["windows"] if w["track"] == t] for t in both["tracks"]}
    lefts = sorted(np.mean([w["box"][0] for w in ws]) for ws in by_track.values())
    assert lefts[0] < 100 < 165 <= lefts[1] + 20
    assert all(len(ws) == len(one["windows"]) for ws in by_track.values())


def _bad_files(folder, astronaut):
    data = open(astronaut, "rb").read()
    files = {
        "zero_byte": folder / "empty.mp4",
        "truncated": folder / "cut.mp4",
        "undecodable": folder / "notes.mp4",
        "no_face": folder / "wall.mp4",
    }
    files["zero_byte"].write_bytes(b"")
    files["truncated"].write_bytes(data[: len(data) // 2])
    files["undecodable"].write_text("these are meeting notes, not a video\n" * 50)
    predict_videos.write_video(files["no_face"], (np.full((120, 160, 3), v, np.uint8) for v in range(60, 90)), fps=10)
    return files


def test_bad_videos_get_clear_errors_naming_the_file(tiny_run, tiny_model, videos, tmp_path, capsys):
    for reason, path in _bad_files(tmp_path, videos["astronaut"]).items():
        with pytest.raises(InputError) as caught:
            predict_video(path, tiny_model)
        assert caught.value.reason == reason and caught.value.path == str(path)
        # The command line says the same and exits with status 2.
        assert main(["predict", str(path), "--checkpoint", tiny_run, "--out", str(tmp_path / "x.json")]) == 2
        err = capsys.readouterr().err
        assert str(path) in err and "error" in err
    assert not (tmp_path / "x.json").exists()


def test_stream_keeps_per_frame_boxes_for_annotation(tiny_model, videos):
    stats = StreamStats()
    windows = list(iter_windows(videos["gap"], tiny_model.clip, tiny_model.keys, window=8, stride=8, stats=stats))
    assert stats.num_frames == len(stats.frame_boxes) == 40 and stats.frames_with_face == 30
    assert [len(b) for b in stats.frame_boxes[10:20]] == [0] * 10
    assert stats.fps == pytest.approx(10.0) and stats.duration == pytest.approx(4.0)
    assert [w.start_frame for w in windows] == [0, 24, 32]


def test_stride_or_window_too_small_is_refused(tiny_run, videos, capsys):
    assert main(["predict", videos["astronaut"], "--checkpoint", tiny_run, "--stride", "0"]) == 2
    assert "--stride 0" in capsys.readouterr().err
    assert main(["predict", videos["astronaut"], "--checkpoint", tiny_run, "--window-frames", "4"]) == 2
    assert "reads 8 frames per clip" in capsys.readouterr().err


@pytest.mark.parametrize("task, value", [("regression", "valence"), ("score", "score")])
def test_regressing_windows_give_their_value_in_json_csv_and_plot(tmp_path, task, value):
    """A valence (or per-video score) model's window: the mean of its per-step outputs, under the
    name of what it learnt, in every output format."""
    from types import SimpleNamespace

    from fer_jax.infer.predict import _record, write_csv
    from fer_jax.infer.stream import Window
    from fer_jax.infer.timeline import plot_timeline

    model = SimpleNamespace(task=task, class_names=[])
    steps = np.array([0.5, -0.25, 0.25, 0.0], np.float32)
    windows = [_record(Window(0, s, s + 7, s / 10, (s + 8) / 10, np.array([1, 2, 30, 40]), {}), steps * (s + 1), model)
               for s in (0, 4, 8)]
    assert [w[value] for w in windows] == [0.125, 0.625, 1.125]  # mean of 0.125 * (s + 1)
    assert windows[1][f"{value}_steps"] == [2.5, -1.25, 1.25, 0.0]
    assert not any("valence" in key for w in windows for key in w) or value == "valence"
    timeline = {"task": task, "class_names": [], "windows": windows, "gaps": [], "duration": 1.6,
                "stride_frames": 4, "video": "v.mp4", "model": "a regressor"}
    write_csv(timeline, tmp_path / "v.csv")
    rows = list(csv.DictReader((tmp_path / "v.csv").open()))
    assert [float(r[value]) for r in rows] == [0.125, 0.625, 1.125]
    assert cv2.imdecode(np.frombuffer(plot_timeline(timeline), np.uint8), cv2.IMREAD_COLOR).shape[1] > 400


def test_words_go_into_the_json_and_under_the_plot(fer2013_run, videos, tmp_path, capsys):
    pytest.importorskip("faster_whisper")
    import shutil

    video = tmp_path / "astronaut.mp4"
    shutil.copy(videos["astronaut"], video)
    (tmp_path / "astronaut.srt").write_text("1\n00:00:00,500 --> 00:00:02,000\nwhat a lovely day\n")
    args = ["predict", str(video), "--checkpoint", str(fer2013_run)]
    assert main(args + ["--out", str(tmp_path / "plain.json"), "--plot", str(tmp_path / "plain.png")]) == 0
    assert main(args + ["--out", str(tmp_path / "w.json"), "--plot", str(tmp_path / "w.png"), "--words"]) == 0
    assert "4 words from subtitles:" in capsys.readouterr().out
    timeline = json.loads((tmp_path / "w.json").read_text())
    assert [w["word"] for w in timeline["words"]["words"]] == ["what", "a", "lovely", "day"]
    assert timeline["words"]["words"][0]["start"] == 0.5 and timeline["words"]["words"][-1]["end"] == 2.0
    assert "words" not in json.loads((tmp_path / "plain.json").read_text())
    plain, with_words = cv2.imread(str(tmp_path / "plain.png")), cv2.imread(str(tmp_path / "w.png"))
    assert with_words.shape[0] - plain.shape[0] == 120  # the words panel: WORDS_PANEL_HEIGHT at 100 dpi
