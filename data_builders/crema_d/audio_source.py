"""A CREMA-D video whose sound may have to come from its `AudioWAV/` twin.

CREMA-D ships each clip twice: `VideoFlash/<name>.flv` (picture and sound) and `AudioWAV/<name>.wav`
(the sound, 16 kHz). In some copies an FLV carries no usable sound (no audio stream, an empty one,
or digital silence); the WAV of the same name is then the clip's audio. This module is apart from
the builder so that the spawned preprocessing workers that unpickle a source import only it and
`fer_jax`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from fer_jax.errors import InputError
from fer_jax.preprocess import sources, video

# Below one step of 16-bit audio (1/32768): the FLV's track is digital silence, not a quiet voice.
SILENCE_PEAK = 1 / 32768


@dataclasses.dataclass(frozen=True)
class VideoWithWavAudio(sources.FrameSource):
    """Frames of the video at `path`; its audio, unless it has none usable, else the WAV's."""

    path: str
    wav: str

    @property
    def name(self) -> str:
        return self.path

    def count(self) -> int:
        return sources.VideoFile(self.path).count()

    def frames_at(self, indices):
        return sources.VideoFile(self.path).frames_at(indices)

    def read_audio(self, sample_rate: int) -> np.ndarray:
        try:
            wave = video.read_audio(self.path, sample_rate)
        except InputError as e:
            if e.reason != "no_audio":
                raise
        else:
            if wave.size and np.abs(wave).max() >= SILENCE_PEAK:
                return wave
        return video.read_audio(self.wav, sample_rate)
