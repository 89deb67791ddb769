"""Landmark-enhanced motion history image (LEMHI), after Hu et al. 2019 (LEMHI-CNN).

One picture that summarises where and how recently a face moved: a motion history image over the
aligned grayscale frames F_0 .. F_{T-1} (float64 grey levels), in which frame differences near the
facial landmarks are boosted, so that small movements of the parts that carry an expression (brows,
eyelids, lips) register while the same change elsewhere stays below the threshold.

    D_t(x) = |F_t(x) - F_{t-1}(x)|                                   t = 1 .. T-1
    W_t(x) = 1 + alpha * max_k exp(-|x - p_{t,k}|^2 / (2 sigma^2))    p_{t,k}: the 68 landmarks of frame t
    H_0(x) = 0
    H_t(x) = tau                  if W_t(x) * D_t(x) > threshold
             max(0, H_{t-1}(x) - 1)  otherwise
    LEMHI  = round(255 * H_{T-1} / tau),  tau = T - 1               (size, size, 1) uint8

so the latest motion is 255, motion k steps older 255 * (tau - k) / tau, and no motion 0. A clip of
one frame has no motion: all zeros. x are pixel centres (x = column, y = row), as the landmarks.

The weight map takes the maximum over landmarks rather than the sum: the mouth has 20 points and
an eye 6 within a few pixels, and a sum would boost those regions several times more than the brows
for no reason but point density; with the maximum every landmark boosts by at most 1 + alpha.

Parameters (ClipConfig.lemhi_*): threshold in grey levels, alpha the boost at a landmark, sigma
in pixels (ClipConfig gives it as a fraction of the crop side, so it scales with the crop).
"""

from __future__ import annotations

import numpy as np


def landmark_weights(landmarks: np.ndarray, size: int, alpha: float, sigma: float) -> np.ndarray:
    """W(x) (size, size) float64 = 1 + alpha * max_k exp(-|x - p_k|^2 / (2 sigma^2)) for landmarks (K, 2)."""
    landmarks = np.asarray(landmarks, np.float64)
    grid = np.arange(size, dtype=np.float64)
    # Separable: exp(-(dx^2 + dy^2) / 2s^2) = exp(-dx^2 / 2s^2) * exp(-dy^2 / 2s^2); (K, size) each.
    gx = np.exp(-((grid[None, :] - landmarks[:, :1]) ** 2) / (2 * sigma**2))
    gy = np.exp(-((grid[None, :] - landmarks[:, 1:]) ** 2) / (2 * sigma**2))
    bumps = np.einsum("ky,kx->kyx", gy, gx)
    return 1.0 + alpha * bumps.max(axis=0)


def lemhi(
    frames: np.ndarray,
    landmarks: np.ndarray,
    threshold: float = 12.0,
    alpha: float = 1.0,
    sigma: float = 2.5,
) -> np.ndarray:
    """LEMHI (size, size, 1) uint8 of aligned gray frames (T, size, size[, 1]) uint8 and their
    landmarks (T, 68, 2) in crop pixels; see the module docstring for the formula."""
    frames = np.asarray(frames)
    if frames.ndim == 4:
        if frames.shape[-1] != 1:
            raise ValueError(f"lemhi expects gray frames (T, H, W[, 1]), got shape {frames.shape}")
        frames = frames[..., 0]
    if frames.ndim != 3 or frames.shape[1] != frames.shape[2]:
        raise ValueError(f"lemhi expects square frames (T, size, size), got shape {frames.shape}")
    count, size = frames.shape[0], frames.shape[1]
    if count == 0:
        raise ValueError("lemhi of no frames")
    tau = count - 1
    history = np.zeros((size, size), np.float64)
    if tau == 0:
        return np.zeros((size, size, 1), np.uint8)
    pixels = frames.astype(np.float64)
    for t in range(1, count):
        motion = np.abs(pixels[t] - pixels[t - 1]) * landmark_weights(landmarks[t], size, alpha, sigma)
        history = np.where(motion > threshold, float(tau), np.maximum(history - 1.0, 0.0))
    return np.rint(255.0 * history / tau).astype(np.uint8)[..., None]
