"""Bad input for the builders: one AFEW build over a manual folder (with spaces and non-ASCII
characters in its path) holding every kind of awkward clip, next to good ones.

Each clip's fate is asserted: the broken ones are skipped with their exact reason in
build_report.json, and every usable one (variable frame rate, a single frame, stereo / 8 kHz /
48 kHz audio, a face at the frame's edge, an odd resolution, rotation metadata, a non-ASCII file
name) is in the records. Clips are written here with PyAV from scikit-image's astronaut photograph.
FFmpeg reads files by their content, so the clips that need MP4 features (rotation metadata, an
arbitrary time base) are MP4s in files named .avi, as AFEW's layout wants.
"""

from __future__ import annotations

import json
import pathlib
import shutil

import numpy as np
import pytest
import tensorflow_datasets as tfds

import data_builders
from data_builders.afew import dummy_media
from fer_jax.errors import ConfigError, InputError
from fer_jax.preprocess import video
from helpers.media import FPS, VFR_PTS_MS, moving_face_frames, write_clip

AFEW = pathlib.Path(__file__).resolve().parents[1] / "data_builders" / "afew" / "dummy_data"
N = 16


# name in Train/Happy -> expected reason (None: kept)
EXPECTED = {
    "good.avi": None,
    "Ünïcødé clip ☺ 01.avi": None,
    "vfr.avi": None,
    "one_frame.avi": None,
    "stereo_44k.avi": None,
    "mono_8k.avi": None,
    "mono_48k.avi": None,
    "face_at_edge.avi": None,
    "odd_161x119.avi": None,
    "upright.avi": None,
    "rotated.avi": None,
    "zero_byte.avi": "zero_byte",
    "cut_short.avi": "truncated",
    "notes.avi": "undecodable",
    "unknown_codec.avi": "unsupported_codec",
    "no_audio.avi": "no_audio",
    "no_face.avi": "no_face",
}


def make_manual_dir(root: pathlib.Path) -> pathlib.Path:
    happy = root / "Train" / "Happy"
    happy.mkdir(parents=True)
    shutil.copy(AFEW / "Train" / "Happy" / "000100002.avi", happy / "good.avi")
    shutil.copy(AFEW / "Train" / "Happy" / "000100002.avi", happy / "Ünïcødé clip ☺ 01.avi")
    (root / "Val" / "Happy").mkdir(parents=True)
    shutil.copy(AFEW / "Train" / "Happy" / "000100002.avi", root / "Val" / "Happy" / "val good.avi")
    faces = moving_face_frames()
    write_clip(happy / "vfr.avi", faces, fmt="mp4", vcodec="libx264", pts_ms=VFR_PTS_MS, audio=(44100, 2))
    write_clip(happy / "one_frame.avi", faces[:1])
    write_clip(happy / "stereo_44k.avi", faces, audio=(44100, 2))
    write_clip(happy / "mono_8k.avi", faces, audio=(8000, 1))
    write_clip(happy / "mono_48k.avi", faces, audio=(48000, 1))
    # The face's left third outside the frame: the crop is filled with black where the frame ends.
    edge = np.zeros_like(faces)
    edge[:, :, :110] = moving_face_frames(size=(160, 110), left=174)
    write_clip(happy / "face_at_edge.avi", edge)
    write_clip(happy / "odd_161x119.avi", moving_face_frames(size=(161, 119), left=140))
    # Stored turned a quarter clockwise, with metadata telling players to turn it back.
    write_clip(happy / "upright.avi", faces, fmt="mp4", vcodec="libx264")
    write_clip(happy / "rotated.avi", np.rot90(faces, k=-1, axes=(1, 2)), fmt="mp4", vcodec="libx264", rotation=90)
    dummy_media.write_zero_byte(happy / "zero_byte.avi")
    dummy_media.write_truncated(happy / "cut_short.avi", happy / "good.avi", dummy_media.AVI_HEADER_CUT)
    (happy / "notes.avi").write_text("subtitles, not a video\n" * 40)
    mp4 = (happy / "upright.avi").read_bytes()
    assert mp4.count(b"avc1") >= 1
    (happy / "unknown_codec.avi").write_bytes(mp4.replace(b"avc1", b"zzz1"))  # a FourCC no decoder knows
    write_clip(happy / "no_audio.avi", faces, audio=None)
    write_clip(happy / "no_face.avi", np.full_like(faces, 128))
    return root


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad input")
    manual = make_manual_dir(root / "manual dir ünï")
    report = data_builders.build("afew/gray64_t8", str(root / "data"), str(manual))
    source = {split: tfds.data_source("afew/gray64_t8", split=split, data_dir=str(root / "data"))
              for split in ("train", "validation")}
    records = {split: {s[i]["clip_id"].decode(): s[i] for i in range(len(s))} for split, s in source.items()}
    return manual, report, records


def test_each_bad_clip_is_skipped_with_its_reason_and_every_usable_clip_is_kept(built):
    manual, report, records = built
    skipped = {pathlib.Path(s["path"]).name: s for s in report["skipped_files"]}
    expected_skips = {name: reason for name, reason in EXPECTED.items() if reason}
    assert {name: s["reason"] for name, s in skipped.items()} == expected_skips
    assert report["skipped_by_reason"] == {reason: 1 for reason in expected_skips.values()}
    for name, entry in skipped.items():  # full path, in the message too, in a non-ASCII folder
        assert entry["path"] == str(manual / "Train" / "Happy" / name) and name in entry["message"]
    kept = sorted(f"Train/Happy/{name}" for name, reason in EXPECTED.items() if reason is None)
    assert sorted(records["train"]) == kept and report["kept"]["train"] == len(kept)
    assert list(records["validation"]) == ["Val/Happy/val good.avi"]
    written = json.loads((pathlib.Path(report["data_dir"]) / "build_report.json").read_text())
    assert written["skipped_files"] == report["skipped_files"]


def test_audio_of_any_rate_and_layout_becomes_16k_log_mel(built):
    _, _, records = built
    seconds = N / FPS
    for name in ("stereo_44k.avi", "mono_8k.avi", "mono_48k.avi"):
        record = records["train"][f"Train/Happy/{name}"]
        # centred 10 ms frames of the 0.64 s tone: 1 + 0.64 * 100 rows, then padding to 3 s
        assert abs(int(record["audio_frames"]) - (1 + seconds * 100)) <= 2, name
        rows = record["log_mel"][: int(record["audio_frames"]) - 3]
        assert np.argmax(rows.mean(axis=0)) <= 8, name  # a 220 Hz tone: energy in the lowest mel bands
        assert record["log_mel"].shape == (300, 64)


def test_rotation_metadata_is_applied(built):
    _, _, records = built
    upright, rotated = (records["train"][f"Train/Happy/{n}"]["frames"].astype(float)
                        for n in ("upright.avi", "rotated.avi"))
    # Applying the rotation gives the upright clip's aligned faces (H.264 differs a little: the
    # turned frames are encoded separately); the wrong turn would leave the face upside down.
    assert np.abs(upright - rotated).mean() < 8
    assert np.abs(upright - rotated[:, ::-1, ::-1]).mean() > 20


def test_variable_frame_rate_keeps_the_container_timestamps(built):
    manual, _, records = built
    clip = video.read_video(manual / "Train" / "Happy" / "vfr.avi")
    np.testing.assert_allclose(clip.timestamps, np.array(VFR_PTS_MS) / 1000, atol=1e-6)
    assert "Train/Happy/vfr.avi" in records["train"]


def test_one_frame_clip_repeats_its_frame(built):
    _, _, records = built
    frames = records["train"]["Train/Happy/one_frame.avi"]["frames"]
    assert frames.shape == (8, 64, 64, 1) and all(np.array_equal(f, frames[0]) for f in frames)


def test_missing_manual_or_split_folder_is_a_config_error(tmp_path):
    missing = tmp_path / "no such folder"
    with pytest.raises(ConfigError, match=r"--manual-dir .*no such folder: no such folder\. AFEW comes from"):
        data_builders.build("afew/gray64_t8", str(tmp_path / "data"), str(missing))
    only_train = tmp_path / "only train"
    (only_train / "Train" / "Happy").mkdir(parents=True)
    with pytest.raises(ConfigError, match=r"only train: no Val or Val_AFEW folder"):
        data_builders.build("afew/gray64_t8", str(tmp_path / "data"), str(only_train))


def test_unknown_video_codec_is_named_and_the_rest_of_the_file_still_reads(built):
    manual, _, _ = built
    path = manual / "Train" / "Happy" / "unknown_codec.avi"
    with pytest.raises(InputError) as caught:
        video.read_video(path)
    assert caught.value.reason == "unsupported_codec" and str(path) in str(caught.value)
    assert video.read_audio(path).size > 0.6 * 16000  # its AAC track is fine: only the video codec is unknown
