"""The audio track of a video, read forward in pieces, so memory does not grow with its length.

`fer_jax.preprocess.video.read_audio` reads a clip's whole track: right for a corpus clip of a few
seconds, not for an hour-long video. `AudioStream` gives the same waveform (channels averaged,
then soxr "HQ" resampling, here its streaming form) one time span at a time, and forgets samples
before the earliest span still to be asked for (spans must not start earlier than the last one).
"""

from __future__ import annotations

import av
import numpy as np
import soxr

from fer_jax.errors import InputError
from fer_jax.preprocess import video


class AudioStream:
    """Mono float32 samples at `sample_rate` of `path`'s first audio stream, by time span."""

    def __init__(self, path, sample_rate: int):
        video.check_file(path)
        self.path, self.sample_rate = path, sample_rate
        try:
            self._container = av.open(str(path))
        except av.error.FFmpegError as err:
            raise video.decode_error(path, err, opened=False) from None
        if not self._container.streams.audio:
            self._container.close()
            message = "file has no audio stream; this model is audio-visual and needs the video's sound"
            raise InputError(path, "no_audio", message)
        self._frames = self._container.decode(self._container.streams.audio[0])
        self._to_float = self._resampler = None
        self._buffer = np.zeros(0, np.float32)
        self._offset = 0  # sample index of _buffer[0]
        self._ended = False
        self._total = 0

    def close(self) -> None:
        self._container.close()

    def _pull(self) -> None:
        """Decode one more audio frame into the buffer (or mark the end)."""
        try:
            frame = next(self._frames)
        except StopIteration:
            frame = None
        except av.error.FFmpegError as err:
            raise video.decode_error(self.path, err, opened=True) from None
        if frame is None:
            self._ended = True
            pieces = [c.to_ndarray() for c in self._to_float.resample(None)] if self._to_float else []
            tail = self._mono(pieces, last=True) if self._resampler else np.zeros(0, np.float32)
            if self._total + tail.size == 0:
                raise InputError(self.path, "no_audio", "audio stream has no samples")
        else:
            if self._to_float is None:
                self._to_float = av.AudioResampler(format="fltp", layout=frame.layout, rate=frame.sample_rate)
                if frame.sample_rate != self.sample_rate:
                    self._resampler = soxr.ResampleStream(frame.sample_rate, self.sample_rate, 1, "float64", "HQ")
            tail = self._mono([c.to_ndarray() for c in self._to_float.resample(frame)], last=False)
        self._total += tail.size
        self._buffer = np.concatenate([self._buffer, tail])

    def _mono(self, pieces, last: bool) -> np.ndarray:
        # The same equal-weight downmix as read_audio, then the streaming resampler.
        wave = np.concatenate(pieces, axis=1).mean(axis=0, dtype=np.float64) if pieces else np.zeros(0)
        if self._resampler is not None:
            wave = self._resampler.resample_chunk(wave, last=last)
        return np.asarray(wave, np.float32)

    def samples(self, start_s: float, seconds: float) -> np.ndarray:
        """Samples from `start_s` for `seconds` (fewer at the end of the track; maybe none)."""
        start = max(0, int(round(start_s * self.sample_rate)))
        stop = start + int(round(seconds * self.sample_rate))
        if start < self._offset:
            raise ValueError(f"audio span at {start_s} s was already dropped; ask for spans in time order")
        while not self._ended and self._offset + self._buffer.size < stop:
            self._pull()
        out = self._buffer[start - self._offset: stop - self._offset].copy()
        drop = min(start - self._offset, self._buffer.size)
        self._buffer, self._offset = self._buffer[drop:], self._offset + drop
        return out
