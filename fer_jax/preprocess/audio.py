"""Audio features: log-mel spectrograms (with deltas), linear spectrograms, waveform pictures, and
fitting them to a fixed length.

Settings (defaults): 25 ms Hann windows every 10 ms (100 frames/s) on a 512-point FFT at 16 kHz,
64 Slaney-style mel bands (librosa's default scale and area normalisation) from 0 Hz to Nyquist,
power spectrum, natural log of (mel power + 1e-6).

Frames are centred (librosa's center=True, zero padding): frame k describes the 25 ms around
t = k * hop, which lines audio frame k up with video time k * 10 ms, and a wave of N samples gives
1 + N // hop frames. Zero padding (not reflection) keeps the edge frames from inventing signal.

Deltas (`deltas`) are librosa.feature.delta's: the slope (order 1) or second derivative (order 2)
of a least-squares polynomial of that order fitted over `width` frames around each frame (a
Savitzky-Golay derivative), with the edge frames taking the fit of the first/last full window.

The linear spectrogram uses 40 ms Hann windows every 10 ms (n_fft 1024 at 16 kHz: 513 bins),
centred the same way, as log(|STFT| + 1e-6): a log magnitude, not power.
"""

from __future__ import annotations

import librosa
import numpy as np

LOG_OFFSET = 1e-6  # floor of the log: silence maps to log(1e-6) ~ -13.8 instead of -inf
DELTA_WIDTH = 9  # frames per delta fit (librosa's default): +-40 ms at 100 frames/s
LINEAR_WIN_MS = 40
WAVEFORM_IMAGE_SIZE = 256


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


def deltas(features: np.ndarray, order: int = 1, width: int = DELTA_WIDTH) -> np.ndarray:
    """Delta features (T_a, F) float32 of features (T_a, F) along time, as librosa.feature.delta.

    order 1: slope of the least-squares line over the `width` frames centred on each frame; order
    2: second derivative of the least-squares parabola. Frames within width // 2 of an end take
    the value of the first/last full window (for a fit of degree `order`, its order-th derivative
    is constant, which is what librosa's mode="interp" evaluates there). Clips shorter than
    `width` frames use the largest odd width that fits; fewer than 3 frames give zeros.
    """
    features = np.asarray(features, np.float64)
    if order not in (1, 2):
        raise ValueError(f"delta order must be 1 or 2, got {order}")
    if width < 3 or width % 2 == 0:
        raise ValueError(f"delta width must be odd and >= 3, got {width}")
    frames = features.shape[0]
    width = min(width, frames if frames % 2 else frames - 1)
    if width < order + 1 or width < 3:
        return np.zeros(features.shape, np.float32)
    half = width // 2
    n = np.arange(-half, half + 1, dtype=np.float64)
    if order == 1:
        weights = n / np.sum(n**2)
    else:  # 2 * (coefficient of the orthogonal basis n^2 - mean(n^2))
        centred = n**2 - np.mean(n**2)
        weights = 2.0 * centred / np.sum(centred**2)
    windows = np.lib.stride_tricks.sliding_window_view(features, width, axis=0)  # (T - width + 1, F, width)
    inner = windows @ weights
    out = np.concatenate([np.repeat(inner[:1], half, axis=0), inner, np.repeat(inner[-1:], half, axis=0)])
    return out.astype(np.float32)


def linear_spectrogram(wave: np.ndarray, sample_rate: int = 16000, win_ms: float = LINEAR_WIN_MS, hop_ms: float = 10):
    """log(|STFT| + 1e-6) (T_a, n_fft // 2 + 1) float32 of a mono wave (N,), T_a = 1 + N // hop.

    Hann window of win_ms, zero-padded to n_fft (the next power of two) around its centre; frames
    centred on k * hop with zero padding at the ends, as `log_mel`.
    """
    wave = np.asarray(wave, np.float32)
    if wave.ndim != 1:
        raise ValueError(f"linear_spectrogram expects a mono wave (N,), got shape {wave.shape}")
    n_fft, win_length, hop_length = frame_params(sample_rate, win_ms, hop_ms)
    spectrum = librosa.stft(
        wave, n_fft=n_fft, hop_length=hop_length, win_length=win_length, window="hann", center=True, pad_mode="constant"
    )
    return np.log(np.abs(spectrum) + LOG_OFFSET).T.astype(np.float32)


def linear_bins(sample_rate: int = 16000, win_ms: float = LINEAR_WIN_MS) -> int:
    """Frequency bins of `linear_spectrogram` at this rate: n_fft // 2 + 1."""
    return frame_params(sample_rate, win_ms, 10)[0] // 2 + 1


def waveform_image(wave: np.ndarray, num_samples: int, size: int = WAVEFORM_IMAGE_SIZE) -> np.ndarray:
    """The waveform drawn as a picture: (size, size, 1) uint8, white trace (255) on black (0).

    The first `num_samples` samples (zeros past the end of `wave`: silence draws a flat line) span
    the width, amplitude +1 .. -1 the rows top to bottom (values beyond are clipped), at a fixed
    scale so that loud and quiet clips look different. Sample i sits at row
    round((1 - a_i) / 2 * (size - 1)). Column c holds samples floor(c * num_samples / size) up to
    the next column's first (at least that first one); it lights every row between the lowest and
    highest of them and of the sample just before them, so the trace stays connected. That is a
    line plot of a signal with far more samples than pixels, drawn the way audio editors draw one.
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be positive, got {num_samples}")
    wave = np.asarray(wave, np.float64).reshape(-1)[:num_samples]
    wave = np.pad(wave, (0, num_samples - wave.size))
    rows = np.rint((1.0 - np.clip(wave, -1.0, 1.0)) / 2.0 * (size - 1)).astype(np.int64)
    starts = (np.arange(size, dtype=np.int64) * num_samples) // size
    # reduceat: min/max over rows[starts[c] : starts[c + 1]], or rows[starts[c]] where that is empty.
    previous = rows[np.maximum(starts - 1, 0)]
    low = np.minimum(np.minimum.reduceat(rows, starts), previous)
    high = np.maximum(np.maximum.reduceat(rows, starts), previous)
    grid = np.arange(size)[:, None]
    image = ((grid >= low[None, :]) & (grid <= high[None, :])).astype(np.uint8) * 255
    return image[..., None]
