"""BP4D+'s physiological signals, drawn where the other corpora draw their sound.

BP4D+ ships no audio. Its `Physiology/<subject>/<task>/` folders hold one text file per signal
(BP_mmHg.txt, Resp_Volts.txt, EDA_microsiemens.txt, ...), one value per line, covering the task's
recording. `SignalBeside` hands such a signal to the preprocessing in place of the sound, so the
face_waveform config's "waveform_image" pictures it: the whole task's signal, stretched over the
picture's width and scaled to fill its height.

This lives apart from the builder module because Beam pickles it to the workers, which import it
by name (see data_builders/beam_pipeline.py).
"""

from __future__ import annotations

import os

import numpy as np

from fer_jax.errors import InputError
from fer_jax.preprocess.sources import FrameSource


def read_signal(path) -> np.ndarray:
    """A signal file (one number per line; a first line that is not a number is a header) as (N,) float64."""
    if not os.path.isfile(path):
        raise InputError(path, "missing", "signal file not found; the task's Physiology folder lacks it")
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = [line.strip() for line in f if line.strip()]
    values = []
    for number, line in enumerate(lines):
        try:
            values.append(float(line))
        except ValueError:
            if number == 0:
                continue  # a header
            raise InputError(path, "bad_signal", f"not one number per line (line {number + 1}: {line[:40]!r})") from None
    signal = np.asarray(values, np.float64)
    if signal.size < 2 or not np.all(np.isfinite(signal)):
        raise InputError(path, "bad_signal", f"{signal.size} finite values; a signal needs at least 2, all finite")
    return signal


def stretched(signal: np.ndarray, num_samples: int) -> np.ndarray:
    """(num_samples,) float32: `signal` linearly resampled to span them, minus its mean, divided by
    its largest deviation (so it spans [-1, 1]; a flat signal stays 0)."""
    positions = np.linspace(0, signal.size - 1, num_samples)
    wave = np.interp(positions, np.arange(signal.size), signal)
    wave -= wave.mean()
    peak = np.abs(wave).max()
    return (wave / peak if peak > 0 else wave).astype(np.float32)


class SignalBeside(FrameSource):
    """A clip's frames (another FrameSource) with a physiological signal as its "audio": `read_audio`
    gives the signal in `signal_path` stretched over `seconds` at the asked sample rate."""

    def __init__(self, frames: FrameSource, signal_path: str, seconds: float):
        self.frames, self.signal_path, self.seconds = frames, str(signal_path), seconds
        self.name = frames.name

    def count(self) -> int:
        return self.frames.count()

    def frames_at(self, indices):
        return self.frames.frames_at(indices)

    def read_audio(self, sample_rate: int) -> np.ndarray:
        return stretched(read_signal(self.signal_path), int(round(self.seconds * sample_rate)))
