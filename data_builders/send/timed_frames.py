"""A video's frames at chosen times, decoded on demand: how SEND is sampled at its 2 Hz ratings.

`TimedFrames` is a `fer_jax.preprocess.sources.FrameSource`, so `process_clip` runs on it as on any
clip (tracking, landmarks, alignment, NO_FACE_POLICY, audio features). Frame i of the source is
the frame on screen at `times[i]`: the last decoded frame whose timestamp is <= times[i] (the
first frame for times before it). Its audio starts at `audio_start_s`, so audio row j of the
log-mel (10 ms hop) is at audio_start_s + j / 100 s of the video.

Memory stays bounded however long the video is: `frames_at` hands back a mapping that decodes
forward as it is read and keeps only the current frame. `process_clip` reads the kept frames in
order twice (tracking, then alignment), so a video is decoded twice (three times with the audio),
holding one frame at a time instead of every kept frame at full resolution.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from fer_jax.errors import InputError
from fer_jax.preprocess import sources, video

# How far the last time may lie past the end of the video before the times (ratings) are taken to
# belong to another video: SEND's rating files can run a second or so past their video.
MAX_OVERRUN_S = 2.0
_EPS_S = 1e-6


def step_frame_times(step_times: np.ndarray, frames_per_step: int = 1, step_s: float = 0.5) -> np.ndarray:
    """(n * frames_per_step,) frame times for n rating steps.

    Step k stands for the `step_s` ending at its rating time t_k, (t_k - step_s, t_k]: what the
    observers had just watched when their dial was read. Its frames sit at the centres of
    frames_per_step equal parts of that span (one frame: t_k - step_s / 2).
    """
    if frames_per_step < 1:
        raise ValueError(f"frames_per_step must be >= 1, got {frames_per_step}")
    offsets = (np.arange(frames_per_step) + 0.5) / frames_per_step * step_s - step_s
    return (np.asarray(step_times, np.float64)[:, None] + offsets).reshape(-1)


def frames_at_times(path, times: Sequence[float], max_overrun_s: float = MAX_OVERRUN_S,
                    seek: bool = False) -> Iterator[np.ndarray]:
    """Yield the frame on screen at each of `times` (non-decreasing, seconds), in one decoding pass
    (from the start of the video, or with `seek` from the key frame at or before times[0]).

    Raises InputError "ratings_exceed_video" when a time lies more than max_overrun_s past the end
    of the video (those times cannot describe this video), and the reading errors of
    `fer_jax.preprocess.video` (missing, zero_byte, undecodable, truncated, ...).
    """
    k, previous, last_time, interval = 0, None, None, 0.0
    start_s = float(times[0]) if seek and len(times) else 0.0
    with contextlib.closing(video.iter_video_frames(path, start_s)) as frames:
        for frame, time in frames:
            while k < len(times) and time > times[k] + _EPS_S:
                yield frame if previous is None else previous  # times before the first frame get the first
                k += 1
            if k == len(times):
                return
            if last_time is not None:
                interval = time - last_time
            previous, last_time = frame, time
    end = last_time + interval  # the last frame stays on screen for one frame interval
    for t in times[k:]:
        if t > end + max_overrun_s:
            raise InputError(
                path, "ratings_exceed_video",
                f"a rating step at {t:.2f} s lies past the end of the video ({end:.2f} s); the ratings file "
                "probably belongs to another video",
            )
        yield previous


class _ForwardFrames(Mapping):
    """{index: frame} decoded as it is read, in one forward pass; asking for an index before the
    current one starts a new pass. Read in index order, it holds one frame at a time."""

    def __init__(self, source: "TimedFrames", indices):
        self._source = source
        self._indices = sorted({int(i) for i in indices})
        self._wanted = frozenset(self._indices)
        self._stream = None
        self._at, self._frame = None, None
        self.passes = 0

    def __len__(self):
        return len(self._indices)

    def __iter__(self):
        return iter(self._indices)

    def __getitem__(self, index):
        if index not in self._wanted:
            raise KeyError(index)
        if self._at is None or index < self._at:
            self._restart()
        while self._at != index:
            self._at, self._frame = next(self._stream)
        return self._frame

    def _restart(self):
        if self._stream is not None:
            self._stream.close()
        times = [self._source.times[i] for i in self._indices]
        frames = frames_at_times(self._source.path, times, self._source.max_overrun_s, self._source.seek)
        self._stream = _zip_frames(self._indices, frames)
        self._at, self._frame = None, None
        self.passes += 1


def _zip_frames(indices, frames):
    with contextlib.closing(frames):
        yield from zip(indices, frames)


class TimedFrames(sources.FrameSource):
    """The frames of the video at `path` on screen at `times` (seconds, non-decreasing), with its
    audio from `audio_start_s` on (zeros first if that is before the video starts). `seek`: decode
    from the key frame before the first wanted time (a short window of a long video, AVEC2013),
    not from the start (a whole video sampled throughout, SEND)."""

    def __init__(self, path, times, *, audio_start_s: float = 0.0, max_overrun_s: float = MAX_OVERRUN_S,
                 seek: bool = False):
        times = np.asarray(times, np.float64)
        if times.ndim != 1 or np.any(np.diff(times) < 0):
            raise ValueError(f"{path}: times must be a non-decreasing 1-D sequence")
        self.path = str(path)
        self.name = str(path)
        self.times = tuple(float(t) for t in times)
        self.audio_start_s = float(audio_start_s)
        self.max_overrun_s = float(max_overrun_s)
        self.seek = bool(seek)

    def count(self) -> int:
        if not self.times:
            raise InputError(self.name, "no_frames", "no times to take frames at")
        return len(self.times)

    def frames_at(self, indices) -> Mapping[int, np.ndarray]:
        return _ForwardFrames(self, indices)

    def read_audio(self, sample_rate: int) -> np.ndarray:
        wave = video.read_audio(self.path, sample_rate)
        start = int(round(self.audio_start_s * sample_rate))
        if start < 0:
            return np.concatenate([np.zeros(-start, np.float32), wave])
        if start >= len(wave):
            message = f"the audio ({len(wave) / sample_rate:.2f} s) ends before {self.audio_start_s:.2f} s, the first step"
            raise InputError(self.path, "no_audio", message)
        return wave[start:]
