"""Temporal normalisation: pick a fixed number of frames from a clip of any length."""

from __future__ import annotations

import numpy as np


def sample_indices(num_frames: int, length: int) -> np.ndarray:
    """Indices (length,) int64 of `length` frames from a clip of `num_frames`, in order.

    As in the 3D-CNN + ConvLSTM paper, the first and last frames are always kept (an expression's
    onset and apex/offset both matter) and the others are taken at equal intervals between them:
    round(linspace(0, num_frames - 1, length)), rounding halves up so that spacing does not depend
    on NumPy's round-half-to-even. A clip shorter than `length` repeats frames; the indices stay
    non-decreasing, so time never runs backwards. With length == 1 only the first frame is kept.
    """
    if num_frames <= 0:
        raise ValueError(f"cannot sample frames from an empty clip (num_frames={num_frames})")
    if length <= 0:
        raise ValueError(f"length must be positive, got {length}")
    if length == 1:
        return np.zeros(1, np.int64)
    # Integer arithmetic: floor(i (n - 1) / (L - 1) + 1/2) exactly. Via floating-point linspace,
    # exact halves (e.g. n = 16, L = 23) came out a hair below .5 and were rounded down.
    i = np.arange(length, dtype=np.int64)
    return (2 * i * (num_frames - 1) + (length - 1)) // (2 * (length - 1))
