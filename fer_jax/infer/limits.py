"""What one prediction may cost, checked as early as it can be, and a way to stop it from outside.

A video's cost is set by its frames, not its bytes: ten black 4096x4096 H.264 frames fit in a few
kilobytes and take minutes and gigabytes to decode and search for faces. So `Budget` checks the
stream's header before any frame is decoded (frame size, declared frame count and duration), then
every decoded frame again (headers can lie), and the time spent so far; and it carries a
cancellation flag that the server sets when the client disconnects or the server shuts down.

Each refusal is an InputError naming the limit and the option that raises it:
    frame_too_large   a frame over `max_pixels`                     (HTTP 413)
    too_long          over `max_frames` frames or `max_video_seconds` (HTTP 413)
    too_slow          over `max_processing_seconds` of work          (HTTP 422)
"""

from __future__ import annotations

import dataclasses
import threading
import time

from fer_jax.errors import FerJaxError, InputError

# Frames larger than this are downscaled before face detection and tracking (the aligned crops are
# still cut from the full frame): 1280x720. A face the detector finds at 720p gives a crop far
# larger than any model's input, and detection costs grow with the pixels.
DETECT_PIXELS = 1280 * 720


@dataclasses.dataclass(frozen=True)
class Limits:
    """None: no limit. The command-line option of each field is `--` + its name with dashes."""

    max_pixels: int | None = None  # width x height of one decoded frame
    max_frames: int | None = None  # decoded frames per video
    max_video_seconds: float | None = None  # the video's own duration
    max_processing_seconds: float | None = None  # wall-clock time to predict it (queueing included)
    detect_pixels: int | None = DETECT_PIXELS  # larger frames are downscaled to this for detection

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


# The service's defaults: a 4K UHD frame, 10 minutes of video at up to 60 fps, 5 minutes of work.
SERVE_LIMITS = Limits(max_pixels=3840 * 2160, max_frames=36000, max_video_seconds=600.0,
                      max_processing_seconds=300.0)
# The service's bound on requests in flight, its shutdown deadline, and where its token may come from
# (here, not in serve.py, so the command line knows them without importing the server).
DEFAULT_MAX_REQUESTS = 8
DEFAULT_SHUTDOWN_SECONDS = 10.0
TOKEN_ENV = "FER_JAX_TOKEN"


def option(field: str) -> str:
    return "--" + field.replace("_", "-")


class Cancelled(FerJaxError):
    """The work for a request was stopped from outside (its client left, or the server is stopping)."""


class Budget:
    """One prediction's limits, its clock (started at construction) and its cancellation flag."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self.started = time.monotonic()
        self._cancelled = threading.Event()
        self.cancel_reason = ""

    def cancel(self, reason: str) -> None:
        self.cancel_reason = self.cancel_reason or reason
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def check_time(self, path) -> None:
        """Raise Cancelled when cancelled, InputError "too_slow" past the processing time."""
        if self._cancelled.is_set():
            raise Cancelled(f"{path}: stopped: {self.cancel_reason}")
        limit = self.limits.max_processing_seconds
        if limit is not None and time.monotonic() - self.started > limit:
            raise _refusal(path, "too_slow", f"processing took longer than the limit of {limit:g} s",
                           "max_processing_seconds")

    def check_stream(self, path, container, stream) -> None:
        """Refuse from the header, before any frame is decoded."""
        context = stream.codec_context
        self.check_size(path, context.width or 0, context.height or 0)
        if self.limits.max_frames is not None and (stream.frames or 0) > self.limits.max_frames:
            raise _refusal(path, "too_long", f"its header declares {stream.frames} frames, over the limit of "
                           f"{self.limits.max_frames}", "max_frames")
        seconds = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else (
            container.duration / 1e6 if container.duration else 0.0)
        self.check_video_time(path, seconds, "its header declares")

    def check_frame(self, path, index: int, seconds: float, shape) -> None:
        """Each decoded frame: its size, the count and time so far, cancellation and the clock."""
        self.check_time(path)
        self.check_size(path, shape[1], shape[0])
        if self.limits.max_frames is not None and index + 1 > self.limits.max_frames:
            raise _refusal(path, "too_long", f"more than the limit of {self.limits.max_frames} frames",
                           "max_frames")
        self.check_video_time(path, seconds, "it runs to")

    def check_size(self, path, width: int, height: int) -> None:
        limit = self.limits.max_pixels
        if limit is not None and width * height > limit:
            raise _refusal(path, "frame_too_large", f"frames of {width}x{height} = {width * height} pixels are "
                           f"over the limit of {limit} pixels per frame", "max_pixels")

    def check_video_time(self, path, seconds: float, said: str) -> None:
        limit = self.limits.max_video_seconds
        if limit is not None and seconds > limit:
            raise _refusal(path, "too_long", f"{said} {seconds:.1f} s of video, over the limit of {limit:g} s",
                           "max_video_seconds")


def _refusal(path, reason: str, what: str, field: str) -> InputError:
    return InputError(path, reason, f"{what} ({option(field)} raises it)")


def detection_scale(height: int, width: int, detect_pixels: int | None) -> float:
    """The factor (<= 1) that brings a frame down to at most `detect_pixels` pixels."""
    if detect_pixels is None or height * width <= detect_pixels:
        return 1.0
    return (detect_pixels / (height * width)) ** 0.5
