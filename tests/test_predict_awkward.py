"""fer-jax predict on the awkward but usable videos the builders keep (tests/test_bad_input.py makes
them the same way): each gives windows on the face; a file no decoder can read is refused with its
reason and path, and the next video in the same process is predicted as if nothing had happened."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from fer_jax.errors import InputError
from fer_jax.infer.predict import predict_video
from fer_jax.infer.stream import iter_windows
from helpers.media import VFR_PTS_MS, moving_face_frames, write_clip

USABLE = ("vfr.mp4", "one_frame.avi", "face_at_edge.avi", "odd_161x119.avi", "upright.mp4", "rotated.mp4",
          "Ünïcødé clip ☺ 01.avi")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """The videos, in a folder whose path has spaces and non-ASCII characters."""
    folder = tmp_path_factory.mktemp("awkward videos ünï")
    faces = moving_face_frames()
    write_clip(folder / "vfr.mp4", faces, fmt="mp4", vcodec="libx264", pts_ms=VFR_PTS_MS, audio=(44100, 2))
    write_clip(folder / "one_frame.avi", faces[:1])
    edge = np.zeros_like(faces)
    edge[:, :, :110] = moving_face_frames(size=(160, 110), left=174)  # a third of the face outside the frame
    write_clip(folder / "face_at_edge.avi", edge)
    write_clip(folder / "odd_161x119.avi", moving_face_frames(size=(161, 119), left=140))
    # Wider than tall, so a rotation that is not applied shows in the frame size as well as the face.
    wide = moving_face_frames(size=(120, 160), left=110)
    write_clip(folder / "upright.mp4", wide, fmt="mp4", vcodec="libx264")
    write_clip(folder / "rotated.mp4", np.rot90(wide, k=-1, axes=(1, 2)), fmt="mp4", vcodec="libx264", rotation=90)
    shutil.copy(folder / "odd_161x119.avi", folder / "Ünïcødé clip ☺ 01.avi")
    mp4 = (folder / "upright.mp4").read_bytes()
    (folder / "unknown_codec.mp4").write_bytes(mp4.replace(b"avc1", b"zzz1"))  # a FourCC no decoder knows
    return folder


@pytest.mark.parametrize("name", USABLE)
def test_usable_videos_give_windows_on_the_face(tiny_model, folder, name):
    timeline, _ = predict_video(folder / name, tiny_model)
    windows = timeline["windows"]
    assert windows and timeline["video"] == str(folder / name)
    if name == "one_frame.avi":  # one window, its frame repeated, as the records repeat it
        assert timeline["num_frames"] == 1 and len(windows) == 1
        (window,) = iter_windows(str(folder / name), tiny_model.clip, tiny_model.keys,
                                 window=tiny_model.clip.clip_frames, stride=1)
        frames = window.inputs["frames"]
        assert len(frames) == tiny_model.clip.clip_frames and all(np.array_equal(f, frames[0]) for f in frames)
    for w in windows:
        left, top, right, bottom = w["box"]
        assert right > left and bottom > top
        assert abs(sum(w["probabilities"].values()) - 1) < 1e-4


def test_rotation_metadata_is_applied_before_the_face_is_found(tiny_model, folder):
    upright, _ = predict_video(folder / "upright.mp4", tiny_model)
    rotated, _ = predict_video(folder / "rotated.mp4", tiny_model)
    # Turned back upright, the stored frames give the upright video's face boxes (H.264 differs a
    # little: the turned frames were encoded on their own).
    boxes = [np.array([w["box"] for w in t["windows"]], float) for t in (upright, rotated)]
    assert boxes[0].shape == boxes[1].shape
    assert np.abs(boxes[0] - boxes[1]).max() <= 6, boxes


def test_unknown_codec_is_refused_and_the_next_video_is_unaffected(tiny_model, folder):
    before, _ = predict_video(folder / "upright.mp4", tiny_model)
    with pytest.raises(InputError) as caught:
        predict_video(folder / "unknown_codec.mp4", tiny_model)
    assert caught.value.reason == "unsupported_codec" and caught.value.path == str(folder / "unknown_codec.mp4")
    after, _ = predict_video(folder / "upright.mp4", tiny_model)
    assert after["windows"] == before["windows"]
