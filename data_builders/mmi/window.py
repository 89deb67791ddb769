"""A stretch of a video as a frame source: the onset -> apex frames of an MMI recording.

`process_clip` takes any `sources.FrameSource`; this one shows frames [start, stop) of a video
file as frames 0 .. stop - start - 1. It lives in a module of its own, apart from the builder,
so that the spawned preprocessing workers that unpickle it import only this and `fer_jax`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools

from fer_jax.errors import InputError
from fer_jax.preprocess import sources, video


@dataclasses.dataclass(frozen=True)
class VideoWindow(sources.FrameSource):
    """Frames [start, stop) of the video at `path` (0-based decoding order)."""

    path: str
    start: int
    stop: int

    def __post_init__(self):
        if not 0 <= self.start < self.stop:
            raise ValueError(f"{self.path}: empty or negative frame window [{self.start}, {self.stop})")

    @property
    def name(self) -> str:
        return self.path

    def count(self) -> int:
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
        return {i: decoded[source_index] for i, source_index in wanted.items()}
