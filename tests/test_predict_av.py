"""Audio-visual models in predict: each window gets the sound from its start, as a record would;
a video without sound is a clear error."""

import dataclasses

import jax
import numpy as np
import pytest
from flax import nnx

import predict_videos
from fer_jax.cli import main
from fer_jax.config import DataConfig, ExperimentConfig, ModelConfig
from fer_jax.errors import InputError
from fer_jax.infer.audio_stream import AudioStream
from fer_jax.infer.imports import save_run
from fer_jax.infer.loader import load_model
from fer_jax.infer.predict import predict_video
from fer_jax.infer.stream import iter_windows
from fer_jax.models import build_model
from fer_jax.preprocess.clip import ClipConfig, audio_outputs
from fer_jax.preprocess.video import read_audio
from helpers.media import moving_face_frames, write_clip

CLIP = ClipConfig(num_frames=2, size=16, need_audio=True, audio_seconds=0.5, audio_features=("waveform_image",))
CLASSES = ["calm", "loud"]


@pytest.fixture(scope="module")
def av_run(tmp_path_factory):
    """A small (untrained) face + waveform-image model saved as a run: the plumbing is under test."""
    kwargs = {"image_size": 16, "stage_filters": [4, 8], "dropout": 0.0}
    config = ExperimentConfig(name="av", workdir=str(tmp_path_factory.mktemp("av") / "run"),
                              data=DataConfig(dataset="none", num_classes=2, class_names=tuple(CLASSES), frames=2,
                                              size=16),
                              model=ModelConfig(name="av_image_inception", kwargs=kwargs))
    def create():  # inside jit: eager initialisation compiles every initialiser on its own
        return build_model("av_image_inception", num_classes=2, rngs=nnx.Rngs(jax.random.key(0, impl="rbg")), **kwargs)

    model = nnx.jit(create)()
    save_run(config, model, preprocessing={"clip": dataclasses.asdict(CLIP), "class_names": CLASSES})
    return config.workdir


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("av_videos")
    frames = list(predict_videos.astronaut_frames(2, 10))
    return {
        # 48 kHz sound: the stream resamples to the clip's 16 kHz, as read_audio does.
        "sound": predict_videos.write_video(folder / "sound.mp4", frames, 10, audio_hz=440, sample_rate=48000),
        "silent": predict_videos.write_video(folder / "silent.mp4", frames, 10),
    }


def test_audio_stream_equals_reading_the_whole_track(videos):
    whole = read_audio(videos["sound"], 16000)
    stream = AudioStream(videos["sound"], 16000)
    for start in (0.0, 0.3, 0.3, 1.1, 1.9):  # overlapping spans, in time order, and one past the end
        got = stream.samples(start, 0.5)
        first = int(round(start * 16000))
        want = whole[first: first + 8000]
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)
    stream.close()


def test_av_model_gets_each_windows_sound(av_run, videos):
    model = load_model(av_run)
    assert model.keys == ("frames", "waveform_image")
    windows = list(iter_windows(videos["sound"], model.clip, model.keys, window=2, stride=5))
    whole = read_audio(videos["sound"], 16000)
    assert [w.start_frame for w in windows] == [0, 5, 10, 15]
    for w in windows:  # the record's audio features of the 0.5 s from the window's start
        first = int(round(w.start_time * 16000))
        expected = audio_outputs(whole[first: first + 8000], CLIP)["waveform_image"]
        np.testing.assert_array_equal(w.inputs["waveform_image"], expected)
    timeline, _ = predict_video(videos["sound"], model, stride=5)
    assert len(timeline["windows"]) == 4 and set(timeline["windows"][0]["probabilities"]) == set(CLASSES)


def test_av_model_on_a_video_without_sound_is_a_clear_error(av_run, videos, tmp_path, capsys):
    model = load_model(av_run)
    with pytest.raises(InputError) as caught:
        predict_video(videos["silent"], model)
    assert caught.value.reason == "no_audio" and caught.value.path == videos["silent"]
    assert "audio-visual" in caught.value.message
    assert main(["predict", videos["silent"], "--checkpoint", av_run, "--out", str(tmp_path / "t.json")]) == 2
    assert "silent.mp4" in capsys.readouterr().err


@pytest.mark.parametrize("rate, channels", [(44100, 2), (8000, 1)])
def test_stereo_and_8k_sound_reach_the_model_as_the_records_have_it(av_run, tmp_path, rate, channels):
    """Any rate and layout is averaged to mono and resampled to the clip's 16 kHz, as read_audio does
    for the records (tests/test_bad_input.py builds the same files)."""

    path = str(write_clip(tmp_path / f"tone_{rate}_{channels}.avi", moving_face_frames(n=20), audio=(rate, channels)))
    model = load_model(av_run)
    windows = list(iter_windows(path, model.clip, model.keys, window=2, stride=5))
    whole = read_audio(path, 16000)
    assert len(windows) == 4
    for w in windows:
        first = int(round(w.start_time * 16000))
        expected = audio_outputs(whole[first: first + 8000], CLIP)["waveform_image"]
        np.testing.assert_array_equal(w.inputs["waveform_image"], expected)
