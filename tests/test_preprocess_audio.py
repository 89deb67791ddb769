"""log_mel against an independent float64 NumPy implementation (own STFT, own Slaney mel bank)."""

import numpy as np
import pytest

from fer_jax.preprocess.audio import LOG_OFFSET, fit_length, log_mel
from helpers.tolerance import assert_caught, rounding_tolerance

SR = 16000
N_FFT, WIN, HOP = 512, 400, 160  # 25 ms / 10 ms at 16 kHz, FFT rounded up to a power of two
# Agreement in natural-log units, where an absolute error is the band power's relative error:
# librosa computes in float32, the reference in float64. A float32 FFT of 512 points (9 stages),
# the power, then a mel-weighted sum of up to 257 bins: 11 layers of sums of up to 257 terms,
# 4.2e-5 (the test wave keeps every band far above the 1e-6 floor; measured worst case ~6e-7).
ATOL = rounding_tolerance(terms=N_FFT // 2 + 1, layers=int(np.log2(N_FFT)) + 2)


def _hz_to_mel(hz):
    """Slaney's auditory-toolbox mel scale: linear below 1 kHz (3 mels per 200 Hz), log above."""
    hz = np.asarray(hz, np.float64)
    log_step = np.log(6.4) / 27.0
    return np.where(hz < 1000.0, hz / (200.0 / 3), 15.0 + np.log(np.maximum(hz, 1e-9) / 1000.0) / log_step)


def _mel_to_hz(mel):
    mel = np.asarray(mel, np.float64)
    log_step = np.log(6.4) / 27.0
    return np.where(mel < 15.0, mel * (200.0 / 3), 1000.0 * np.exp(log_step * (mel - 15.0)))


def _slaney_bank(n_mels, fmin, fmax):
    """(n_mels, N_FFT // 2 + 1) triangles between consecutive mel-spaced edges, each of unit area."""
    edges = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    freqs = np.arange(N_FFT // 2 + 1) * SR / N_FFT
    lo, centre, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs - lo) / (centre - lo)
    falling = (hi - freqs) / (hi - centre)
    return np.maximum(0.0, np.minimum(rising, falling)) * (2.0 / (hi - lo))


def _reference_log_mel(wave, n_mels=64, fmin=0.0, fmax=SR / 2, window_offset=(N_FFT - WIN) // 2):
    wave = np.asarray(wave, np.float64)
    padded = np.pad(wave, N_FFT // 2)  # centred frames, zero padding
    num = 1 + len(wave) // HOP
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(WIN) / WIN)  # periodic Hann, as for an STFT
    window = np.zeros(N_FFT)
    window[window_offset : window_offset + WIN] = hann  # window centred in the FFT frame
    frames = np.stack([padded[i * HOP : i * HOP + N_FFT] for i in range(num)])
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    return np.log(power @ _slaney_bank(n_mels, fmin, fmax).T + LOG_OFFSET)


def _test_wave(seconds=1.3, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    chirp = 0.3 * np.sin(2 * np.pi * (100 * t + 1500 * t**2))
    return (chirp + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.mark.parametrize("n_mels, fmin, fmax", [(64, 0.0, None), (40, 50.0, 7600.0), (80, 0.0, 8000.0)])
def test_log_mel_matches_numpy_float64_reference(n_mels, fmin, fmax):
    wave = _test_wave()
    got = log_mel(wave, SR, n_mels=n_mels, fmin=fmin, fmax=fmax)
    want = _reference_log_mel(wave, n_mels, fmin, fmax if fmax else SR / 2)
    assert got.dtype == np.float32 and got.shape == want.shape == (1 + len(wave) // HOP, n_mels)
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)
    # A window at the frame's start instead of its centre (56 samples off) misses by far more.
    assert_caught(got, _reference_log_mel(wave, n_mels, fmin, fmax if fmax else SR / 2, window_offset=0), ATOL)


def test_frame_count_and_rate():
    assert log_mel(np.zeros(SR * 2, np.float32)).shape == (201, 64)  # 100 frames/s, centred
    assert log_mel(np.zeros(1000, np.float32)).shape == (7, 64)
    silence = log_mel(np.zeros(SR, np.float32))
    np.testing.assert_allclose(silence, np.log(LOG_OFFSET), rtol=1e-6)  # the floor, not -inf


def test_sine_peaks_in_its_band_and_moves_in_time():
    t = np.arange(SR) / SR
    wave = np.where(t < 0.5, np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 3000 * t)).astype(np.float32)
    features = log_mel(wave)
    centres = _mel_to_hz(np.linspace(0, _hz_to_mel(SR / 2), 66))[1:-1]
    # Below 1 kHz bands are 46 Hz apart, finer than the 31 Hz FFT bins smeared by the Hann main
    # lobe, so a tone may peak in the band next to the one whose centre is nearest.
    assert abs(features[10:40].mean(0).argmax() - np.abs(centres - 440).argmin()) <= 1
    assert abs(features[60:90].mean(0).argmax() - np.abs(centres - 3000).argmin()) <= 1


def test_log_mel_rejects_stereo():
    with pytest.raises(ValueError, match="mono"):
        log_mel(np.zeros((2, 1000), np.float32))


def test_fit_length_crops_from_the_start():
    features = np.arange(30, dtype=np.float32).reshape(10, 3)
    out, valid = fit_length(features, 4)
    np.testing.assert_array_equal(out, features[:4])
    assert valid == 4


def test_fit_length_pads_with_the_minimum():
    features = np.array([[3.0, -2.0], [1.0, 5.0], [0.0, 0.5]], np.float32)
    out, valid = fit_length(features, 5)
    assert out.shape == (5, 2) and out.dtype == np.float32 and valid == 3
    np.testing.assert_array_equal(out[:3], features)
    np.testing.assert_array_equal(out[3:], -2.0)
    out, valid = fit_length(features, 3)
    np.testing.assert_array_equal(out, features)
    assert valid == 3
    out, _ = fit_length(features, 4, pad_value=-13.8)
    np.testing.assert_allclose(out[3], -13.8)


def test_fit_length_empty_needs_pad_value():
    with pytest.raises(ValueError, match="pad_value"):
        fit_length(np.zeros((0, 64), np.float32), 10)
    out, valid = fit_length(np.zeros((0, 64), np.float32), 10, pad_value=0.0)
    assert out.shape == (10, 64) and valid == 0
