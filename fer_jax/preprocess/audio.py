"""Audio features: log-mel spectrograms at a fixed frame rate, and fitting them to a fixed length.

Settings (defaults): 25 ms Hann windows every 10 ms (100 frames/s) on a 512-point FFT at 16 kHz,
64 Slaney-style mel bands (librosa's default scale and area normalisation) from 0 Hz to Nyquist,
power spectrum, natural log of (mel power + 1e-6).

Frames are centred (librosa's center=True, zero padding): frame k describes the 25 ms around
t = k * hop, which lines audio frame k up with video time k * 10 ms, and a wave of N samples gives
1 + N // hop frames. Zero padding (not reflection) keeps the edge frames from inventing signal.
"""

from __future__ import annotations

import librosa
import numpy as np

LOG_OFFSET = 1e-6  # floor of the log: silence maps to log(1e-6) ~ -13.8 instead of -inf


def frame_params(sample_rate: int, win_ms: float, hop_ms: float) -> tuple[int, int, int]:
    """(n_fft, win_length, hop_length) in samples; n_fft is the next power of two >= the window."""
    win_length = int(round(sample_rate * win_ms / 1000))
    hop_length = int(round(sample_rate * hop_ms / 1000))
    n_fft = 1 << max(0, (win_length - 1).bit_length())
    return n_fft, win_length, hop_length


def log_mel(
    wave: np.ndarray,
    sample_rate: int = 16000,
    n_mels: int = 64,
    win_ms: float = 25,
    hop_ms: float = 10,
    fmin: float = 0.0,
    fmax: float | None = None,
) -> np.ndarray:
    """Log-mel spectrogram (T_a, n_mels) float32 of a mono wave (N,), T_a = 1 + N // hop."""
    wave = np.asarray(wave, np.float32)
    if wave.ndim != 1:
        raise ValueError(f"log_mel expects a mono wave (N,), got shape {wave.shape}")
    n_fft, win_length, hop_length = frame_params(sample_rate, win_ms, hop_ms)
    mel = librosa.feature.melspectrogram(
        y=wave,
        sr=sample_rate,
        n_fft=n_fft,
        hop_length=hop_length,
        win_length=win_length,
        window="hann",
        center=True,
        pad_mode="constant",
        power=2.0,
        n_mels=n_mels,
        fmin=fmin,
        fmax=fmax,
    )
    return np.log(mel + LOG_OFFSET).T.astype(np.float32)


def fit_length(features: np.ndarray, num_frames: int, pad_value: float | None = None) -> tuple[np.ndarray, int]:
    """Crop or pad features (T_a, ...) along time to (num_frames, ...); also return the valid count.

    Cropping keeps the beginning. Padding appends rows of `pad_value`, by default the minimum of
    `features` (for a log-mel, the quietest value of the clip, i.e. "silence" rather than 0, which
    would be loud). The valid count, min(T_a, num_frames), lets a model mask the padding.
    """
    if num_frames < 0:
        raise ValueError(f"num_frames must be >= 0, got {num_frames}")
    features = np.asarray(features)
    valid = min(features.shape[0], num_frames)
    if features.shape[0] >= num_frames:
        return features[:num_frames], valid
    if pad_value is None:
        if features.size == 0:
            raise ValueError("cannot pad empty features with their minimum; pass pad_value")
        pad_value = features.min()
    pad = np.full((num_frames - features.shape[0],) + features.shape[1:], pad_value, features.dtype)
    return np.concatenate([features, pad]), valid
