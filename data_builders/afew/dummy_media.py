"""Media writers for the `make_dummy_data.py` scripts of the afew, savee, ravdess and crema_d builders.

Each corpus ships a different container (AFEW and SAVEE: AVI, RAVDESS: MP4 and WAV, CREMA-D: Flash
video and WAV); these write a `synth.Clip` (real faces, synthetic voice) in the container a corpus
uses, and make the broken files every dummy corpus carries: empty, cut short, without sound,
without a face. Only the scripts that write `dummy_data/` import this module.
"""

from __future__ import annotations

import dataclasses
import fractions
import pathlib
import shutil
import wave

import av
import cv2
import numpy as np
import soxr

from data_builders.demo_av import synth
from fer_jax.errors import InputError
from fer_jax.preprocess.clip import process_clip


@dataclasses.dataclass(frozen=True)
class Container:
    """How a corpus stores its clips: container format, codecs and the audio sample rate."""

    format: str  # FFmpeg muxer name: "avi", "mp4", "flv"
    video_codec: str
    audio_codec: str
    audio_rate: int
    video_options: tuple[tuple[str, str], ...] = ()
    codec_tag: str | None = None  # FourCC in the AVI header (Xvid's "XVID")


# mpeg4 tagged XVID: what AVI corpora of the 2000s hold. Quantiser 5 keeps the files small.
AVI_XVID_MP3 = Container("avi", "mpeg4", "libmp3lame", 44_100, (("qscale", "5"),), "XVID")
MP4_H264_AAC = Container("mp4", "libx264", "aac", 48_000, (("crf", "28"), ("preset", "ultrafast")))
FLV_SORENSON_MP3 = Container("flv", "flv", "libmp3lame", 44_100, (("qscale", "5"),))


def write_clip(path, clip: synth.Clip, container: Container, *, with_audio: bool = True) -> pathlib.Path:
    """Write `clip` (frames and, if `with_audio`, its voice) to `path` in `container`."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _, height, width, _ = clip.frames.shape
    with av.open(str(path), "w", format=container.format) as out:
        video = out.add_stream(container.video_codec, rate=fractions.Fraction(clip.fps))
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = dict(container.video_options)
        video.codec_context.thread_count = 1
        if container.codec_tag:
            video.codec_tag = container.codec_tag
        audio = out.add_stream(container.audio_codec, rate=container.audio_rate, layout="mono") if with_audio else None
        for frame in clip.frames:
            out.mux(video.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        out.mux(video.encode())
        if audio is not None:
            samples = _resampled(clip.audio, clip.sample_rate, container.audio_rate)
            chunk = audio.codec_context.frame_size or 1024
            for start in range(0, len(samples), chunk):
                frame = av.AudioFrame.from_ndarray(samples[None, start : start + chunk], format="fltp", layout="mono")
                frame.sample_rate, frame.pts = container.audio_rate, start
                out.mux(audio.encode(frame))
            out.mux(audio.encode())
    return path


def write_wav(path, clip: synth.Clip, sample_rate: int) -> pathlib.Path:
    """The clip's voice as a 16-bit mono PCM WAV at `sample_rate` (how the corpora ship audio)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    samples = _resampled(clip.audio, clip.sample_rate, sample_rate)
    pcm = np.clip(np.rint(samples * 32767), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(sample_rate)
        f.writeframes(pcm.tobytes())
    return path


def _resampled(samples: np.ndarray, rate: int, new_rate: int) -> np.ndarray:
    if rate == new_rate:
        return np.asarray(samples, np.float32)
    return np.asarray(soxr.resample(samples, rate, new_rate), np.float32)


def darkened(clip: synth.Clip, factor: float) -> synth.Clip:
    """The clip with every pixel scaled by `factor` (< 1: a dark scene, as in many film clips)."""
    frames = np.clip(np.rint(clip.frames.astype(np.float32) * factor), 0, 255).astype(np.uint8)
    return dataclasses.replace(clip, frames=frames)


def faceless(clip: synth.Clip, seed: int) -> synth.Clip:
    """The clip's sound over frames of smooth coloured noise: no face in any frame."""
    rng = np.random.default_rng(seed)
    t, height, width, _ = clip.frames.shape
    coarse = rng.uniform(40, 200, size=(t, 5, 5, 3)).astype(np.float32)
    frames = np.stack([cv2.resize(c, (width, height), interpolation=cv2.INTER_CUBIC) for c in coarse])
    return dataclasses.replace(clip, frames=np.clip(frames, 0, 255).astype(np.uint8))


def write_zero_byte(path) -> pathlib.Path:
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


# Where to cut AVI and Flash files so that FFmpeg fails on them: inside the header. Cut further in,
# these containers (no index FFmpeg checks, unlike MP4's) decode up to the cut, the damaged frame
# concealed, and pass for shorter clips; MP4s written without faststart fail wherever they are cut.
AVI_HEADER_CUT, FLV_HEADER_CUT = 1024, 200


def write_truncated(path, source, keep_bytes: int) -> pathlib.Path:
    """The first `keep_bytes` bytes of the media file `source`: a copy cut short."""
    data = pathlib.Path(source).read_bytes()
    if keep_bytes >= len(data):
        raise ValueError(f"{source}: {len(data)} bytes, cannot keep {keep_bytes} of them as a cut copy")
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[:keep_bytes])
    return path


def clear(folder) -> pathlib.Path:
    """Empty `folder` (made if missing), so a rerun leaves no stale files."""
    folder = pathlib.Path(folder)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


def folder_bytes(folder) -> int:
    return sum(p.stat().st_size for p in pathlib.Path(folder).rglob("*") if p.is_file())


def check(path, config, expected_reason: str | None) -> None:
    """Fail unless preprocessing `path` with `config` keeps it (None) or skips it for `expected_reason`,
    so a dummy corpus carries the failures its tests count on."""
    try:
        process_clip(str(path), config)
        reason = None
    except InputError as e:
        reason = e.reason
    if reason != expected_reason:
        got, wanted = reason or "a record", expected_reason or "a record"
        raise AssertionError(f"{path}: preprocessing gives {got}, expected {wanted}")
