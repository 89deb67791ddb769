"""Decoding and the whole clip pipeline on small MP4s written here with PyAV: a real face (the
astronaut photograph) moving across the frame, over a 44.1 kHz stereo sine track."""

import multiprocessing
import pickle

import numpy as np
import pytest

from fer_jax.errors import InputError
from fer_jax.preprocess import align, clip, video
from helpers.media import AUDIO_RATE, FPS, LEFT_AMP, LEFT_HZ, RIGHT_AMP, RIGHT_HZ, moving_face_frames, write_face_mp4

NUM = 20  # frames of write_face_mp4's default clip
SIZE = 160


# test_builder_common and test_builder_send import the clip writer from here.
_write = write_face_mp4


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Good and broken files, written once for the module."""
    folder = tmp_path_factory.mktemp("media")
    good = write_face_mp4(folder / "good.mp4")
    data = good.read_bytes()
    faststart = write_face_mp4(folder / "faststart.mp4", faststart=True).read_bytes()
    broken = {
        "zero_byte": b"",
        "truncated": data[: len(data) // 2],  # index ("moov") is at the end: it is lost
        "truncated_faststart": faststart[: len(faststart) // 2],  # index kept, frames lost
        "text": b"this is a text file, not a video\n" * 20,
    }
    paths = {"good": good}
    for name, content in broken.items():
        paths[name] = folder / f"{name}.mp4"
        paths[name].write_bytes(content)
    paths["no_audio"] = write_face_mp4(folder / "no_audio.mp4", audio=False)
    paths["audio_only"] = write_face_mp4(folder / "audio_only.mp4", video_stream=False)
    paths["late_face"] = write_face_mp4(folder / "late_face.mp4", frames=moving_face_frames(NUM, blank_first=6))
    paths["no_face"] = write_face_mp4(folder / "no_face.mp4", frames=moving_face_frames(NUM, blank_first=NUM))
    return paths


def test_read_video_frames_fps_and_timestamps(files):
    clip_ = video.read_video(files["good"])
    assert clip_.frames.shape == (NUM, SIZE, SIZE, 3) and clip_.frames.dtype == np.uint8
    assert clip_.fps == pytest.approx(FPS)
    np.testing.assert_allclose(clip_.timestamps, np.arange(NUM) / FPS, atol=1e-6)
    # RGB, in order, close to what was encoded (H.264 is lossy; a BGR swap or a frame shift is not).
    source = moving_face_frames(NUM).astype(float)
    errors = np.abs(clip_.frames.astype(float) - source).mean(axis=(1, 2, 3))
    assert errors.max() < 6
    assert np.abs(clip_.frames[..., ::-1].astype(float) - source).mean() > 15
    assert np.abs(clip_.frames[1:].astype(float) - source[:-1]).mean() > errors.mean() + 3


def test_iter_video_frames_streams_the_same_frames(files):
    stream = video.iter_video_frames(files["good"])
    first, time = next(stream)  # lazy: one frame at a time
    assert first.shape == (SIZE, SIZE, 3) and time == pytest.approx(0.0)
    rest = [frame for frame, _ in stream]
    np.testing.assert_array_equal(np.stack([first, *rest]), video.read_video(files["good"]).frames)


def _tone_amplitude(wave, rate, hz):
    """Least-squares amplitude of a sine of frequency `hz` in `wave` (exact for any length)."""
    t = np.arange(wave.size) / rate
    basis = np.stack([np.sin(2 * np.pi * hz * t), np.cos(2 * np.pi * hz * t)], axis=1)
    coefficients, *_ = np.linalg.lstsq(basis, wave.astype(np.float64), rcond=None)
    return np.hypot(*coefficients)


def test_read_audio_is_16k_mono_average_of_channels(files):
    wave = video.read_audio(files["good"])
    assert wave.dtype == np.float32 and wave.ndim == 1
    # 0.8 s at 16 kHz, plus at most one AAC frame (1024 samples at 44.1 kHz) of encoder padding.
    assert NUM / FPS * 16000 <= wave.size <= (NUM / FPS + 1024 / AUDIO_RATE) * 16000 + 1
    middle = wave[2000:-2000]  # away from the AAC encoder's start and end transients
    spectrum = np.abs(np.fft.rfft(middle * np.hanning(middle.size)))
    assert np.fft.rfftfreq(middle.size, 1 / 16000)[spectrum.argmax()] == pytest.approx(LEFT_HZ, abs=3)  # right rate
    # mono = mean of the channels: each tone at half its channel's amplitude (AAC is lossy: 5%).
    assert _tone_amplitude(middle, 16000, LEFT_HZ) == pytest.approx(LEFT_AMP / 2, rel=0.05)
    assert _tone_amplitude(middle, 16000, RIGHT_HZ) == pytest.approx(RIGHT_AMP / 2, rel=0.05)
    wave_8k = video.read_audio(files["good"], sample_rate=8000)
    assert wave_8k.size == pytest.approx(wave.size / 2, abs=2)


@pytest.mark.parametrize(
    "name, reason",
    [
        ("zero_byte", "zero_byte"),
        ("truncated", "truncated"),
        ("truncated_faststart", "truncated"),
        ("text", "undecodable"),
        ("audio_only", "no_video_stream"),
        ("missing", "missing"),
    ],
)
def test_broken_files_raise_input_error(files, tmp_path, name, reason):
    path = files.get(name, tmp_path / "missing.mp4")
    for read in (video.read_video, lambda p: list(video.iter_video_frames(p)), clip.process_clip):
        with pytest.raises(InputError) as caught:
            read(path)
        assert caught.value.reason == reason
        assert caught.value.path == str(path) and path.name in str(caught.value)


@pytest.mark.parametrize("name, reason", [("no_audio", "no_audio"), ("zero_byte", "zero_byte"), ("text", "undecodable")])
def test_read_audio_errors(files, name, reason):
    with pytest.raises(InputError) as caught:
        video.read_audio(files[name])
    assert caught.value.reason == reason and files[name].name in str(caught.value)


def test_process_clip_outputs(files):
    config = clip.ClipConfig()
    example = clip.process_clip(files["good"], config)
    assert set(example) == {"frames", "landmarks", "log_mel", "audio_frames", "num_source_frames", "face_found_fraction"}
    assert example["frames"].shape == (8, 64, 64, 1) and example["frames"].dtype == np.uint8
    assert example["landmarks"].shape == (8, 68, 2) and example["landmarks"].dtype == np.float32
    assert example["log_mel"].shape == (200, 64) and example["log_mel"].dtype == np.float32
    assert example["num_source_frames"] == NUM
    assert example["face_found_fraction"] == 1.0
    assert isinstance(example["audio_frames"], int) and isinstance(example["face_found_fraction"], float)

    # Audio: 0.8 s (+ AAC padding) at 100 frames/s, then padding with the clip's minimum.
    assert 81 <= example["audio_frames"] <= 84
    log_mel = example["log_mel"]
    np.testing.assert_array_equal(log_mel[example["audio_frames"] :], log_mel.min())
    # The 440 Hz tone peaks in (or next to) the 64-band Slaney mel band whose centre is nearest
    # 440 Hz: band 8 at 16 kHz. Read at the wrong rate, it would land bands away.
    assert abs(log_mel[10:70].mean(0).argmax() - 8) <= 1

    # The face moves 3 px/frame in the video; aligned, it stands still: eyes on the canonical
    # spots in every frame, and consecutive crops nearly identical.
    left, right = align.eye_centers(example["landmarks"].transpose(1, 0, 2))
    want_left, want_right = align.canonical_eye_positions(64)
    np.testing.assert_allclose(left, np.broadcast_to(want_left, (8, 2)), atol=0.01)
    np.testing.assert_allclose(right, np.broadcast_to(want_right, (8, 2)), atol=0.01)
    crops = example["frames"].astype(float)
    raw = video.read_video(files["good"]).frames.astype(float)
    assert np.abs(crops[-1] - crops[0]).mean() < 0.15 * np.abs(raw[-1] - raw[0]).mean()


def test_process_clip_rgb_without_audio(files):
    example = clip.process_clip(files["no_audio"], clip.ClipConfig(num_frames=4, size=48, grayscale=False, need_audio=False))
    assert example["frames"].shape == (4, 48, 48, 3) and "log_mel" not in example and "audio_frames" not in example
    with pytest.raises(InputError) as caught:
        clip.process_clip(files["no_audio"])  # need_audio=True by default
    assert caught.value.reason == "no_audio" and "no_audio.mp4" in str(caught.value)


def test_frames_without_a_face_keep_their_own_pixels(files):
    """Frames 0-5 are blank; they borrow the crop window of frame 6 but are not replaced by it."""
    example = clip.process_clip(files["late_face"], clip.ClipConfig(need_audio=False))
    # Only the sampled frames are tracked: 0, 3, 5, 8, 11, 14, 16, 19, of which 0, 3, 5 are blank.
    assert example["face_found_fraction"] == pytest.approx(5 / 8)
    frames = example["frames"].astype(float)
    # sample_indices(20, 8) = 0, 3, 5, 8, ...: the first three are blank frames (time not shifted).
    assert frames[:3].std(axis=(1, 2, 3)).max() < 3
    assert frames[3:].std(axis=(1, 2, 3)).min() > 20
    np.testing.assert_allclose(example["landmarks"][:3], np.broadcast_to(example["landmarks"][3], (3, 68, 2)), atol=2)


def test_no_face_anywhere(files):
    with pytest.raises(InputError) as caught:
        clip.process_clip(files["no_face"], clip.ClipConfig(need_audio=False))
    assert caught.value.reason == "no_face" and "no_face.mp4" in str(caught.value)


def test_nearest_found():
    found = np.array([0, 0, 1, 0, 0, 0, 1, 0, 0], bool)
    np.testing.assert_array_equal(clip.nearest_found(found), [2, 2, 2, 2, 2, 6, 6, 6, 6])  # ties go earlier
    with pytest.raises(ValueError):
        clip.nearest_found(np.zeros(3, bool))


def test_process_clip_runs_in_a_process_pool(files):
    config = clip.ClipConfig(num_frames=4, need_audio=False)
    assert pickle.loads(pickle.dumps(config)) == config
    # spawn, not fork: the suite imports jax elsewhere, and forking a multithreaded process can deadlock.
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        results = pool.starmap(clip.process_clip, [(files["good"], config), (files["no_audio"], config)])
    assert [r["frames"].shape for r in results] == [(4, 64, 64, 1)] * 2
