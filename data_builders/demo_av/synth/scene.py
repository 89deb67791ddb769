"""The scene: everything about a clip that must not depend on its label (length, timing, placement,
jitter, background, brightness, recording level), drawn from a stream the label never reaches."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from data_builders.demo_av.synth.settings import FRAME_SIZE, MAX_FRAMES, MIN_FRAMES, TILE_SIZE



GRAIN_SHIFT = 32  # shifted crops of one noise field: fresh-looking grain per frame at a fraction of the cost


@dataclasses.dataclass
class Scene:
    num_frames: int
    rise: np.ndarray  # (T,) expression strength 0 -> 1: neutral onset, smoothstep rise, held apex
    landmark_jitter: np.ndarray  # (T, 68, 2) micro-motion in inter-ocular distances
    centre: np.ndarray  # (2,) where the canvas centre lands in the frame
    scale: float
    pose: np.ndarray  # (T, 3) per-frame head jitter: dx, dy (pixels), roll (degrees)
    contrast: float  # the camera's look: pixel -> contrast * pixel + offset
    offset: float
    background: np.ndarray  # (FRAME_SIZE, FRAME_SIZE, 3) float32, the look already applied
    grain: np.ndarray  # (FRAME_SIZE + GRAIN_SHIFT, same, 3) float32 sensor noise; frames see shifted crops
    grain_shifts: np.ndarray  # (T, 2) int
    loudness_rms: float  # the recording level (microphone distance and gain); the voice adds its class's effort
    speech_lead_s: float  # silence before the voice starts

    def look(self, rgb):
        return self.contrast * rgb + self.offset

    def sensor_noise(self, t: int) -> np.ndarray:
        y, x = self.grain_shifts[t]
        return self.grain[y : y + FRAME_SIZE, x : x + FRAME_SIZE]


def smoothstep(x: np.ndarray) -> np.ndarray:
    return x * x * (3 - 2 * x)


def smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], memory: float = 0.75) -> np.ndarray:
    """Gaussian noise along axis 0 that drifts rather than flickers (AR(1), unit stationary std)."""
    white = rng.normal(size=shape)
    out = np.empty(shape)
    out[0] = white[0]
    for t in range(1, shape[0]):
        out[t] = memory * out[t - 1] + np.sqrt(1 - memory**2) * white[t]
    return out


def _expression_rise(num_frames: int, rng: np.random.Generator) -> np.ndarray:
    onset = int(rng.integers(1, 4))  # first frames are neutral
    apex = num_frames - int(rng.integers(3, 6))  # last frames hold the apex
    t = np.clip((np.arange(num_frames) - onset + 1) / (apex - onset + 1), 0.0, 1.0)
    return smoothstep(t)


def _background(rng: np.random.Generator) -> np.ndarray:
    size = FRAME_SIZE
    kind = rng.integers(3)
    if kind == 0:  # flat colour
        return np.broadcast_to(rng.uniform(0, 255, 3), (size, size, 3)).astype(np.float32)
    if kind == 1:  # linear gradient between two colours
        angle = rng.uniform(0, 2 * np.pi)
        x, y = np.meshgrid(np.linspace(-1, 1, size), np.linspace(-1, 1, size))
        w = ((np.cos(angle) * x + np.sin(angle) * y) / np.sqrt(2) + 1) / 2
        a, b = rng.uniform(0, 255, (2, 3))
        return (a * (1 - w[..., None]) + b * w[..., None]).astype(np.float32)
    cells = int(rng.integers(2, 7))  # smooth blotches around a base colour, like an out-of-focus room
    coarse = rng.uniform(0, 255, 3) + rng.uniform(20, 90) * rng.uniform(-1, 1, (cells, cells, 3))
    return np.clip(cv2.resize(coarse.astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC), 0, 255)


def draw_scene(rng: np.random.Generator) -> Scene:
    num_frames = int(rng.integers(MIN_FRAMES, MAX_FRAMES + 1))
    scale = float(rng.uniform(0.85, 1.1))
    margin = scale * TILE_SIZE / 2 + 3  # keep the whole tile (and its jitter) in the frame
    jitter_scale = [rng.uniform(0.3, 1.0), rng.uniform(0.3, 1.0), rng.uniform(0.5, 1.5)]  # px, px, degrees (std)
    contrast = float(rng.uniform(0.75, 1.25))
    offset = float(rng.uniform(-30, 30) + (1 - contrast) * 128)  # contrast pivots on mid-grey
    background = contrast * _background(rng) + offset
    grain_size = FRAME_SIZE + GRAIN_SHIFT
    return Scene(
        num_frames=num_frames,
        rise=_expression_rise(num_frames, rng),
        landmark_jitter=0.012 * smooth_noise(rng, (num_frames, 68, 2), memory=0.5),
        centre=rng.uniform(margin, FRAME_SIZE - margin, 2),
        scale=scale,
        pose=smooth_noise(rng, (num_frames, 3)) * jitter_scale + [0, 0, rng.uniform(-5, 5)],
        contrast=contrast,
        offset=offset,
        background=background.astype(np.float32),
        grain=rng.uniform(0.5, 3.0) * rng.standard_normal((grain_size, grain_size, 3), dtype=np.float32),
        grain_shifts=rng.integers(0, GRAIN_SHIFT, (num_frames, 2)),
        # -33..-21 dB rms: with the loudest vocal effort (+6 dB, voice.PROSODY) peaks stay below full scale.
        loudness_rms=float(10 ** (rng.uniform(-33, -21) / 20)),
        speech_lead_s=float(rng.uniform(0.0, 0.08)),
    )
