"""A stretch of a video as a frame source: the onset -> apex frames of an MMI recording.

`process_clip` takes any `sources.FrameSource`; this one shows frames [start, stop) of a video
file as frames 0 .. stop - start - 1 (stop None: to the end of the video), turned a quarter turn
clockwise if asked (MMI's older frontal recordings are stored on their side). It lives in a module of its own, apart from the builder,
so that the spawned preprocessing workers that unpickle it import only this and `fer_jax`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools

import numpy as np

from fer_jax.errors import InputError
from fer_jax.preprocess import sources, video


@dataclasses.dataclass(frozen=True)
class VideoWindow(sources.FrameSource):
    """Frames [start, stop) of the video at `path` (0-based decoding order; stop None: to its end),
    rotated 90 degrees clockwise when `rotate_clockwise`."""

    path: str
    start: int
    stop: int | None
    rotate_clockwise: bool = False

    def __post_init__(self):
        if not (0 <= self.start and (self.stop is None or self.start < self.stop)):
            raise ValueError(f"{self.path}: empty or negative frame window [{self.start}, {self.stop})")

    @property
    def name(self) -> str:
        return self.path

    def count(self) -> int:
        if self.stop is None:
            available = sources.VideoFile(self.path).count()
            if available <= self.start:
                raise InputError(self.path, "truncated", f"the video has {available} frames; expected more than {self.start}")
            return available - self.start
        # Decode only as far as the window's end: MMI recordings go on to the offset and neutral.
        with contextlib.closing(video.iter_video_frames(self.path)) as frames:
            available = sum(1 for _ in itertools.islice(frames, self.stop))
        if available < self.stop:
            raise InputError(
                self.path,
                "truncated",
                f"the video has {available} frames, but its annotated onset -> apex window ends at frame "
                f"{self.stop - 1}; the file is probably cut short (re-copy it) or belongs to another session",
            )
        return self.stop - self.start

    def frames_at(self, indices):
        wanted = {int(i): self.start + int(i) for i in indices}
        decoded = sources.VideoFile(self.path).frames_at(sorted(set(wanted.values())))
        turn = (lambda frame: np.ascontiguousarray(np.rot90(frame, k=-1))) if self.rotate_clockwise else (lambda f: f)
        return {i: turn(decoded[source_index]) for i, source_index in wanted.items()}
