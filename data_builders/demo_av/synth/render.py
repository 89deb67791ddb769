"""Rendering: warp the face through the landmark displacements, animate it onset -> apex, place it in
the scene, and write the clip (video and voice) as an MP4."""

from __future__ import annotations

import dataclasses
import fractions
import functools
import os
from pathlib import Path

import av
import cv2
import numpy as np

from data_builders.demo_av.synth.expressions import (
    INNER_LIP_CONTOUR,
    MOUTH_CAVITY_RGB,
    TEETH_HEIGHT,
    TEETH_RGB,
    apex_displacements,
    face_axes,
)
from data_builders.demo_av.synth.faces import Identity
from data_builders.demo_av.synth.scene import Scene, draw_scene, smoothstep
from data_builders.demo_av.synth.settings import CLASSES, FPS, FRAME_SIZE, SAMPLE_RATE, TILE_PAD, TILE_SIZE
from data_builders.demo_av.synth.voice import synthesize_voice


# ----------------------------------------------------------------------------------------------------
# Warping: a smooth dense field through the landmark displacements


class _FaceWarper:
    """Backward maps for cv2.remap that move a face canvas's landmarks by given displacements.

    The forward field is a Gaussian RBF interpolant through the landmarks (plus fixed anchors on the
    canvas border, so hair and background stay put). It varies on the scale of its kernel width, so
    it is evaluated and inverted (remap pulls pixels, so it needs where each output pixel comes from)
    on a grid 4x coarser than the canvas, then resized up.
    """

    COARSENING = 4

    def __init__(self, landmarks: np.ndarray, size: int):
        iod, _, _ = face_axes(landmarks)
        self._sigma = 0.28 * iod  # wide enough to move a feature as a whole, narrow enough to keep features apart
        border = np.linspace(0, size - 1, 9)
        anchors = np.array([(x, y) for x in border for y in border if x in (0, size - 1) or y in (0, size - 1)])
        self._centres = np.concatenate([landmarks, anchors]).astype(np.float32)
        gram = self._kernel(self._centres).astype(np.float64)
        # A little ridge: neighbouring lip points asked to move apart would otherwise make the field fold.
        self._gram = gram + 0.05 * np.eye(len(gram))
        self._coarse, self._size = size // self.COARSENING, size
        coarse = (np.arange(self._coarse) + 0.5) * self.COARSENING - 0.5  # cv2.resize's source pixel centres
        self._coarse_kernel = self._kernel(np.stack(np.meshgrid(coarse, coarse), -1).reshape(-1, 2))
        steps = np.arange(self._coarse)
        self._coarse_grid = np.stack(np.meshgrid(steps, steps), -1).astype(np.float32)
        self._identity_map = np.stack(np.meshgrid(np.arange(size), np.arange(size)), -1).astype(np.float32)

    def _kernel(self, points: np.ndarray) -> np.ndarray:
        points = points.astype(np.float32)
        sq = (points**2).sum(1)[:, None] + (self._centres**2).sum(1)[None, :] - 2 * points @ self._centres.T
        return np.exp(np.maximum(sq, 0) * np.float32(-0.5 / self._sigma**2))

    def backward_maps(self, displacements: np.ndarray) -> list[np.ndarray]:
        """Per frame, (size, size, 2) float32 source coordinates per output pixel; `displacements` (T, 68, 2)."""
        frames, points, _ = displacements.shape
        values = np.zeros((len(self._centres), frames, 2))
        values[:points] = displacements.transpose(1, 0, 2)
        weights = np.linalg.solve(self._gram, values.reshape(len(self._centres), -1)).astype(np.float32)
        coarse = (self._coarse_kernel @ weights).reshape(self._coarse, self._coarse, frames, 2)
        return [self._backward_map(coarse[:, :, t]) for t in range(frames)]

    def _backward_map(self, forward: np.ndarray) -> np.ndarray:
        """Invert the coarse forward field (x = y - F(x), two fixed-point steps) and bring it to full size.

        The inverse is as smooth as the field, so it is solved on the coarse grid, where it is cheap.
        """
        grid, forward = self._coarse_grid, forward / self.COARSENING  # in coarse pixels from here on
        source = grid - forward
        for _ in range(2):
            source = grid - cv2.remap(forward, source, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        backward = cv2.resize(source - grid, (self._size, self._size), interpolation=cv2.INTER_LINEAR)
        return self._identity_map + backward * self.COARSENING


@functools.cache
def _soft_tile_mask() -> np.ndarray:
    """(S, S) float32 alpha of the padded canvas: a rounded square over the tile with feathered edges."""
    size = TILE_SIZE + 2 * TILE_PAD
    r = (np.arange(size) - (size - 1) / 2) / (TILE_SIZE / 2 + 3)  # reaches a little past the tile's edge
    u, v = np.meshgrid(np.abs(r), np.abs(r))
    radius = (u**4 + v**4) ** 0.25
    return smoothstep(np.clip((1.0 - radius) / 0.16, 0.0, 1.0)).astype(np.float32)


def _face_canvas(identity: Identity) -> tuple[np.ndarray, np.ndarray]:
    """(S, S, 4) float32 canvas and its landmarks.

    RGB is the tile padded by edge replication; alpha, in [0, 1], is the soft mask.
    """
    rgb = cv2.copyMakeBorder(identity.image, *(TILE_PAD,) * 4, cv2.BORDER_REPLICATE).astype(np.float32)
    rgba = np.concatenate([rgb, _soft_tile_mask()[..., None]], -1)
    return rgba, identity.landmarks.astype(np.float32) + TILE_PAD


def _polygon_mask(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) float32 anti-aliased fill of the polygon `points` (n, 2), sub-pixel placed."""
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.rint(points * 16).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=4)
    return mask.astype(np.float32) / 255.0


# ----------------------------------------------------------------------------------------------------
# Video: animate the face, place it, composite


def _animate_face(identity: Identity, label: int, scene: Scene, intensity: float, confusable: bool) -> list[np.ndarray]:
    """Per frame, the (S, S, 4) RGBA face canvas with the expression at that frame's strength."""
    canvas, landmarks = _face_canvas(identity)
    canvas[..., :3] = scene.look(canvas[..., :3])  # once per clip: compositing commutes with an affine look
    size = canvas.shape[0]
    iod, _, _ = face_axes(landmarks)
    apex = intensity * apex_displacements(landmarks, label, confusable=confusable)
    displacements = (scene.rise[:, None, None] * apex + iod * scene.landmark_jitter).astype(np.float32)
    maps = _FaceWarper(landmarks, size).backward_maps(displacements)
    mouth = _MouthPainter(landmarks, iod, size, scene)
    faces = []
    for source, displacement in zip(maps, displacements):
        face = cv2.remap(canvas, source, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        mouth.paint_opening(face, source, landmarks + displacement)
        faces.append(face)
    return faces


class _MouthPainter:
    """A warp can only stretch the lips; where they part, paint what a real opening shows.

    Works in a box around the mouth: the opening never leaves it and the rest of the canvas is untouched.
    """

    def __init__(self, landmarks: np.ndarray, iod: float, size: int, scene: Scene):
        lips = landmarks[list(INNER_LIP_CONTOUR)]
        lo = np.clip(np.floor(lips.min(0) - 0.6 * iod), 0, size).astype(int)
        hi = np.clip(np.ceil(lips.max(0) + 0.6 * iod), 0, size).astype(int)
        self._box = (slice(lo[1], hi[1]), slice(lo[0], hi[0]))
        self._origin = lo.astype(np.float32)
        self._shape = (hi[1] - lo[1], hi[0] - lo[0])
        self._was_open = _polygon_mask(lips - self._origin, self._shape)
        self._down = face_axes(landmarks)[2]
        # Gaps that grow less than this are the landmark jitter's, not an expression's: left unpainted.
        self._min_gap = self._lip_gap(landmarks) + 0.02 * iod
        self._teeth_height = TEETH_HEIGHT * iod
        self._teeth = scene.look(np.array(TEETH_RGB, np.float32))
        self._cavity = scene.look(np.array(MOUTH_CAVITY_RGB, np.float32))

    def _lip_gap(self, landmarks: np.ndarray) -> float:
        """Mean distance from the upper inner lip (61-63) down to the lower one (67-65), in pixels."""
        return float(((landmarks[[67, 66, 65]] - landmarks[[61, 62, 63]]) @ self._down).mean())

    def paint_opening(self, face: np.ndarray, source: np.ndarray, moved_landmarks: np.ndarray) -> None:
        """Paint, in place on `face` (S, S, 4), the part of the inner-lip polygon that was closed at rest."""
        if self._lip_gap(moved_landmarks) < self._min_gap:  # still or pressed lips (whose contour may cross)
            return
        moved_lips = moved_landmarks[list(INNER_LIP_CONTOUR)] - self._origin
        still_open = cv2.remap(self._was_open, source[self._box] - self._origin, None, cv2.INTER_LINEAR)
        opened = np.clip(_polygon_mask(moved_lips, self._shape) - still_open, 0, 1)
        opened = cv2.GaussianBlur(opened, (3, 3), 0)[..., None]
        rgb = face[self._box][..., :3]
        rgb += opened * (self._interior(moved_lips) - rgb)

    def _interior(self, lips: np.ndarray) -> np.ndarray:
        """(H, W, 3) box of teeth fading into cavity with depth below the upper inner lip (points 60-64)."""
        upper = lips[:5][np.argsort(lips[:5, 0])]
        upper_y = np.interp(np.arange(self._shape[1]), upper[:, 0], upper[:, 1])
        depth = np.arange(self._shape[0])[:, None] - upper_y[None, :]
        teeth = np.clip((self._teeth_height - depth) / 2.0 + 0.5, 0, 1)[..., None].astype(np.float32)
        return self._cavity + teeth * (self._teeth - self._cavity)


def _place(face: np.ndarray, scene: Scene, t: int) -> np.ndarray:
    """Composite the RGBA face canvas onto the scene's background at frame t's head pose."""
    half = (face.shape[0] - 1) / 2
    dx, dy, roll = scene.pose[t]
    to_frame = cv2.getRotationMatrix2D((half, half), float(roll), scene.scale)
    to_frame[:, 2] += scene.centre + (dx, dy) - half
    placed = cv2.warpAffine(face, to_frame, (FRAME_SIZE, FRAME_SIZE), flags=cv2.INTER_LINEAR, borderValue=0)
    alpha = placed[..., 3]
    frame = cv2.blendLinear(placed[..., :3], scene.background, alpha, 1 - alpha)
    return cv2.add(frame, scene.sensor_noise(t), dtype=cv2.CV_8U)  # rounds and saturates


# ----------------------------------------------------------------------------------------------------
# Clips


@dataclasses.dataclass
class Clip:
    frames: np.ndarray  # (T, H, W, 3) uint8 RGB
    fps: int
    audio: np.ndarray  # (N,) float32 mono in [-1, 1], N = T / fps * sample_rate
    sample_rate: int


def render_clip(identity: Identity, label: int, rng: np.random.Generator, *, confusable: bool = False) -> Clip:
    """One clip of `identity` going from neutral to the apex of class `label`, with its voice.

    The scene (length, timing, placement, jitter, background, brightness, recording level) comes from a
    stream split off `rng` that the label never reaches: the same rng gives the same scene for every
    class. `confusable`: the face and the voice of the confusable variant (settings.FACE_CONFUSIONS,
    VOICE_CONFUSIONS).
    """
    if not 0 <= label < len(CLASSES):
        raise ValueError(f"label {label} is not a class index in 0..{len(CLASSES) - 1}")
    scene_rng, face_rng, voice_rng = rng.spawn(3)
    scene = draw_scene(scene_rng)
    faces = _animate_face(identity, label, scene, float(face_rng.uniform(0.7, 1.3)), confusable)
    frames = np.stack([_place(face, scene, t) for t, face in enumerate(faces)])
    num_samples = round(scene.num_frames / FPS * SAMPLE_RATE)
    audio = synthesize_voice(
        identity.base_pitch_hz,
        label,
        num_samples,
        loudness_rms=scene.loudness_rms,
        lead_s=scene.speech_lead_s,
        rng=voice_rng,
        confusable=confusable,
    )
    return Clip(frames, FPS, audio, SAMPLE_RATE)


def write_clip_mp4(path: str | os.PathLike, clip: Clip) -> None:
    """Write `clip` as an MP4: H.264 video (yuv420p) and a mono AAC track, with PyAV."""
    _, height, width, _ = clip.frames.shape
    if height % 2 or width % 2:
        raise ValueError(f"{path}: yuv420p needs even frame sizes, got {width}x{height}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="mp4") as container:
        video = container.add_stream("libx264", rate=fractions.Fraction(clip.fps))
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"crf": "18", "preset": "ultrafast"}
        video.codec_context.thread_count = 1  # the corpus writer runs one process per core
        audio = container.add_stream("aac", rate=clip.sample_rate, layout="mono")
        audio.options = {"aac_coder": "fast"}  # a third of the default coder's time; ample for a synthetic voice
        for frame in clip.frames:
            container.mux(video.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        container.mux(video.encode())
        chunk = 1024  # AAC's frame size
        for start in range(0, len(clip.audio), chunk):
            frame = av.AudioFrame.from_ndarray(clip.audio[None, start : start + chunk], format="fltp", layout="mono")
            frame.sample_rate, frame.pts = clip.sample_rate, start
            container.mux(audio.encode(frame))
        container.mux(audio.encode())
