"""One video file -> one aligned-clip example: the preprocessing every corpus builder calls.

`process_clip` is a module-level function of (path, ClipConfig) returning a plain dict of NumPy
arrays and Python scalars, so a `multiprocessing` pool can map it over a corpus.
"""

from __future__ import annotations

import contextlib
import dataclasses

import numpy as np

from fer_jax.errors import InputError
from fer_jax.preprocess import align, audio, face, temporal, video

# log_mel's default hop; audio features run at 1000 / HOP_MS frames per second.
HOP_MS = 10


@dataclasses.dataclass(frozen=True)
class ClipConfig:
    """How a clip is turned into arrays; saved with the records so inference can repeat it."""

    num_frames: int = 8  # frames kept per clip (temporal.sample_indices)
    size: int = 64  # side of the square aligned face crop, pixels
    grayscale: bool = True  # crops (size, size, 1) if True else (size, size, 3) RGB
    sample_rate: int = 16000  # audio resampled to this rate, mono
    n_mels: int = 64
    audio_seconds: float = 2.0  # log-mel kept/padded to this duration from the start of the audio
    need_audio: bool = True  # False: no audio keys, and files without audio are fine
    upsample: int = 1  # dlib detector upsampling; 1 finds faces down to ~40 px

    @property
    def log_mel_frames(self) -> int:
        """Rows of the "log_mel" output: audio_seconds at 100 frames/s."""
        return int(round(self.audio_seconds * 1000 / HOP_MS))


def nearest_found(found: np.ndarray) -> np.ndarray:
    """For each frame (T,), the index of the nearest frame where `found` is True (ties: earlier).

    Raises ValueError when no frame is found.
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


def process_clip(path, config: ClipConfig = ClipConfig()) -> dict:
    """Decode, track, align, sample and extract audio features for the video at `path`.

    Returns a dict:
        frames               (num_frames, size, size, C) uint8 aligned faces, C = 1 or 3
        landmarks            (num_frames, 68, 2) float32 in crop pixel coordinates
        num_source_frames    int, frames decoded from the file
        face_found_fraction  float, share of the sampled frames where dlib found/tracked a face
        log_mel              (round(audio_seconds * 100), n_mels) float32   (if need_audio)
        audio_frames         int, log-mel rows that are real audio, not padding (if need_audio)

    Only the sampled frames are tracked: the detector runs on the first of them (and again when
    dlib's correlation tracker loses the face), the shape predictor on each. Tracking every source
    frame would cost about three times as much and change nothing that is stored.

    Missing faces: a sampled frame where no face was found is aligned with the landmarks of the
    nearest sampled frame that has one (earlier one on ties). The pixels still come from the frame
    itself, so the sampled frames stay evenly spaced in time; only the crop window is borrowed.
    The landmarks returned for such a frame are the borrowed ones, mapped into its crop.

    Memory stays bounded by num_frames decoded frames: the file is decoded twice, first to count
    its frames, then to keep only the sampled ones. Decoding is cheap next to face detection. Audio
    is read first because it is cheap too, so a file without audio fails before the slow tracking.

    Raises InputError: reason "no_face" when no sampled frame has a face, "no_audio" when
    need_audio and there is no audio, and the decoding reasons of `fer_jax.preprocess.video`.
    """
    if config.need_audio:
        wave = video.read_audio(path, config.sample_rate)
        log_mel, audio_frames = audio.fit_length(
            audio.log_mel(wave, config.sample_rate, config.n_mels, hop_ms=HOP_MS), config.log_mel_frames
        )

    with contextlib.closing(video.iter_video_frames(path)) as frames:
        num_source = sum(1 for _ in frames)
    indices = temporal.sample_indices(num_source, config.num_frames)
    unique = sorted(set(indices.tolist()))
    kept = {}
    with contextlib.closing(video.iter_video_frames(path)) as frames:
        for frame_index, (frame, _) in enumerate(frames):
            if frame_index in kept or frame_index not in unique:
                continue
            kept[frame_index] = frame
            if len(kept) == len(unique):
                break
    if len(kept) != len(unique):  # the second decode must see the same frames as the first
        message = f"second decoding pass ended early ({len(kept)} of {len(unique)} sampled frames found)"
        raise InputError(path, "truncated", message)

    track = face.track_face((kept[i] for i in unique), upsample=config.upsample)
    if not track.found.any():
        raise InputError(
            path,
            "no_face",
            f"dlib found no face in the {len(unique)} sampled frames of {num_source} (upsample={config.upsample}); "
            "faces smaller than ~40 px need a larger upsample",
        )
    row_of = {frame_index: row for row, frame_index in enumerate(unique)}
    landmark_row = nearest_found(track.found)
    aligned = [
        align.align_face(kept[index], track.landmarks[landmark_row[row_of[index]]], config.size, config.grayscale)
        for index in indices.tolist()
    ]

    example = {
        "frames": np.stack([crop for crop, _ in aligned]),
        "landmarks": np.stack([points for _, points in aligned]).astype(np.float32),
        "num_source_frames": num_source,
        "face_found_fraction": float(track.found.mean()),  # of the sampled frames
    }
    if config.need_audio:
        example["log_mel"] = log_mel
        example["audio_frames"] = int(audio_frames)
    return example
