"""`fer-jax predict --live SOURCE`: the emotion of each face in a live video, kept in real time.

SOURCE: a camera (`0` or `/dev/video0`, through V4L2), a stream URL (rtsp://, http://, anything
FFmpeg opens), `-` for a stream piped on stdin (e.g. `ffmpeg ... -f yuv4mpegpipe - |`), or a
file, played at its own frame rate as if it were live.

A reader thread decodes frames as they arrive and leaves only the newest in a one-frame mailbox;
the processing loop takes it when it is ready for the next. So when processing falls behind,
frames are dropped (counted), never queued, and a prediction is never more than about one frame's
processing behind the source. The faces are followed and windows made exactly as for a file
(`stream.WindowMaker`, over the frames processed); each completed window is predicted at once and
a console line shows the current emotion per face.

The real-time factor is the processing rate (frames processed per second of processing) over the
source's frame rate: above 1, every frame can be processed as it comes.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
import time

import av
import numpy as np

from fer_jax.errors import ConfigError, InputError
from fer_jax.infer.limits import DETECT_PIXELS
from fer_jax.infer.predict import default_stride, value_name
from fer_jax.infer.stream import AUDIO_KEYS, StreamStats, WindowMaker, check_keys
from fer_jax.preprocess import face


class LatestFrame:
    """A one-frame mailbox: `put` replaces a frame not yet taken (counted as dropped)."""

    def __init__(self):
        self._changed = threading.Condition()
        self._item = None
        self.ended = False
        self.error: Exception | None = None
        self.received = self.dropped = 0

    def put(self, item) -> None:
        with self._changed:
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self.received += 1
            self._changed.notify()

    def close(self, error: Exception | None = None) -> None:
        with self._changed:
            self.ended, self.error = True, error
            self._changed.notify()

    def take(self):
        """The newest frame, waiting for one; None once the source has ended."""
        with self._changed:
            while self._item is None and not self.ended:
                self._changed.wait()
            item, self._item = self._item, None
            if item is None and self.error is not None:
                raise self.error
            return item


@dataclasses.dataclass
class LiveStats:
    received: int = 0  # frames the source delivered
    processed: int = 0
    dropped: int = 0  # replaced in the mailbox before they could be processed
    windows: int = 0  # predictions made
    source_fps: float = 0.0
    seconds: float = 0.0  # wall time from the first frame
    busy_seconds: float = 0.0  # of it, processing
    latencies: list = dataclasses.field(default_factory=list)  # s, a window's last frame's arrival -> its output

    @property
    def processing_fps(self) -> float:
        return self.processed / self.busy_seconds if self.busy_seconds else 0.0

    @property
    def real_time_factor(self) -> float:
        return self.processing_fps / self.source_fps if self.source_fps else 0.0

    def to_json(self) -> dict:
        latency = np.asarray(self.latencies or [0.0])
        return {"received": self.received, "processed": self.processed, "dropped": self.dropped,
                "windows": self.windows, "source_fps": round(self.source_fps, 3), "seconds": round(self.seconds, 3),
                "processing_fps": round(self.processing_fps, 2), "real_time_factor": round(self.real_time_factor, 3),
                "latency_ms_p50": round(1e3 * float(np.median(latency)), 1),
                "latency_ms_max": round(1e3 * float(latency.max()), 1)}

    def summary(self) -> str:
        j = self.to_json()
        return (f"{j['processed']} of {j['received']} frames processed ({j['dropped']} dropped) in "
                f"{j['seconds']:.1f} s; source {j['source_fps']:.1f} fps, processing {j['processing_fps']:.1f} fps: "
                f"real-time factor {j['real_time_factor']:.2f}; {j['windows']} predictions, "
                f"latency p50 {j['latency_ms_p50']:.0f} ms, max {j['latency_ms_max']:.0f} ms")


def open_source(source, format: str | None = None):
    """An av container for SOURCE (module docstring), or a readable binary file object (a pipe)."""
    try:
        if source == "-":
            return av.open(sys.stdin.buffer, format=format)
        if not isinstance(source, str):
            return av.open(source, format=format)
        if source.isdigit() or source.startswith("/dev/video"):
            return av.open(f"/dev/video{source}" if source.isdigit() else source, format=format or "v4l2")
        return av.open(source, format=format)
    except av.error.FFmpegError as e:
        raise InputError(str(source), "undecodable", f"cannot open the live source ({e})") from None


def _is_file(source) -> bool:
    return isinstance(source, str) and source != "-" and os.path.isfile(source)


def _read(container, mailbox: LatestFrame, pace: bool) -> None:
    """Decode every frame as it comes; with `pace` (a file), no faster than its timestamps."""
    try:
        stream = container.streams.video[0]
        start = first = None
        for frame in container.decode(stream):
            seconds = float(frame.time) if frame.time is not None else 0.0
            if pace:
                start, first = (time.monotonic(), seconds) if start is None else (start, first)
                delay = start + (seconds - first) - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            mailbox.put((frame, time.monotonic(), seconds))
        mailbox.close()
    except Exception as e:  # the processing loop raises it
        mailbox.close(e)


def warm_up(model) -> None:
    """Load dlib's detector and landmark model and compile the model (seconds each), so that it
    happens before a stream starts, not on its first face."""
    face.detect_faces(np.zeros((64, 64), np.uint8), 0, model.clip.detector)
    face.landmarks(np.zeros((64, 64), np.uint8), face.Box(8, 8, 56, 56))
    spec = model.clip.record_spec()
    model.predict([{k: np.zeros(*spec[k]) for k in model.keys}])


def run_live(source, model, *, window: int | None = None, stride: int | None = None, all_faces: bool = False,
             detect_pixels: int | None = DETECT_PIXELS, format: str | None = None, max_seconds: float | None = None,
             out=None, print_every: float = 0.5) -> LiveStats:
    """Predict on SOURCE until it ends (or `max_seconds`), printing the current emotion per face to
    `out` (default stdout) at most every `print_every` seconds; returns the stream's LiveStats."""
    out = out or sys.stdout
    check_keys(model.clip, model.keys)
    if AUDIO_KEYS & set(model.keys):
        raise ConfigError("--live reads video only; this model also needs audio features")
    window = model.clip.clip_frames if window is None else window
    stride = default_stride(window) if stride is None else stride
    warm_up(model)
    container = open_source(source, format)
    stats = LiveStats(source_fps=float(container.streams.video[0].average_rate or 0.0))
    mailbox = LatestFrame()
    reader = threading.Thread(target=_read, args=(container, mailbox, _is_file(source)), daemon=True,
                              name="fer-jax-live-reader")
    reader.start()
    maker = WindowMaker(model.clip, model.keys, window=window, stride=stride, all_faces=all_faces,
                        stats=StreamStats(), detect_pixels=detect_pixels, keep_boxes=False)
    current: dict[int, str] = {}
    started = last_print = None
    end = "\r" if getattr(out, "isatty", lambda: False)() else "\n"
    try:
        while (item := mailbox.take()) is not None:
            frame, arrival, seconds = item
            began = time.monotonic()
            started = started or arrival
            windows = list(maker.add(frame.to_ndarray(format="rgb24"), stats.processed, seconds))
            if windows:
                outputs = model.predict([w.inputs for w in windows])
                current = {w.track_id: _describe(o, model) for w, o in zip(windows, outputs)}
                stats.latencies.append(time.monotonic() - arrival)
                stats.windows += len(windows)
            stats.processed += 1
            stats.busy_seconds += time.monotonic() - began
            now = time.monotonic()
            if last_print is None or now - last_print >= print_every:
                last_print = now
                faces = " | ".join(f"face {t}: {d}" for t, d in sorted(current.items())) or "no face yet"
                print(f"{seconds:7.1f} s  {faces}  ({stats.real_time_factor:.2f}x real time, "
                      f"{mailbox.dropped} dropped)", end=end, file=out, flush=True)
            if max_seconds is not None and now - started > max_seconds:
                break
    finally:
        stats.received, stats.dropped = mailbox.received, mailbox.dropped
        stats.seconds = time.monotonic() - started if started else 0.0
        if not stats.source_fps and stats.seconds:
            stats.source_fps = stats.received / stats.seconds  # no rate in the header: the measured one
        if end == "\r":
            print(file=out)
        if not reader.is_alive():  # (a reader still blocked on a pipe keeps its container)
            container.close()
    return stats


def _describe(output: np.ndarray, model) -> str:
    if model.task == "classification":
        top = int(np.argmax(output))
        return f"{model.class_names[top]} {float(output[top]):.2f}"
    return f"{value_name(model.task)} {float(np.mean(output)):+.2f}"
