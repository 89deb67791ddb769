"""Decode video frames and audio samples from a media file with PyAV (FFmpeg).

Every failure a user's file can cause becomes an `InputError` naming the file, with a `reason`
key that corpus builders count in their reports:

    missing          the path does not exist or is not a file
    zero_byte        the file is empty
    undecodable      FFmpeg cannot read it as media (e.g. a text file renamed to .mp4)
    truncated        it starts like a media container but is cut short (or decoding fails mid-way)
    no_video_stream  a readable container without a video stream
    unsupported_codec  a stream whose codec this FFmpeg build has no decoder for
    no_frames        a video stream that decodes to no frames
    no_audio         no audio stream, or one with no samples (only `read_audio` raises this)

Frames are decoded one at a time, so `iter_video_frames` holds one frame in memory however long
the video is. Rotation metadata (the display matrix of phone videos) is applied, in multiples of
90 degrees, so frames come out as a player shows them and faces stand upright for the detector.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator

import av
import numpy as np
import soxr

from fer_jax.errors import InputError

# First bytes of containers FFmpeg reads. A file that starts like one of these but cannot be
# opened is most likely cut short (an MP4 written without `faststart` keeps its index, the
# `moov` atom, at the end, so any truncation makes it unopenable); anything else is "undecodable".
_CONTAINER_MAGIC = (
    (4, b"ftyp"),  # MP4 / MOV / M4A / 3GP
    (4, b"moov"),  # old QuickTime
    (4, b"mdat"),
    (4, b"wide"),
    (4, b"free"),
    (0, b"RIFF"),  # AVI / WAV
    (0, b"\x1a\x45\xdf\xa3"),  # Matroska / WebM
    (0, b"FLV"),
    (0, b"OggS"),
    (0, b"fLaC"),
    (0, b"ID3"),  # MP3 with a tag
    (0, b"\x00\x00\x01\xba"),  # MPEG program stream
    (0, b"\x30\x26\xb2\x75"),  # ASF / WMV
)


@dataclasses.dataclass
class VideoFrames:
    """A decoded video: frames (T, H, W, 3) uint8 RGB, fps, timestamps (T,) float64 seconds.

    `timestamps` are presentation times from the container (pts * time_base), so they need not
    start at 0; frames without a pts get index / fps.
    """

    frames: np.ndarray
    fps: float
    timestamps: np.ndarray


def check_file(path) -> None:
    """Raise InputError "missing" or "zero_byte" for a path that cannot be a media file."""
    if not os.path.isfile(path):
        raise InputError(path, "missing", "file not found; check the path and the corpus folder layout")
    if os.path.getsize(path) == 0:
        raise InputError(path, "zero_byte", "file is empty (0 bytes); the copy or download probably failed")


def _looks_like_container(path) -> bool:
    with open(path, "rb") as f:
        head = f.read(16)
    return any(head[offset : offset + len(magic)] == magic for offset, magic in _CONTAINER_MAGIC)


def decode_error(path, err: Exception, opened: bool) -> InputError:
    """Turn an FFmpeg error into an InputError; `opened` says whether the container header was read."""
    detail = getattr(err, "strerror", None) or str(err)  # FFmpeg's str() repeats the path
    if isinstance(err, av.error.DecoderNotFoundError):
        return _unsupported_codec(path, detail)
    if opened or _looks_like_container(path):
        return InputError(path, "truncated", f"media file is cut short or corrupt ({detail}); re-copy it from the source")
    return InputError(path, "undecodable", f"not a media file FFmpeg can read ({detail})")


@contextlib.contextmanager
def open_media(path):
    """av.open as a context manager, with file checks and FFmpeg errors turned into InputError."""
    check_file(path)
    try:
        container = av.open(os.fspath(path))
    except av.error.FFmpegError as err:
        raise decode_error(path, err, opened=False) from None
    try:
        yield container
    finally:
        container.close()


def _unsupported_codec(path, detail: str) -> InputError:
    message = f"no decoder for its codec in this FFmpeg build ({detail}); convert it, e.g. to H.264"
    return InputError(path, "unsupported_codec", message)


def _checked(stream, path):
    # An unknown codec (FourCC) leaves the stream without a codec context; say so before decoding.
    if stream.codec_context is None:
        tag = getattr(stream, "codec_tag", None) or "unknown"
        raise _unsupported_codec(path, f"{stream.type} codec tag {tag!r}")
    return stream


def video_stream(container, path):
    """The first video stream of an open container; InputError when there is none or no decoder for it."""
    if not container.streams.video:
        raise InputError(path, "no_video_stream", "file has no video stream (is it audio only?)")
    return _checked(container.streams.video[0], path)


def _upright(frame) -> np.ndarray:
    """(H, W, 3) uint8 RGB as displayed: turned by the display matrix's rotation, which FFmpeg gives
    as the angle (degrees) the picture is turned counterclockwise for display."""
    array = frame.to_ndarray(format="rgb24")
    quarter_turns = int(round((getattr(frame, "rotation", 0) or 0) / 90)) % 4
    return np.ascontiguousarray(np.rot90(array, k=quarter_turns)) if quarter_turns else array


def frame_rate(stream) -> float:
    """The stream's frame rate from its header (0.0 when the header has none)."""
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 0.0


def _decoded_frames(container, stream, path, whole: bool = True) -> Iterator[tuple[np.ndarray, float]]:
    """(frame (H, W, 3) uint8 RGB, timestamp s) for each frame of `stream`, in presentation order;
    `whole` False: the decoding starts after a seek, so fewer frames than declared is no truncation."""
    fps = frame_rate(stream)
    count = 0
    try:
        for frame in container.decode(stream):
            time = frame.time
            if time is None:
                time = count / fps if fps else float(count)
            yield _upright(frame), float(time)
            count += 1
    except av.error.FFmpegError as err:
        raise decode_error(path, err, opened=True) from None
    if count == 0:
        raise InputError(path, "no_frames", "video stream decodes to no frames; the file is probably truncated")
    # An MP4 with its index at the front ("faststart") opens fine when cut short, and FFmpeg then
    # just stops early; the frame count its index declares tells us frames are missing. Only
    # ISO-BMFF counts are exact: AVI headers, for one, count the empty frames of packed-B-frame
    # Xvid files that decode to nothing, so a short count there is no evidence of truncation.
    declared = stream.frames
    if whole and declared and count < declared and "mp4" in container.format.name:
        message = f"decoded {count} of the {declared} frames the container declares; the file is cut short"
        raise InputError(path, "truncated", message)


def iter_video_frames(path, start_s: float = 0.0) -> Iterator[tuple[np.ndarray, float]]:
    """Stream the first video stream of `path` as (frame (H, W, 3) uint8 RGB, timestamp s) pairs.

    Only one decoded frame is alive at a time. Errors (see the module docstring) are raised when
    the generator is first advanced or, for a file cut short, when the decoding reaches the cut.
    `start_s` > 0 seeks first, to the key frame at or before it, so the frames start at or before
    `start_s` (a window deep into a long video is read without decoding what comes before it).
    """
    with open_media(path) as container:
        stream = video_stream(container, path)
        if start_s > 0:
            try:
                container.seek(int(start_s / stream.time_base), stream=stream, backward=True)
            except av.error.FFmpegError as err:
                raise decode_error(path, err, opened=True) from None
        yield from _decoded_frames(container, stream, path, whole=start_s <= 0)


def read_video(path) -> VideoFrames:
    """Decode all frames of the first video stream of `path` into memory (see `VideoFrames`)."""
    with open_media(path) as container:
        stream = video_stream(container, path)
        fps = frame_rate(stream)
        frames, times = [], []
        for frame, time in _decoded_frames(container, stream, path):
            frames.append(frame)
            times.append(time)
    if not fps and len(times) > 1:  # no rate in the header: estimate it from the timestamps
        fps = (len(times) - 1) / (times[-1] - times[0]) if times[-1] > times[0] else 0.0
    return VideoFrames(np.stack(frames), fps, np.asarray(times, np.float64))


def duration_s(path) -> float:
    """The first video stream's duration in seconds, from the container's header (no decoding);
    decoded timestamps when the header has none."""
    with open_media(path) as container:
        stream = video_stream(container, path)
        if stream.duration and stream.time_base:
            return float(stream.duration * stream.time_base)
        if container.duration:
            return container.duration / av.time_base
        last = None
        for _, last in _decoded_frames(container, stream, path):
            pass
        return last + 1 / (frame_rate(stream) or 25.0)


def read_audio(path, sample_rate: int = 16000) -> np.ndarray:
    """The first audio stream of `path` as a mono float32 waveform (N,) in [-1, 1] at `sample_rate`.

    Channels are averaged (an explicit, equal-weight downmix, rather than FFmpeg's layout-
    dependent matrix), then resampled with soxr at "HQ" quality, the same resampler librosa uses
    by default, so features match what librosa.load would give. PyAV's resampler only converts
    the sample format to float here.
    """
    with open_media(path) as container:
        if not container.streams.audio:
            message = "file has no audio stream; audio-visual models need one (need_audio=False skips audio)"
            raise InputError(path, "no_audio", message)
        stream = _checked(container.streams.audio[0], path)
        source_rate = stream.rate
        # Converting to planar float at the source rate and layout normalises int16/int32/float/
        # double and packed/planar inputs into (channels, samples) float32 arrays.
        to_float = None
        chunks = []
        try:
            for frame in container.decode(stream):
                if to_float is None:
                    source_rate = frame.sample_rate
                    to_float = av.AudioResampler(format="fltp", layout=frame.layout, rate=source_rate)
                for converted in to_float.resample(frame):
                    chunks.append(converted.to_ndarray())
            if to_float is not None:
                for converted in to_float.resample(None):  # flush
                    chunks.append(converted.to_ndarray())
        except av.error.FFmpegError as err:
            raise decode_error(path, err, opened=True) from None
    if not chunks or sum(c.shape[1] for c in chunks) == 0:
        raise InputError(path, "no_audio", "audio stream has no samples")
    wave = np.concatenate(chunks, axis=1).mean(axis=0, dtype=np.float64)
    if source_rate != sample_rate:
        wave = soxr.resample(wave, source_rate, sample_rate, quality="HQ")
    return np.asarray(wave, np.float32)
