"""One clip -> one aligned-clip example: the preprocessing every corpus builder calls.

`process_clip(source, config)` takes a video file, a folder of image frames or a list of image
files; `process_frames(frames, config, name=...)` takes frames already in memory. Both return a
plain dict of NumPy arrays and Python scalars, and are module-level functions of picklable
arguments, so a `multiprocessing` pool can map them over a corpus. `ClipConfig.record_spec()`
says which arrays a config produces, with their fixed shapes and dtypes.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from fer_jax.errors import ConfigError, InputError
from fer_jax.preprocess import align, audio, face, mhi, photometric, sources, temporal

# log_mel's default hop; audio features run at 1000 / HOP_MS frames per second.
HOP_MS = 10
AUDIO_FEATURES = ("log_mel", "log_mel_deltas", "linear_spectrogram", "waveform_image")

# The no-face policy, stated once (every path that meets a frame without a face follows it):
#   * No face in any frame the clip keeps: the clip is rejected with InputError reason "no_face",
#     which builders count in their report; it is never stored with made-up crops.
#   * Some kept frames without a face: each such frame keeps its own pixels and its own place in
#     time, and is cropped with the landmarks of the nearest kept frame that has a face (the
#     earlier one on ties); its stored landmarks are those borrowed ones, mapped into its crop.
#   Frames are never dropped, duplicated or reordered because a face is missing, so anything a
#   builder ties to time (valence per frame, onset/apex/offset indices) stays aligned with them.
NO_FACE_POLICY = "borrow_nearest_landmarks_keep_time"


@dataclasses.dataclass(frozen=True)
class ClipConfig:
    """How a clip is turned into arrays; saved with the records so inference can repeat it.

    Frames:
        num_frames           frames kept per clip (temporal.sample_indices: first and last kept)
        size                 side of the square aligned face crop, pixels
        grayscale            crops (size, size, 1) if True else (size, size, 3) RGB
        upsample             detector upsampling: faces down to 80 / 2**upsample px are found
        detector             "hog" (dlib) or "haar" (OpenCV's frontal-face cascade, landmarks still
                             dlib's); see fer_jax.preprocess.face
        box_scale            crop window scale: 1.0 the tight canonical crop, 1.25 shows 25% more
                             around the face (eyes keep their canonical spots, proportionally)
        gamma                gamma correction of whole frames before detection and cropping,
                             out = 255 (in / 255) ** (1 / gamma); 1.0 = off, 1.5 brightens (AFEW)
        gamma_if_dark_below  None: apply gamma to every clip. A number: only to clips whose mean
                             BT.601 luma (0..255, over the kept frames) is below it
        variable_length      False: exactly num_frames frames. True: all frames of clips up to
                             max_frames long, longer ones evenly subsampled to max_frames, zero-
                             padded to max_frames, and a "frame_mask" output marks the real ones
        max_frames           frame budget when variable_length
        store_frame_indices  add "frame_indices": the source frame index of each kept frame
        lemhi                add "lemhi", the landmark-enhanced motion history image of the kept
                             aligned frames (fer_jax.preprocess.mhi), with lemhi_threshold (grey
                             levels), lemhi_alpha (boost at a landmark) and lemhi_sigma (Gaussian
                             width as a fraction of size)
    Audio (only when need_audio):
        need_audio           False: no audio outputs, and sources without audio are fine
        sample_rate          audio resampled to this rate, mono
        audio_seconds        audio features cover this duration from the start (cropped/padded)
        n_mels               mel bands of "log_mel" and "log_mel_deltas"
        audio_features       which of AUDIO_FEATURES to compute:
                               log_mel             (A, n_mels) float32, 25 ms windows, 10 ms hop
                               log_mel_deltas      (A, n_mels, 3) float32: log-mel, delta, delta-delta
                               linear_spectrogram  (A, linear_bins) float32 log magnitude, 40 ms / 10 ms
                               waveform_image      (256, 256, 1) uint8 picture of the waveform
                             with A = log_mel_frames = audio_seconds * 100.

    Every default reproduces the original pipeline's output exactly.
    """

    num_frames: int = 8
    size: int = 64
    grayscale: bool = True
    sample_rate: int = 16000
    n_mels: int = 64
    audio_seconds: float = 2.0
    need_audio: bool = True
    upsample: int = 1
    detector: str = "hog"
    box_scale: float = 1.0
    gamma: float = 1.0
    gamma_if_dark_below: float | None = None
    variable_length: bool = False
    max_frames: int = 32
    store_frame_indices: bool = False
    audio_features: tuple[str, ...] = ("log_mel",)
    lemhi: bool = False
    lemhi_threshold: float = 12.0
    lemhi_alpha: float = 1.0
    lemhi_sigma: float = 0.04

    def __post_init__(self):
        object.__setattr__(self, "audio_features", tuple(self.audio_features))
        problems = []
        if self.detector not in face.DETECTORS:
            problems.append(f"detector={self.detector!r} is not one of {face.DETECTORS}")
        unknown = [f for f in self.audio_features if f not in AUDIO_FEATURES]
        if unknown:
            problems.append(f"audio_features {unknown} unknown; choose from {AUDIO_FEATURES}")
        for name in ("num_frames", "size", "max_frames", "sample_rate", "n_mels"):
            if getattr(self, name) < 1:
                problems.append(f"{name}={getattr(self, name)} must be >= 1")
        for name in ("box_scale", "gamma", "audio_seconds", "lemhi_sigma"):
            if not getattr(self, name) > 0:
                problems.append(f"{name}={getattr(self, name)} must be > 0")
        if self.upsample < 0:
            problems.append(f"upsample={self.upsample} must be >= 0")
        if problems:
            raise ConfigError("ClipConfig: " + "; ".join(problems))

    @property
    def log_mel_frames(self) -> int:
        """Rows of the time-framed audio outputs: audio_seconds at 100 frames/s."""
        return int(round(self.audio_seconds * 1000 / HOP_MS))

    @property
    def clip_frames(self) -> int:
        """Frames per stored clip: max_frames if variable_length, else num_frames."""
        return self.max_frames if self.variable_length else self.num_frames

    def record_spec(self) -> dict[str, tuple[tuple[int, ...], type]]:
        """{output name: (shape, NumPy dtype)} of every array output this config produces."""
        t, s = self.clip_frames, self.size
        spec = {
            "frames": ((t, s, s, 1 if self.grayscale else 3), np.uint8),
            "landmarks": ((t, face.NUM_LANDMARKS, 2), np.float32),
        }
        if self.variable_length:
            spec["frame_mask"] = ((t,), np.bool_)
        if self.store_frame_indices:
            spec["frame_indices"] = ((t,), np.int32)
        if self.lemhi:
            spec["lemhi"] = ((s, s, 1), np.uint8)
        if self.need_audio:
            a = self.log_mel_frames
            shapes = {
                "log_mel": (a, self.n_mels),
                "log_mel_deltas": (a, self.n_mels, 3),
                "linear_spectrogram": (a, audio.linear_bins(self.sample_rate)),
                "waveform_image": (audio.WAVEFORM_IMAGE_SIZE, audio.WAVEFORM_IMAGE_SIZE, 1),
            }
            for name in self.audio_features:
                spec[name] = (shapes[name], np.uint8 if name == "waveform_image" else np.float32)
            spec["audio_frames"] = ((), np.int32)
        return spec


def nearest_found(found: np.ndarray) -> np.ndarray:
    """For each frame (T,), the index of the nearest frame where `found` is True (ties: earlier).

    This is the landmark borrowing of NO_FACE_POLICY. Raises ValueError when no frame is found.
    """
    found = np.asarray(found, bool)
    hits = np.flatnonzero(found)
    if hits.size == 0:
        raise ValueError("no frame has a face")
    frames = np.arange(found.size)
    after = np.clip(np.searchsorted(hits, frames), 0, hits.size - 1)  # first hit >= frame
    before = np.clip(after - 1, 0, hits.size - 1)
    take_before = np.abs(frames - hits[before]) <= np.abs(hits[after] - frames)
    return np.where(take_before, hits[before], hits[after])


def select_frames(num_source: int, config: ClipConfig) -> tuple[np.ndarray, int]:
    """(source indices (config.clip_frames,) int64, how many of them are real frames).

    Fixed length: temporal.sample_indices(num_source, num_frames), all real. Variable length:
    every frame of a clip up to max_frames long, else max_frames evenly spaced ones, then padding
    entries (index -1) up to max_frames.
    """
    if not config.variable_length:
        return temporal.sample_indices(num_source, config.num_frames), config.num_frames
    if num_source <= config.max_frames:
        real = np.arange(num_source, dtype=np.int64)
    else:
        real = temporal.sample_indices(num_source, config.max_frames)
    padding = np.full(config.max_frames - real.size, -1, np.int64)
    return np.concatenate([real, padding]), real.size


def audio_outputs(wave: np.ndarray, config: ClipConfig) -> dict:
    """The requested audio features of a mono wave (N,) at config.sample_rate, fitted to
    config.log_mel_frames rows, plus "audio_frames": how many rows are real audio."""
    rows = config.log_mel_frames
    hop = audio.frame_params(config.sample_rate, 25, HOP_MS)[2]
    out = {}
    if "log_mel" in config.audio_features or "log_mel_deltas" in config.audio_features:
        mel = audio.log_mel(wave, config.sample_rate, config.n_mels, hop_ms=HOP_MS)
        fitted, _ = audio.fit_length(mel, rows)
        if "log_mel" in config.audio_features:
            out["log_mel"] = fitted
        if "log_mel_deltas" in config.audio_features:
            # Deltas of the real frames only; padding is silence, which does not change: 0.
            channels = [fitted] + [audio.fit_length(audio.deltas(mel, order), rows, 0.0)[0] for order in (1, 2)]
            out["log_mel_deltas"] = np.stack(channels, axis=-1).astype(np.float32)
    if "linear_spectrogram" in config.audio_features:
        spectrogram = audio.linear_spectrogram(wave, config.sample_rate, hop_ms=HOP_MS)
        out["linear_spectrogram"] = audio.fit_length(spectrogram, rows)[0]
    if "waveform_image" in config.audio_features:
        num_samples = int(round(config.audio_seconds * config.sample_rate))
        out["waveform_image"] = audio.waveform_image(wave, num_samples)
    out["audio_frames"] = int(min(1 + len(wave) // hop, rows))  # centred frames: 1 + N // hop
    return out


def _pad_rows(rows: np.ndarray, total: int) -> np.ndarray:
    """rows (n, ...) followed by zero rows up to (total, ...)."""
    if rows.shape[0] == total:
        return rows
    return np.concatenate([rows, np.zeros((total - rows.shape[0],) + rows.shape[1:], rows.dtype)])


def uses_gamma(config: ClipConfig, luma: float | None) -> bool:
    """Whether frames of mean BT.601 `luma` (0..255) are gamma-corrected (ClipConfig.gamma and
    gamma_if_dark_below): the one rule for a clip's kept frames, a stream's window and a frame.
    `luma` may be None where the config has no gamma_if_dark_below."""
    return config.gamma != 1.0 and (config.gamma_if_dark_below is None or luma < config.gamma_if_dark_below)


def record_arrays(crops: np.ndarray, landmarks: np.ndarray, frame_indices: np.ndarray, config: ClipConfig,
                  wave: np.ndarray | None = None) -> dict:
    """The arrays a record stores for one clip, from its kept frames once aligned: what the corpus
    builders (`process_clip`) and predict (`fer_jax.infer.stream`) both make.

    crops (n, size, size, C) uint8 and landmarks (n, 68, 2) of the n real kept frames, in order;
    frame_indices (clip_frames,) the source frame of each row, -1 for padding; wave: the mono
    samples at config.sample_rate the audio features are made from (None: no audio outputs).
    Returns frames and landmarks zero-padded to config.clip_frames rows, and frame_mask,
    frame_indices, lemhi and the audio features where the config asks for them.
    """
    num_real = len(crops)
    out = {
        "frames": _pad_rows(crops, config.clip_frames),
        "landmarks": _pad_rows(np.asarray(landmarks, np.float32), config.clip_frames),
    }
    if config.variable_length:
        out["frame_mask"] = np.arange(config.clip_frames) < num_real
    if config.store_frame_indices:
        out["frame_indices"] = np.asarray(frame_indices, np.int32)
    if config.lemhi:
        gray = crops if config.grayscale else np.stack([cv2.cvtColor(c, cv2.COLOR_RGB2GRAY) for c in crops])
        out["lemhi"] = mhi.lemhi(gray, np.asarray(landmarks, np.float32), threshold=config.lemhi_threshold,
                                 alpha=config.lemhi_alpha, sigma=config.lemhi_sigma * config.size)
    if wave is not None:
        out.update(audio_outputs(wave, config))
    return out


def _gamma_corrected(frames: dict, config: ClipConfig) -> tuple[dict, bool]:
    dark_matters = config.gamma != 1.0 and config.gamma_if_dark_below is not None
    if not uses_gamma(config, photometric.mean_luma(frames.values()) if dark_matters else None):
        return frames, False
    return {i: photometric.apply_gamma(f, config.gamma) for i, f in frames.items()}, True


def _process(source: sources.FrameSource, config: ClipConfig) -> dict:
    # Audio first: cheap, so a file without it fails before the slow tracking.
    wave = source.read_audio(config.sample_rate) if config.need_audio else None

    num_source = source.count()
    indices, num_real = select_frames(num_source, config)
    unique = sorted(set(indices[:num_real].tolist()))
    kept, gamma_applied = _gamma_corrected(source.frames_at(unique), config)

    track = face.track_face((kept[i] for i in unique), upsample=config.upsample, detector=config.detector)
    if not track.found.any():
        raise InputError(
            source.name,
            "no_face",
            f"no face found ({config.detector} detector) in the {len(unique)} kept frames of {num_source} "
            f"(upsample={config.upsample}); faces smaller than 80 / 2**upsample px need a larger upsample",
        )
    # NO_FACE_POLICY: frames without a face borrow the landmarks of the nearest one with a face.
    row_of = {frame_index: row for row, frame_index in enumerate(unique)}
    landmark_row = nearest_found(track.found)
    aligned = [
        align.align_face(
            kept[index], track.landmarks[landmark_row[row_of[index]]], config.size, config.grayscale, config.box_scale
        )
        for index in indices[:num_real].tolist()
    ]
    example = record_arrays(np.stack([crop for crop, _ in aligned]), np.stack([points for _, points in aligned]),
                            indices, config, wave)
    example["num_source_frames"] = num_source
    example["face_found_fraction"] = float(track.found.mean())  # of the distinct kept frames
    if config.gamma != 1.0:
        example["gamma_applied"] = gamma_applied
    return example


def process_clip(source, config: ClipConfig = ClipConfig()) -> dict:
    """Decode, track, align, sample and extract audio features for one clip.

    source: a video file path, a folder of image frames (image files sorted by natural name
    order, img2 before img10), a list of image file paths in frame order, or a
    `sources.FrameSource`. Image sequences have no audio (need_audio=True raises "no_audio").

    Returns a dict with every array of `config.record_spec()`:
        frames               (T, size, size, C) uint8 aligned faces, C = 1 or 3, T = config.clip_frames
        landmarks            (T, 68, 2) float32 in crop pixel coordinates (0 in padding rows)
        frame_mask           (T,) bool, True for real frames                (if variable_length)
        frame_indices        (T,) int32 source frame of each row, -1 padding (if store_frame_indices)
        lemhi                (size, size, 1) uint8                          (if lemhi)
        log_mel, log_mel_deltas, linear_spectrogram, waveform_image          (as audio_features)
        audio_frames         int, audio rows that are real audio, not padding (if need_audio)
    and, not stored in records:
        num_source_frames    int, frames in the source
        face_found_fraction  float, share of the distinct kept frames where a face was found/tracked
        gamma_applied        bool, whether gamma correction was applied      (if gamma != 1)

    Only the kept frames are decoded into memory and tracked: the detector runs on the first of
    them (and again when dlib's correlation tracker loses the face), the shape predictor on each.
    Tracking every source frame would cost about three times as much and change nothing stored.
    Frames without a face follow NO_FACE_POLICY (this module): they keep their own pixels and
    time, and borrow the crop window of the nearest kept frame with a face.

    Raises InputError: reason "no_face" when no kept frame has a face, "no_audio" when
    need_audio and there is no audio, and the reading reasons of `fer_jax.preprocess.sources`.
    """
    return _process(sources.open_source(source), config)


def process_frames(frames: np.ndarray, config: ClipConfig = ClipConfig(), *, name: str = "<frames>") -> dict:
    """`process_clip` for frames already in memory: (T, H, W, 3) uint8 RGB (or gray (T, H, W[, 1])).

    A single image is a clip of T = 1, which frame sampling repeats to num_frames. `name` is what
    errors call the clip (e.g. "fer2013.csv:row 17"). In-memory frames have no audio, so
    need_audio=True raises InputError "no_audio".
    """
    return _process(sources.InMemoryFrames(frames, name), config)
