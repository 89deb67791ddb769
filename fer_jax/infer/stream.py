"""A video of any length -> model-ready windows, per face, holding only a window's worth of crops.

Each decoded frame is tracked (`tracks.FaceTracker`), each face in it aligned at once by the
records' own `align_face` (size, colour, box_scale from the saved ClipConfig) and only the small
aligned crop is kept, in a ring of the last `window` frames per track; the frame itself is then
dropped. Windows start every `stride` frames and hold `window` consecutive frames; from those the
model's frames are picked as the records picked them (`clip.select_frames`: first and last kept).

Frames without a face are gaps, never filled in: a window is emitted for a track only when that
track has a face in every frame it keeps. (The records borrow a neighbour's landmarks for such
frames, NO_FACE_POLICY; a prediction over a face that is not there would be a guess.)

Audio-visual models get the audio features of `clip.audio_seconds` from the window's start, made
by the records' own `clip.record_arrays`, from an `AudioStream`.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterator

import numpy as np

from fer_jax.errors import ConfigError
from fer_jax.infer.audio_stream import AudioStream
from fer_jax.infer.limits import Budget, Limits
from fer_jax.infer.tracks import FaceTracker
from fer_jax.preprocess import align, photometric, video
from fer_jax.preprocess.clip import AUDIO_FEATURES, ClipConfig, record_arrays, select_frames, uses_gamma

AUDIO_KEYS = frozenset(AUDIO_FEATURES) | {"audio_frames"}


@dataclasses.dataclass
class _FaceFrame:
    index: int
    time: float
    box: np.ndarray  # (4,) in frame pixels
    crop: np.ndarray  # (size, size, C) uint8
    crop_gamma: np.ndarray | None  # the crop of the gamma-corrected frame, when the config has gamma
    landmarks: np.ndarray  # (68, 2) float32, crop pixels
    luma: float  # mean BT.601 luma of the whole frame


@dataclasses.dataclass
class Window:
    """`window` consecutive frames of one face, ready for the model."""

    track_id: int
    start_frame: int
    end_frame: int  # inclusive
    start_time: float
    end_time: float  # the end of the last frame
    box: np.ndarray  # (4,) the face box in the window's middle frame
    inputs: dict  # {record feature: array}, shapes of clip.record_spec() (the keys the model reads)


@dataclasses.dataclass
class StreamStats:
    """What the stream saw, filled in as it runs."""

    fps: float = 0.0
    num_frames: int = 0
    duration: float = 0.0
    frames_with_face: int = 0
    no_face_spans: list = dataclasses.field(default_factory=list)  # [[start_s, end_s]], frames with no face
    frame_boxes: list = dataclasses.field(default_factory=list)  # per frame: [(track_id, box)], for annotation
    detections: int = 0


def window_inputs(frames: list[_FaceFrame], clip: ClipConfig, keys, wave: np.ndarray | None) -> dict:
    """The arrays of `keys` for one window's frames, made as a record's are (`clip.record_arrays`)."""
    indices, num_real = select_frames(len(frames), clip)
    kept = [frames[i] for i in indices[:num_real]]
    use_gamma = uses_gamma(clip, float(np.mean([f.luma for f in kept])))
    crops = np.stack([f.crop_gamma if use_gamma else f.crop for f in kept])
    source_indices = np.array([frames[i].index if i >= 0 else -1 for i in indices], np.int32)
    out = record_arrays(crops, np.stack([f.landmarks for f in kept]), source_indices, clip, wave)
    spec = clip.record_spec()
    return {k: np.asarray(out[k], spec[k][1]) for k in keys}


def check_keys(clip: ClipConfig, keys) -> None:
    """Refuse a model that reads features its preprocessing config does not make."""
    missing = [k for k in keys if k not in clip.record_spec()]
    if missing:
        raise ConfigError(f"the model reads {missing}, which its preprocessing config does not make "
                          f"(it makes {sorted(clip.record_spec())})")


def iter_windows(path, clip: ClipConfig, keys, *, window: int, stride: int, all_faces: bool = False,
                 stats: StreamStats | None = None, budget: Budget | None = None) -> Iterator[Window]:
    """Windows of every followed face of the video at `path`, in order of their last frame.

    keys: the record features the model reads. Raises InputError for unreadable files (see
    `fer_jax.preprocess.video`) and, when `keys` holds audio features, "no_audio" up front.
    budget: the limits checked on the header and on every frame, and the flag that stops the work
    (`fer_jax.infer.limits`; default no limits, frames over 720p downscaled for detection).
    """
    check_keys(clip, keys)
    if window < 1 or stride < 1:
        raise ConfigError(f"window ({window}) and stride ({stride}) must be at least 1 frame")
    stats = stats if stats is not None else StreamStats()
    budget = budget if budget is not None else Budget(Limits())
    with video.open_media(path) as container:  # the header's rate; replaced by the measured one as frames come
        stream = video.video_stream(container, path)
        budget.check_stream(path, container, stream)  # before a frame is decoded
        stats.fps = video.frame_rate(stream)
    needs_audio = bool(AUDIO_KEYS & set(keys))
    audio = AudioStream(path, clip.sample_rate) if needs_audio else None  # no audio: fails before any decoding
    maker = WindowMaker(clip, keys, window=window, stride=stride, all_faces=all_faces, stats=stats, audio=audio,
                        detect_pixels=budget.limits.detect_pixels)
    first_time = None
    try:
        for index, (frame, time) in enumerate(video.iter_video_frames(path)):
            first_time = time if first_time is None else first_time
            time -= first_time
            budget.check_frame(path, index, time, frame.shape)
            if index and time > 0:
                stats.fps = index / time  # the mean rate so far (a header's rate can be wrong)
            yield from maker.add(frame, index, time)
        yield from maker.finish()
    finally:
        if audio is not None:
            audio.close()


class WindowMaker:
    """Frames in, in order (`add`), windows out as they complete; `finish` at the end of a video.

    Keeps, per followed face, only the aligned crops of its last `window` frames. keep_boxes: record
    every frame's face boxes in `stats.frame_boxes` (for annotating a file; not for a live stream,
    where they would grow without end)."""

    def __init__(self, clip: ClipConfig, keys, *, window: int, stride: int, all_faces: bool, stats: StreamStats,
                 audio: AudioStream | None = None, detect_pixels: int | None = None, keep_boxes: bool = True):
        self.clip, self.keys, self.window, self.stride, self.stats = clip, keys, window, stride, stats
        self.audio, self.keep_boxes = audio, keep_boxes
        self.tracker = FaceTracker(clip.upsample, clip.detector, all_faces, detect_pixels=detect_pixels)
        self.rings: dict[int, collections.deque] = {}
        self.gap_start = None
        self.last_time = 0.0

    def add(self, frame: np.ndarray, index: int, time: float) -> Iterator[Window]:
        """frame: (H, W, 3) uint8 RGB, the `index`-th (from 0, consecutive), at `time` seconds."""
        clip, stats = self.clip, self.stats
        stats.num_frames = index + 1
        self.last_time = time
        luma = photometric.mean_luma([frame]) if clip.gamma != 1.0 else 0.0
        detect_on = frame
        if uses_gamma(clip, luma):
            detect_on = photometric.apply_gamma(frame, clip.gamma)  # as the records: detect on the corrected frame
        faces = self.tracker.update(detect_on)
        stats.detections = self.tracker.detections
        if self.keep_boxes:
            stats.frame_boxes.append([(f.track_id, f.box.tolist()) for f in faces])
        if faces:
            stats.frames_with_face += 1
            if self.gap_start is not None:
                stats.no_face_spans.append([self.gap_start, time])
                self.gap_start = None
        elif self.gap_start is None:
            self.gap_start = time
        for f in faces:
            crop, points = align.align_face(frame, f.landmarks, clip.size, clip.grayscale, clip.box_scale)
            crop_gamma = None
            if clip.gamma != 1.0:  # the window decides later (its mean luma) which of the two it uses
                corrected = detect_on if detect_on is not frame else photometric.apply_gamma(frame, clip.gamma)
                crop_gamma = align.align_face(corrected, f.landmarks, clip.size, clip.grayscale, clip.box_scale)[0]
            ring = self.rings.setdefault(f.track_id, collections.deque(maxlen=self.window))
            ring.append(_FaceFrame(index, time, f.box, crop, crop_gamma, points, luma))
        start = index - self.window + 1
        if start >= 0 and start % self.stride == 0:
            yield from _complete_windows(self.rings, start, index, clip, self.keys, self.audio, stats)
        for track_id in [t for t, ring in self.rings.items() if ring[-1].index <= index - self.window]:
            del self.rings[track_id]  # a face gone for a whole window: nothing of it can complete one

    def finish(self) -> Iterator[Window]:
        """The end of the video: its duration, a last gap, and a video shorter than one window."""
        stats = self.stats
        if stats.num_frames:
            end = _frame_end(self.last_time, stats)
            stats.duration = end
            if self.gap_start is not None:
                stats.no_face_spans.append([self.gap_start, end])
        if 0 < stats.num_frames < self.window:
            # A video shorter than one window is one window of all its frames, from which the
            # model's frames are picked as a short record's are (repeated); the face in every one.
            yield from _complete_windows(self.rings, 0, stats.num_frames - 1, self.clip, self.keys, self.audio, stats,
                                         length=stats.num_frames)


def _frame_end(last_time: float, stats: StreamStats) -> float:
    return last_time + (1.0 / stats.fps if stats.fps else 0.0)


def _complete_windows(rings, start, end, clip, keys, audio, stats, length=None) -> Iterator[Window]:
    for track_id, ring in sorted(rings.items()):
        if len(ring) < (length or ring.maxlen) or ring[0].index != start:
            continue  # the face is missing from some frame of this window: a gap, not a guess
        frames = list(ring)
        wave = audio.samples(frames[0].time, clip.audio_seconds) if audio is not None else None
        if wave is not None and wave.size == 0:
            continue  # the sound ended before this window: audio-visual models cannot use it
        yield Window(track_id, start, end, frames[0].time, _frame_end(frames[-1].time, stats),
                     frames[len(frames) // 2].box, window_inputs(frames, clip, keys, wave))
