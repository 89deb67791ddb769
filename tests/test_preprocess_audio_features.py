"""Audio features beyond the log-mel, each against an independent reference: deltas against
librosa.feature.delta, the linear spectrogram against a NumPy float64 STFT, the waveform picture
against a sample-by-sample drawing loop."""

import librosa
import numpy as np
import pytest

from fer_jax.preprocess import audio, clip
from helpers.tolerance import F32_EPS, F64_EPS, assert_caught, rounding_tolerance

RATE = 16000


def _test_wave(seconds=1.3, seed=0):
    """Two tones (440 Hz, 1 kHz) whose loudness changes over time, plus a little noise."""
    t = np.arange(int(seconds * RATE)) / RATE
    envelope = 0.5 + 0.4 * np.sin(2 * np.pi * 1.5 * t)
    wave = envelope * (0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 1000 * t))
    return (wave + 0.01 * np.random.default_rng(seed).normal(size=t.size)).astype(np.float32)


# --- deltas -------------------------------------------------------------------------------------


def _assert_rounded_once(got, want, features, width, order):
    """Deltas are a float64 computation rounded once to float32: half a float32 ulp of each value
    (2**-24 relative), plus float64 rounding of `order` passes of `width`-term sums over the
    features' magnitude (the deltas are small differences of large values)."""
    atol = rounding_tolerance(terms=width, layers=order, scale=float(np.abs(features).max()), eps=F64_EPS)
    np.testing.assert_allclose(got, want, rtol=F32_EPS / 2, atol=atol)
    return atol + F32_EPS / 2 * float(np.abs(want).max())


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("frames, width", [(60, 9), (60, 5), (9, 9)])
def test_deltas_match_librosa(order, frames, width):
    features = np.random.default_rng(order).normal(size=(frames, 7)).cumsum(axis=0)
    want = librosa.feature.delta(features.T, width=width, order=order, mode="interp").T  # float64
    got = audio.deltas(features, order=order, width=width)
    assert got.shape == features.shape and got.dtype == np.float32
    tol = _assert_rounded_once(got, want, features, width, order)
    if frames > width:  # another window width (what librosa's default would give) fails it
        assert_caught(got, librosa.feature.delta(features.T, width=width - 2, order=order, mode="interp").T, tol)


def test_deltas_of_short_clips_use_the_widest_window_that_fits():
    features = np.random.default_rng(3).normal(size=(6, 4))
    _assert_rounded_once(audio.deltas(features), librosa.feature.delta(features.T, width=5, mode="interp").T,
                         features, width=5, order=1)
    assert not audio.deltas(features[:2]).any()


def test_deltas_of_a_ramp_are_its_slope_and_zero_curvature():
    ramp = np.arange(30, dtype=np.float64)[:, None] * [0.5, -2.0]
    np.testing.assert_allclose(audio.deltas(ramp), np.broadcast_to([0.5, -2.0], ramp.shape), atol=1e-6)
    np.testing.assert_allclose(audio.deltas(ramp, order=2), 0.0, atol=1e-6)


# --- linear spectrogram -------------------------------------------------------------------------


def _stft_reference(wave, n_fft=1024, win=640, hop=160):
    """log(|STFT| + 1e-6) in float64: periodic Hann of `win` centred in n_fft, frames centred on
    k * hop with n_fft // 2 zeros of padding at each end."""
    wave = np.asarray(wave, np.float64)
    window = np.zeros(n_fft)
    offset = (n_fft - win) // 2
    window[offset : offset + win] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)
    padded = np.pad(wave, n_fft // 2)
    count = 1 + wave.size // hop
    frames = np.stack([padded[k * hop : k * hop + n_fft] for k in range(count)])
    return np.abs(np.fft.rfft(frames * window, axis=1))


def test_linear_spectrogram_matches_a_float64_stft():
    wave = _test_wave()
    got = audio.linear_spectrogram(wave, RATE)
    magnitude = _stft_reference(wave)
    assert got.shape == magnitude.shape == (1 + wave.size // 160, 513) and got.dtype == np.float32
    assert audio.linear_bins(RATE) == 513
    # Magnitudes agree to the rounding of a float32 FFT (10 radix-2 stages of 2-term sums, then the
    # magnitude) relative to the largest; in the log (relative error), wherever the magnitude is
    # at least 1% of the largest.
    tol = rounding_tolerance(terms=2, layers=int(np.log2(1024)) + 1, scale=float(magnitude.max()))
    np.testing.assert_allclose(np.exp(got) - 1e-6, magnitude, atol=tol, rtol=0)
    strong = magnitude > 1e-2 * magnitude.max()
    np.testing.assert_allclose(got[strong], np.log(magnitude[strong] + 1e-6), atol=tol / (1e-2 * magnitude.max()))
    # 40 ms windows resolve 15.6 Hz bins: the 1 kHz tone peaks at bin 64, the 440 Hz one at 28.
    mean = got[5:-5].mean(axis=0)
    assert abs(int(mean[50:].argmax()) + 50 - 64) <= 1 and abs(int(mean[:50].argmax()) - 28) <= 1


# --- waveform picture ---------------------------------------------------------------------------


def _waveform_reference(wave, num_samples, size=256):
    """Sample-by-sample drawing: every column lights rows from the lowest to the highest sample
    that falls in its time slice, plus the sample just before the slice."""
    samples = [float(wave[i]) if i < len(wave) else 0.0 for i in range(num_samples)]
    rows = [round((1 - min(1.0, max(-1.0, a))) / 2 * (size - 1)) for a in samples]
    low, high = [size] * size, [-1] * size
    column = 0
    for i, row in enumerate(rows):
        while column + 1 < size and (column + 1) * num_samples // size <= i:
            column += 1
        first_of_column = i == column * num_samples // size
        for r in [row] + ([rows[i - 1]] if first_of_column and i > 0 else []):
            low[column], high[column] = min(low[column], r), max(high[column], r)
    image = np.zeros((size, size), np.uint8)
    for c in range(size):
        image[low[c] : high[c] + 1, c] = 255
    return image


def test_waveform_image_matches_a_drawing_loop():
    wave = _test_wave(seconds=1.3) * 2.5  # loud enough to clip in places
    got = audio.waveform_image(wave, num_samples=2 * RATE)
    assert got.shape == (256, 256, 1) and got.dtype == np.uint8
    np.testing.assert_array_equal(got[..., 0], _waveform_reference(wave, 2 * RATE))


def test_waveform_image_shape_of_a_slow_sine():
    t = np.arange(RATE) / RATE
    image = audio.waveform_image(0.5 * np.sin(2 * np.pi * 2 * t), num_samples=2 * RATE)[..., 0] > 0
    # Amplitude 0.5 spans rows 64 .. 191; the second second is silence: a line on the middle row.
    lit = np.flatnonzero(image[:, :128].any(axis=1))
    assert lit.min() == 64 and lit.max() == 191
    assert image[:, 129:].sum(axis=0).tolist() == [1] * 127 and image[128, 129:].all()
    assert image.any(axis=0).all()  # connected: every column is drawn


# --- wired into process_clip --------------------------------------------------------------------


def test_audio_outputs_are_fitted_and_consistent():
    wave = _test_wave(seconds=1.3)
    config = clip.ClipConfig(audio_features=clip.AUDIO_FEATURES, audio_seconds=2.0)
    out = clip.audio_outputs(wave, config)
    spec = config.record_spec()
    for name in clip.AUDIO_FEATURES:
        assert np.shape(out[name]) == spec[name][0] and np.asarray(out[name]).dtype == spec[name][1], name
    real = out["audio_frames"]
    assert spec["audio_frames"] == ((), np.int32) and isinstance(real, int)
    assert real == 1 + wave.size // 160 == 131
    # Channel 0 is the log-mel output itself; deltas are librosa's on the real frames, 0 after.
    mel = audio.log_mel(wave, RATE)
    np.testing.assert_array_equal(out["log_mel_deltas"][..., 0], out["log_mel"])
    for channel, order in ((1, 1), (2, 2)):
        want = librosa.feature.delta(mel.T.astype(np.float64), order=order).T
        _assert_rounded_once(out["log_mel_deltas"][:real, :, channel], want, mel, width=9, order=order)
        assert not out["log_mel_deltas"][real:, :, channel].any()
    # Padding of the spectrogram is its quietest value, as for the log-mel.
    np.testing.assert_array_equal(out["linear_spectrogram"][real:], out["linear_spectrogram"][:real].min())
    # The default config still gives only the log-mel.
    assert set(clip.audio_outputs(wave, clip.ClipConfig())) == {"log_mel", "audio_frames"}


def test_process_clip_with_every_audio_feature(tmp_path):
    from helpers.media import write_face_mp4  # an H.264/AAC MP4 of the astronaut over two tones

    path = write_face_mp4(tmp_path / "clip.mp4")
    config = clip.ClipConfig(num_frames=4, audio_features=clip.AUDIO_FEATURES)
    example = clip.process_clip(path, config)
    for name, (shape, dtype) in config.record_spec().items():
        if shape:
            assert np.shape(example[name]) == shape and example[name].dtype == dtype, name
    assert isinstance(example["audio_frames"], int)  # a Python int, stored as int32
    default = clip.process_clip(path, clip.ClipConfig(num_frames=4))
    np.testing.assert_array_equal(example["log_mel"], default["log_mel"])
    assert example["audio_frames"] == default["audio_frames"]
