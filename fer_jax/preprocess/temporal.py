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
    positions = np.linspace(0.0, num_frames - 1, length)
    return np.floor(positions + 0.5).astype(np.int64)
