"""Frame sources: where a clip's frames (and audio) come from, behind one small interface.

`process_clip` only asks a source three things: how many frames it has, the frames at some
indices, and its audio. Three kinds exist:

    VideoFile       a media file decoded with PyAV (`fer_jax.preprocess.video`)
    ImageSequence   image files, one frame each (a folder of them, or an explicit list)
    ZipImages       image members of a zip archive, one frame each (BP4D+ ships a zip per subject)
    InMemoryFrames  a (T, H, W, 3) uint8 array already in memory (e.g. FER2013's csv pixels)

`open_source` picks one from what a builder passes. Frames always come out as (H, W, 3) uint8 RGB.
Errors a user's files can cause are `InputError`s naming the file (see `video` for the reasons;
image files add none: a missing image is "missing", an empty one "zero_byte", anything OpenCV
cannot decode "undecodable"; a damaged zip archive is "truncated"). Image sequences, zipped images
and in-memory frames have no audio: their `read_audio` raises reason "no_audio".
"""

from __future__ import annotations

import abc
import contextlib
import os
import re
import zipfile
import zlib
from collections.abc import Sequence

import cv2
import numpy as np

from fer_jax.errors import InputError
from fer_jax.preprocess import video

# What a folder of frames may hold (lower-case suffixes); anything else in it (a .txt label, a
# Thumbs.db) is not a frame and is left alone, as are hidden files and sub-folders.
IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".dib", ".tif", ".tiff", ".pgm", ".ppm", ".pbm", ".pnm", ".webp", ".jp2"}
)


def natural_key(name: str) -> tuple:
    """Sort key that orders digit runs by value: img2 < img10, frame_009 < frame_010; case-insensitive."""
    parts = re.split(r"(\d+)", name)  # alternates text, digits, text, ...: position types always agree
    return tuple(int(p) if i % 2 else p.lower() for i, p in enumerate(parts)), name


class FrameSource(abc.ABC):
    """A clip's frames, addressed by index 0 .. count() - 1, and its audio."""

    name: str  # what errors and reports call this clip (a path where there is one)

    @abc.abstractmethod
    def count(self) -> int:
        """Number of frames; raises InputError (reason "no_frames") when there are none."""

    @abc.abstractmethod
    def frames_at(self, indices: Sequence[int]) -> dict[int, np.ndarray]:
        """{index: frame (H, W, 3) uint8 RGB} for the distinct `indices`, which must be < count()."""

    def read_audio(self, sample_rate: int) -> np.ndarray:
        """Mono float32 waveform (N,) at `sample_rate`; this default is for sources without audio."""
        message = f"{type(self).__name__} sources have no audio; set need_audio=False in the ClipConfig"
        raise InputError(self.name, "no_audio", message)


class VideoFile(FrameSource):
    """A media file. Frames are decoded twice (count, then keep the wanted ones), so memory stays
    bounded by the wanted frames; decoding is cheap next to face detection."""

    def __init__(self, path):
        self.path = path
        self.name = str(path)

    def count(self) -> int:
        with contextlib.closing(video.iter_video_frames(self.path)) as frames:
            return sum(1 for _ in frames)

    def frames_at(self, indices):
        wanted = set(int(i) for i in indices)
        kept = {}
        with contextlib.closing(video.iter_video_frames(self.path)) as frames:
            for frame_index, (frame, _) in enumerate(frames):
                if frame_index in wanted:
                    kept[frame_index] = frame
                    if len(kept) == len(wanted):
                        break
        if len(kept) != len(wanted):  # the second decode must see the same frames as the first
            message = f"second decoding pass ended early ({len(kept)} of {len(wanted)} wanted frames found)"
            raise InputError(self.path, "truncated", message)
        return kept

    def read_audio(self, sample_rate: int) -> np.ndarray:
        return video.read_audio(self.path, sample_rate)


def read_image(path) -> np.ndarray:
    """One image file as (H, W, 3) uint8 RGB: gray is repeated, alpha dropped, 16-bit scaled to 8.

    Read through `cv2.imdecode`, so any format OpenCV reads works, whatever characters the path
    holds; EXIF orientation is applied (OpenCV's default).
    """
    if not os.path.isfile(path):
        raise InputError(path, "missing", "image file not found; check the path and the corpus folder layout")
    return decode_image(np.fromfile(path, np.uint8), path)


def decode_image(data: np.ndarray, path: str) -> np.ndarray:
    """The bytes (uint8 (N,)) of an image file named `path` as (H, W, 3) uint8 RGB (see read_image)."""
    if data.size == 0:
        raise InputError(path, "zero_byte", "image file is empty (0 bytes); the copy or download probably failed")
    try:
        bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    except cv2.error as err:
        bgr, detail = None, str(err).strip().splitlines()[-1]
    else:
        detail = "OpenCV returned nothing"
    if bgr is None:
        raise InputError(path, "undecodable", f"not an image OpenCV can decode ({detail}); re-copy it from the source")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


class ImageSequence(FrameSource):
    """Image files in the given order, one frame each; only the wanted ones are ever decoded."""

    def __init__(self, paths: Sequence, name: str | None = None):
        self.paths = [os.fspath(p) for p in paths]
        if name is None:
            name = os.path.commonpath(self.paths) if self.paths else "<empty image list>"
        self.name = str(name)

    @classmethod
    def from_folder(cls, folder) -> "ImageSequence":
        """The image files directly in `folder` (see IMAGE_EXTENSIONS), in natural name order."""
        names = [
            entry.name
            for entry in os.scandir(folder)
            if entry.is_file() and not entry.name.startswith(".")
            and os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS
        ]
        names.sort(key=natural_key)
        return cls([os.path.join(folder, n) for n in names], name=str(folder))

    def count(self) -> int:
        if not self.paths:
            extensions = " ".join(sorted(IMAGE_EXTENSIONS))
            raise InputError(self.name, "no_frames", f"no image files ({extensions}) to read frames from")
        return len(self.paths)

    def frames_at(self, indices):
        return {int(i): read_image(self.paths[int(i)]) for i in indices}


class ZipImages(FrameSource):
    """Image members of a zip archive in the given order, one frame each; only the wanted ones are
    read and decoded. A member is named `archive:member` in errors."""

    def __init__(self, archive, members: Sequence[str], name: str | None = None):
        self.archive = os.fspath(archive)
        self.members = list(members)
        self.name = str(name or self.archive)

    def count(self) -> int:
        if not self.members:
            raise InputError(self.name, "no_frames", "no image members to read frames from")
        return len(self.members)

    def frames_at(self, indices):
        out = {}
        try:
            with zipfile.ZipFile(self.archive) as archive:
                for i in indices:
                    member = self.members[int(i)]
                    out[int(i)] = decode_image(np.frombuffer(archive.read(member), np.uint8), f"{self.archive}:{member}")
        except FileNotFoundError:
            raise InputError(self.name, "missing", f"zip archive {self.archive} not found") from None
        except (zipfile.BadZipFile, zlib.error, EOFError, KeyError) as err:
            raise InputError(self.name, "truncated", f"the zip archive is damaged ({err}); re-copy it from the source") from None
        return out


class InMemoryFrames(FrameSource):
    """Frames already decoded: (T, H, W, 3) uint8 RGB, or gray (T, H, W) / (T, H, W, 1)."""

    def __init__(self, frames: np.ndarray, name: str = "<frames>"):
        frames = np.asarray(frames)
        if frames.dtype != np.uint8:
            raise ValueError(f"{name}: frames must be uint8, got {frames.dtype}")
        if frames.ndim == 3:
            frames = frames[..., None]
        if frames.ndim != 4 or frames.shape[-1] not in (1, 3):
            raise ValueError(f"{name}: frames must be (T, H, W, 3) or (T, H, W[, 1]), got shape {frames.shape}")
        self.frames = np.repeat(frames, 3, axis=-1) if frames.shape[-1] == 1 else frames
        self.name = str(name)

    def count(self) -> int:
        if len(self.frames) == 0:
            raise InputError(self.name, "no_frames", "the frame array is empty (T = 0)")
        return len(self.frames)

    def frames_at(self, indices):
        return {int(i): self.frames[int(i)] for i in indices}


def open_source(source) -> FrameSource:
    """A FrameSource for what `process_clip` was given: a FrameSource (returned as is), a folder
    of image frames, a video file path, or a list/tuple of image file paths."""
    if isinstance(source, FrameSource):
        return source
    if isinstance(source, (str, os.PathLike)):
        return ImageSequence.from_folder(source) if os.path.isdir(source) else VideoFile(source)
    if isinstance(source, (list, tuple)):
        return ImageSequence(source)
    if isinstance(source, np.ndarray):
        raise TypeError("process_clip takes paths; pass in-memory frames to process_frames(frames, config, name=...)")
    kind = type(source).__name__
    raise TypeError(f"cannot read frames from a {kind}; pass a video path, a folder or a list of image paths")
