"""Brightness corrections applied to whole frames before detection and cropping.

Gamma correction brightens dark footage (AFEW's film clips; its baselines use gamma = 1.5):

    out = round(255 * (in / 255) ** (1 / gamma))        in, out uint8; gamma > 1 brightens

done through a 256-entry lookup table computed in float64, so every pixel is the correctly rounded
value of the formula. Luma is ITU-R BT.601 (0.299 R + 0.587 G + 0.114 B), as OpenCV's RGB2GRAY.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np


@functools.lru_cache(maxsize=16)
def gamma_table(gamma: float) -> np.ndarray:
    """(256,) uint8 lookup table of the gamma formula in the module docstring."""
    if gamma <= 0:
        raise ValueError(f"gamma must be positive, got {gamma}")
    levels = np.arange(256, dtype=np.float64) / 255.0
    table = np.clip(np.rint(255.0 * levels ** (1.0 / gamma)), 0, 255).astype(np.uint8)
    table.flags.writeable = False
    return table


def apply_gamma(image: np.ndarray, gamma: float) -> np.ndarray:
    """Gamma-correct a uint8 image of any shape (each channel alike); returns a new uint8 array."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"apply_gamma expects uint8 pixels, got {image.dtype}")
    return gamma_table(float(gamma))[image]


def mean_luma(frames) -> float:
    """Mean BT.601 luma (0..255) over all pixels of an iterable of (H, W, 3) RGB uint8 frames.

    Frames of different sizes weigh by their pixel counts.
    """
    total, pixels = 0.0, 0
    for frame in frames:
        gray = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY) if frame.ndim == 3 else frame
        total += float(gray.sum(dtype=np.float64))
        pixels += gray.size
    if pixels == 0:
        raise ValueError("mean_luma of no pixels")
    return total / pixels
