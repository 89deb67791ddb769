"""A synthetic audio-visual emotion corpus made from real face photographs.

No emotion corpus can be downloaded here, so the demo makes one: every real face that ships with
scikit-image (the astronaut and the LFW subset) is animated from neutral to the apex of each of seven
expressions (onset -> apex, as CK+ sequences run), placed on a random background with head jitter, and
given a synthetic voice whose prosody depends on the class.

Only the facial motion and the prosody carry the label. A clip's rng is split into three streams; the
scene stream (length, timing, placement, jitter, background, brightness, loudness) never sees the
label, so a model cannot learn the class from anything but the face and the voice, and two clips drawn
with the same seed differ only in expression and prosody.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import fractions
import functools
import json
import multiprocessing
import os
import zlib
from pathlib import Path

import av
import cv2
import numpy as np
from tqdm import tqdm

from fer_jax.errors import ConfigError

CLASSES = ("neutral", "anger", "disgust", "fear", "happiness", "sadness", "surprise")
FPS = 25
FRAME_SIZE = 160  # square frames; faces of ~95-125 px, which dlib's HOG detector finds at upsample=1
TILE_SIZE = 112  # side of an identity's face image
TILE_PAD = 24  # room around the tile for the jaw to drop and the brows to rise into
SAMPLE_RATE = 48_000
MIN_FRAMES, MAX_FRAMES = 12, 24
MANIFEST = "manifest.json"


# ----------------------------------------------------------------------------------------------------
# Identities: real faces with their landmarks


@dataclasses.dataclass(frozen=True, eq=False)
class Identity:
    subject: str  # stable id: "astronaut", "lfw000" ... (index in scikit-image's LFW subset)
    image: np.ndarray  # (TILE_SIZE, TILE_SIZE, 3) uint8 RGB, the face filling most of it
    landmarks: np.ndarray  # (68, 2) float32 (x, y) iBUG landmarks in `image` pixels
    base_pitch_hz: float  # the speaker's habitual pitch; the classes' prosody moves around it


def load_identities() -> tuple[list[Identity], int]:
    """Every scikit-image face dlib finds landmarks on, and how many were dropped for lack of a face."""
    identities, dropped = _load_identities_once()
    return list(identities), dropped


@functools.cache
def _load_identities_once() -> tuple[tuple[Identity, ...], int]:
    from fer_jax.preprocess.face import largest_face_landmarks  # dlib: only the parent process needs it

    tiles = [(f"lfw{i:03d}", tile) for i, tile in enumerate(_lfw_face_tiles())]
    found = [(subject, tile, largest_face_landmarks(tile)) for subject, tile in tiles]
    lfw = [(s, t, lm) for s, t, lm in found if lm is not None]
    astronaut = _astronaut_tile(np.mean([lm for _, _, lm in lfw], axis=0))
    candidates = [] if astronaut is None else [("astronaut", astronaut, largest_face_landmarks(astronaut))]
    kept = [(s, t, lm) for s, t, lm in candidates if lm is not None] + lfw
    identities = tuple(Identity(s, t, lm, _base_pitch_hz(s)) for s, t, lm in kept)
    return identities, len(tiles) + 1 - len(identities)


def _lfw_face_tiles() -> list[np.ndarray]:
    """scikit-image's LFW subset: rows 0-99 are 25x25 grey faces (rows 100-199 are non-faces)."""
    import skimage.data

    faces = np.load(os.path.join(os.path.dirname(skimage.data.__file__), "lfw_subset.npy"))[:100]
    tiles = []
    for face in faces:
        big = cv2.resize(face.astype(np.float32), (TILE_SIZE, TILE_SIZE), interpolation=cv2.INTER_CUBIC)
        grey = np.clip(np.rint(big * 255), 0, 255).astype(np.uint8)
        tiles.append(cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB))
    return tiles


def _astronaut_tile(lfw_mean_landmarks: np.ndarray) -> np.ndarray | None:
    """The astronaut's face framed like the LFW tiles (a similarity onto their mean landmarks)."""
    import skimage.data

    from fer_jax.preprocess.face import largest_face_landmarks

    photo = skimage.data.astronaut()
    landmarks = largest_face_landmarks(photo)
    if landmarks is None:
        return None
    to_tile, _ = cv2.estimateAffinePartial2D(landmarks, lfw_mean_landmarks)
    return cv2.warpAffine(photo, to_tile, (TILE_SIZE, TILE_SIZE), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)


def _base_pitch_hz(subject: str) -> float:
    # A speaker keeps one voice across all clips, spanning typical adult male to female pitch.
    return float(np.random.default_rng(zlib.crc32(subject.encode())).uniform(95.0, 230.0))


# ----------------------------------------------------------------------------------------------------
# Expressions: landmark displacements at the apex, in the face's own frame


@dataclasses.dataclass(frozen=True)
class _Move:
    points: tuple[int, ...]
    out: float = 0.0  # away from the face's midline (negative: towards it), in inter-ocular distances
    down: float = 0.0  # along the face's vertical axis (negative: up), in inter-ocular distances


_INNER_BROWS, _MID_BROWS, _OUTER_BROWS = (20, 21, 22, 23), (19, 24), (17, 18, 25, 26)
_UPPER_LIDS, _LOWER_LIDS = (37, 38, 43, 44), (40, 41, 46, 47)
_MOUTH_CORNERS = (48, 54, 60, 64)
_UPPER_LIP, _UPPER_LIP_INNER = (49, 50, 51, 52, 53), (61, 62, 63)
_LOWER_LIP, _LOWER_LIP_INNER = (55, 56, 57, 58, 59), (65, 66, 67)
_NOSE_WINGS, _NOSE_BASE = (31, 35), (32, 33, 34)
_CHEEKS = (1, 2, 3, 13, 14, 15)
_INNER_LIP_CONTOUR = tuple(range(60, 68))

# Apex motion of each class, after the FACS action units that define the prototypes (Ekman & Friesen).
EXPRESSION_MOVES: dict[str, tuple[_Move, ...]] = {
    "neutral": (),
    "happiness": (  # AU6+12(+25): corners pulled up and out, cheeks raised, lips part over the teeth
        _Move(_MOUTH_CORNERS, out=0.18, down=-0.21),
        _Move((49, 53, 55, 59), out=0.09, down=-0.10),
        _Move((50, 52, 61, 63), out=0.03, down=-0.05),
        _Move((51, 62), down=-0.03),
        _Move((56, 57, 58), down=0.05),
        _Move(_LOWER_LIP_INNER, down=0.10),
        _Move(_LOWER_LIDS, down=-0.05),
        _Move(_CHEEKS, out=0.02, down=-0.05),
    ),
    "anger": (  # AU4+5+7+23/24: brows lowered and drawn together, glare, lips pressed and narrowed
        _Move(_INNER_BROWS, out=-0.08, down=0.18),
        _Move(_MID_BROWS, out=-0.04, down=0.12),
        _Move(_OUTER_BROWS, down=0.05),
        _Move(_UPPER_LIDS, down=-0.03),
        _Move(_LOWER_LIDS, down=-0.04),
        _Move(_MOUTH_CORNERS, out=-0.07),
        _Move(_UPPER_LIP, down=0.05),  # the red of the lips thins; the inner contours stay shut
        _Move(_LOWER_LIP, down=-0.07),
        _Move(_UPPER_LIP_INNER + _LOWER_LIP_INNER, down=-0.01),
        _Move(_NOSE_WINGS, out=0.04),
    ),
    "disgust": (  # AU9+10(+4): nose wrinkled, upper lip raised, brows down
        _Move(_UPPER_LIP + _UPPER_LIP_INNER, down=-0.14),
        _Move((50, 52), down=-0.03),
        _Move(_MOUTH_CORNERS, out=-0.02, down=-0.05),
        _Move(_NOSE_WINGS, out=0.03, down=-0.09),
        _Move(_NOSE_BASE, down=-0.07),
        _Move((29, 30), down=-0.04),
        _Move(_INNER_BROWS, out=-0.04, down=0.11),
        _Move(_MID_BROWS, down=0.08),
        _Move(_OUTER_BROWS, down=0.04),
        _Move(_LOWER_LIDS, down=-0.04),
        _Move((56, 57, 58), down=0.03),
    ),
    "fear": (  # AU1+2+4+5+20(+25): brows up and together, eyes wide, lips stretched sideways and parted
        _Move(_INNER_BROWS, out=-0.06, down=-0.15),
        _Move(_MID_BROWS, out=-0.03, down=-0.12),
        _Move(_OUTER_BROWS, down=-0.06),
        _Move(_UPPER_LIDS, down=-0.09),
        _Move(_LOWER_LIDS, down=0.02),
        _Move(_MOUTH_CORNERS, out=0.16, down=0.04),
        _Move((49, 53, 55, 59), out=0.08),
        _Move(_LOWER_LIP, down=0.08),
        _Move(_LOWER_LIP_INNER, down=0.10),
    ),
    "sadness": (  # AU1+4+15(+17): inner brows up, corners down, chin pushes the lower lip up
        _Move((21, 22), out=-0.03, down=-0.19),
        _Move((20, 23), out=-0.02, down=-0.11),
        _Move((17, 26), down=0.05),
        _Move(_UPPER_LIDS, down=0.04),
        _Move(_MOUTH_CORNERS, out=-0.03, down=0.19),
        _Move((49, 53, 55, 59), down=0.09),
        _Move((56, 57, 58), down=-0.03),
    ),
    "surprise": (  # AU1+2+5+26/27: brows high, eyes wide, jaw dropped
        _Move(_INNER_BROWS, down=-0.18),
        _Move(_MID_BROWS, down=-0.21),
        _Move(_OUTER_BROWS, down=-0.15),
        _Move(_UPPER_LIDS, down=-0.10),
        _Move(_LOWER_LIDS, down=0.03),
        _Move(_MOUTH_CORNERS, out=-0.05, down=0.10),
        _Move(_UPPER_LIP_INNER, down=-0.02),
        _Move(_LOWER_LIP + _LOWER_LIP_INNER, down=0.30),
        _Move((7, 8, 9), down=0.32),
        _Move((6, 10), down=0.20),
        _Move((5, 11), down=0.09),
    ),
}

# What parted lips show (RGB): the upper teeth just under the upper lip, the dark mouth cavity deeper.
# Only the opening's shape decides which, never the class, so a still mouth looks alike in all classes.
_TEETH_RGB = (215.0, 210.0, 200.0)
_MOUTH_CAVITY_RGB = (45.0, 24.0, 24.0)
_TEETH_HEIGHT = 0.13  # inter-ocular distances (upper incisors show ~9 mm of a ~63 mm eye distance)


def face_axes(landmarks: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """(inter-ocular distance, unit vector across the face from its right eye to its left, unit vector down)."""
    between = landmarks[42:48].mean(0) - landmarks[36:42].mean(0)
    iod = float(np.linalg.norm(between))
    across = between / iod
    return iod, across, np.array([-across[1], across[0]])


def apex_displacements(landmarks: np.ndarray, label: int) -> np.ndarray:
    """(68, 2) pixel displacements of `landmarks` at the apex of class `label`, at intensity 1."""
    iod, across, down = face_axes(landmarks)
    offset = landmarks @ across - landmarks[27:31].mean(0) @ across  # signed distance from the nose's line
    side = np.where(np.abs(offset) < 0.05 * iod, 0.0, np.sign(offset))  # points on the midline have no "out"
    moved = np.zeros_like(landmarks, dtype=np.float32)
    for move in EXPRESSION_MOVES[CLASSES[label]]:
        idx = list(move.points)
        moved[idx] += iod * (move.out * side[idx, None] * across + move.down * down)
    return moved


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
    return _smoothstep(np.clip((1.0 - radius) / 0.16, 0.0, 1.0)).astype(np.float32)


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
# The scene: everything about a clip that must not depend on its label


GRAIN_SHIFT = 32  # shifted crops of one noise field: fresh-looking grain per frame at a fraction of the cost


@dataclasses.dataclass
class _Scene:
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
    loudness_rms: float
    speech_lead_s: float  # silence before the voice starts

    def look(self, rgb):
        return self.contrast * rgb + self.offset

    def sensor_noise(self, t: int) -> np.ndarray:
        y, x = self.grain_shifts[t]
        return self.grain[y : y + FRAME_SIZE, x : x + FRAME_SIZE]


def _smoothstep(x: np.ndarray) -> np.ndarray:
    return x * x * (3 - 2 * x)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], memory: float = 0.75) -> np.ndarray:
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
    return _smoothstep(t)


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


def _draw_scene(rng: np.random.Generator) -> _Scene:
    num_frames = int(rng.integers(MIN_FRAMES, MAX_FRAMES + 1))
    scale = float(rng.uniform(0.85, 1.1))
    margin = scale * TILE_SIZE / 2 + 3  # keep the whole tile (and its jitter) in the frame
    jitter_scale = [rng.uniform(0.3, 1.0), rng.uniform(0.3, 1.0), rng.uniform(0.5, 1.5)]  # px, px, degrees (std)
    contrast = float(rng.uniform(0.75, 1.25))
    offset = float(rng.uniform(-30, 30) + (1 - contrast) * 128)  # contrast pivots on mid-grey
    background = contrast * _background(rng) + offset
    grain_size = FRAME_SIZE + GRAIN_SHIFT
    return _Scene(
        num_frames=num_frames,
        rise=_expression_rise(num_frames, rng),
        landmark_jitter=0.012 * _smooth_noise(rng, (num_frames, 68, 2), memory=0.5),
        centre=rng.uniform(margin, FRAME_SIZE - margin, 2),
        scale=scale,
        pose=_smooth_noise(rng, (num_frames, 3)) * jitter_scale + [0, 0, rng.uniform(-5, 5)],
        contrast=contrast,
        offset=offset,
        background=background.astype(np.float32),
        grain=rng.uniform(0.5, 3.0) * rng.standard_normal((grain_size, grain_size, 3), dtype=np.float32),
        grain_shifts=rng.integers(0, GRAIN_SHIFT, (num_frames, 2)),
        loudness_rms=float(10 ** (rng.uniform(-30, -18) / 20)),
        speech_lead_s=float(rng.uniform(0.0, 0.08)),
    )


# ----------------------------------------------------------------------------------------------------
# Video: animate the face, place it, composite


def _animate_face(identity: Identity, label: int, scene: _Scene, intensity: float) -> list[np.ndarray]:
    """Per frame, the (S, S, 4) RGBA face canvas with the expression at that frame's strength."""
    canvas, landmarks = _face_canvas(identity)
    canvas[..., :3] = scene.look(canvas[..., :3])  # once per clip: compositing commutes with an affine look
    size = canvas.shape[0]
    iod, _, _ = face_axes(landmarks)
    apex = intensity * apex_displacements(landmarks, label)
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

    def __init__(self, landmarks: np.ndarray, iod: float, size: int, scene: _Scene):
        lips = landmarks[list(_INNER_LIP_CONTOUR)]
        lo = np.clip(np.floor(lips.min(0) - 0.6 * iod), 0, size).astype(int)
        hi = np.clip(np.ceil(lips.max(0) + 0.6 * iod), 0, size).astype(int)
        self._box = (slice(lo[1], hi[1]), slice(lo[0], hi[0]))
        self._origin = lo.astype(np.float32)
        self._shape = (hi[1] - lo[1], hi[0] - lo[0])
        self._was_open = _polygon_mask(lips - self._origin, self._shape)
        self._down = face_axes(landmarks)[2]
        # Gaps that grow less than this are the landmark jitter's, not an expression's: left unpainted.
        self._min_gap = self._lip_gap(landmarks) + 0.02 * iod
        self._teeth_height = _TEETH_HEIGHT * iod
        self._teeth = scene.look(np.array(_TEETH_RGB, np.float32))
        self._cavity = scene.look(np.array(_MOUTH_CAVITY_RGB, np.float32))

    def _lip_gap(self, landmarks: np.ndarray) -> float:
        """Mean distance from the upper inner lip (61-63) down to the lower one (67-65), in pixels."""
        return float(((landmarks[[67, 66, 65]] - landmarks[[61, 62, 63]]) @ self._down).mean())

    def paint_opening(self, face: np.ndarray, source: np.ndarray, moved_landmarks: np.ndarray) -> None:
        """Paint, in place on `face` (S, S, 4), the part of the inner-lip polygon that was closed at rest."""
        if self._lip_gap(moved_landmarks) < self._min_gap:  # still or pressed lips (whose contour may cross)
            return
        moved_lips = moved_landmarks[list(_INNER_LIP_CONTOUR)] - self._origin
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


def _place(face: np.ndarray, scene: _Scene, t: int) -> np.ndarray:
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
# Audio: a synthetic voice whose prosody depends on the class


@dataclasses.dataclass(frozen=True)
class Prosody:
    pitch_level: float  # mean pitch as a multiple of the speaker's base pitch
    accent_st: float  # spread of per-syllable pitch accents, semitones
    glide_st: float  # pitch change over the utterance, semitones (> 0 rising, < 0 falling)
    syllables_per_s: float
    harmonic_decay: float  # in (0, 1): near 1 many strong harmonics (tense, bright), lower is softer
    tremor_st: float  # depth of a 6-9 Hz pitch tremor, semitones
    breathiness: float  # aspiration noise relative to the voiced source
    attack: float  # exponent of a syllable's rise: < 1 abrupt, > 1 gentle


# After the acoustic profiles of vocal emotion (Banse & Scherer 1996; Juslin & Laukka 2003).
PROSODY: dict[str, Prosody] = {
    "neutral": Prosody(1.00, 1.0, -1.0, 4.0, 0.88, 0.0, 0.04, 0.8),
    "anger": Prosody(1.15, 3.0, -2.0, 5.5, 0.95, 0.0, 0.01, 0.35),
    "disgust": Prosody(0.88, 1.5, -5.0, 2.8, 0.87, 0.0, 0.06, 1.0),
    "fear": Prosody(1.40, 2.0, 1.0, 5.0, 0.86, 1.0, 0.12, 0.7),
    "happiness": Prosody(1.25, 5.0, 1.0, 5.5, 0.90, 0.0, 0.04, 0.6),
    "sadness": Prosody(0.85, 0.5, -1.5, 2.5, 0.78, 0.0, 0.16, 1.6),
    "surprise": Prosody(1.20, 2.0, 8.0, 4.0, 0.90, 0.0, 0.05, 0.6),
}

# F1-F3 (Hz) of five vowels (Peterson & Barney), one per syllable.
_VOWEL_FORMANTS = np.array(
    [[730, 1090, 2440], [270, 2290, 3010], [300, 870, 2240], [530, 1840, 2480], [570, 840, 2410]]  # a i u e o
)
_FORMANT_BANDWIDTHS = np.array([80.0, 100.0, 120.0])


def _jittered(prosody: Prosody, rng: np.random.Generator) -> Prosody:
    """The class's prosody with clip-to-clip variation, so no clip is a template copy."""
    return dataclasses.replace(
        prosody,
        pitch_level=prosody.pitch_level * 2 ** (rng.normal(0, 0.7) / 12),
        accent_st=prosody.accent_st * rng.uniform(0.8, 1.2),
        glide_st=prosody.glide_st + rng.normal(0, 0.7),
        syllables_per_s=prosody.syllables_per_s * rng.uniform(0.85, 1.15),
        harmonic_decay=float(np.clip(prosody.harmonic_decay + rng.normal(0, 0.01), 0.7, 0.95)),
        tremor_st=prosody.tremor_st * rng.uniform(0.8, 1.2),
        breathiness=prosody.breathiness * rng.uniform(0.8, 1.2),
    )


def _syllables(duration_s: float, lead_s: float, rate: float, rng: np.random.Generator) -> list[tuple[float, float]]:
    """(start, length) of each voiced stretch, in seconds, until the utterance ends."""
    syllables, start = [], lead_s
    while start < duration_s - 0.05:
        period = rng.uniform(0.8, 1.2) / rate
        syllables.append((start, min(period * rng.uniform(0.6, 0.85), duration_s - start)))
        start += period
    return syllables


def _pitch_contour(
    t: np.ndarray, base_hz: float, prosody: Prosody, centres: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """f0 (Hz) at times `t`: glide over the utterance, an accent per syllable (at `centres`), tremor, wander."""
    duration = t[-1] + 1 / SAMPLE_RATE
    accents = rng.uniform(-0.5, 0.5, len(centres)) * prosody.accent_st
    semitones = prosody.glide_st * (t / duration - 0.5) + np.interp(t, centres, accents)
    semitones += prosody.tremor_st * np.sin(2 * np.pi * rng.uniform(6, 9) * t + rng.uniform(0, 2 * np.pi))
    wander = _smooth_noise(rng, (int(duration * 100) + 2,), memory=0.8)  # natural pitch wander, 10 ms steps
    semitones += 0.15 * np.interp(t, np.arange(len(wander)) / 100, wander)
    return base_hz * prosody.pitch_level * 2 ** (semitones / 12)


def _glottal_source(f0: np.ndarray, decay: float) -> np.ndarray:
    """Harmonics k with amplitude decay**k, in closed form (a discrete summation formula)."""
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    return decay * np.sin(phase) / (1 - 2 * decay * np.cos(phase) + decay**2)


@functools.cache
def _vowel_response(vowel: int, n_fft: int) -> np.ndarray:
    """Frequency response of the vowel's formants as cascaded two-pole resonators (unit gain at DC), on an rfft grid."""
    formants = _VOWEL_FORMANTS[vowel]
    z = np.exp(-2j * np.pi * np.fft.rfftfreq(n_fft))  # z^-1 on the unit circle, cycles per sample
    response = np.ones_like(z)
    for freq, bandwidth in zip(formants, _FORMANT_BANDWIDTHS):
        r, theta = np.exp(-np.pi * bandwidth / SAMPLE_RATE), 2 * np.pi * freq / SAMPLE_RATE
        a1, a2 = -2 * r * np.cos(theta), r * r
        response *= (1 + a1 + a2) / (1 + a1 * z + a2 * z * z)
    return response


def _syllable_envelope(t: np.ndarray, start: float, length: float, attack: float) -> np.ndarray:
    u = np.clip((t - start) / length, 0, 1)
    shape = u**attack * (1 - u) ** 1.2
    peak = (attack / (attack + 1.2)) ** attack * (1.2 / (attack + 1.2)) ** 1.2
    return shape / peak


def synthesize_voice(
    base_pitch_hz: float, label: int, num_samples: int, *, loudness_rms: float, lead_s: float, rng: np.random.Generator
) -> np.ndarray:
    """(num_samples,) float32 mono "speech" at SAMPLE_RATE with the prosody of class `label`.

    `loudness_rms` and `lead_s` (silence before the first syllable) come from the caller so that they
    can be drawn independently of the class.
    """
    prosody = _jittered(PROSODY[CLASSES[label]], rng)
    t = np.arange(num_samples) / SAMPLE_RATE
    syllables = _syllables(num_samples / SAMPLE_RATE, lead_s, prosody.syllables_per_s, rng)
    centres = np.array([start + length / 2 for start, length in syllables])
    source = _glottal_source(_pitch_contour(t, base_pitch_hz, prosody, centres, rng), prosody.harmonic_decay)
    source += prosody.breathiness * source.std() * rng.normal(size=num_samples)
    n_fft = 1 << int(np.ceil(np.log2(num_samples + 4096)))  # room for the resonators to ring out unwrapped
    spectrum = np.fft.rfft(source, n_fft)
    vowels = rng.integers(len(_VOWEL_FORMANTS), size=len(syllables))
    voice = np.zeros(num_samples)
    for vowel in np.unique(vowels):
        sound = np.fft.irfft(spectrum * _vowel_response(int(vowel), n_fft), n_fft)[:num_samples]
        for (start, length), v in zip(syllables, vowels):
            if v == vowel:
                span = slice(int(start * SAMPLE_RATE), min(num_samples, int(np.ceil((start + length) * SAMPLE_RATE))))
                envelope = _syllable_envelope(t[span], start, length, prosody.attack)
                voice[span] += sound[span] * envelope * rng.uniform(0.6, 1.0)
    voice *= loudness_rms / max(np.sqrt(np.mean(voice**2)), 1e-12)
    return np.clip(voice, -0.99, 0.99).astype(np.float32)


# ----------------------------------------------------------------------------------------------------
# Clips


@dataclasses.dataclass
class Clip:
    frames: np.ndarray  # (T, H, W, 3) uint8 RGB
    fps: int
    audio: np.ndarray  # (N,) float32 mono in [-1, 1], N = T / fps * sample_rate
    sample_rate: int


def render_clip(identity: Identity, label: int, rng: np.random.Generator) -> Clip:
    """One clip of `identity` going from neutral to the apex of class `label`, with its voice.

    The scene (length, timing, placement, jitter, background, brightness, loudness) comes from a
    stream split off `rng` that the label never reaches: the same rng gives the same scene for every
    class.
    """
    if not 0 <= label < len(CLASSES):
        raise ValueError(f"label {label} is not a class index in 0..{len(CLASSES) - 1}")
    scene_rng, face_rng, voice_rng = rng.spawn(3)
    scene = _draw_scene(scene_rng)
    faces = _animate_face(identity, label, scene, intensity=float(face_rng.uniform(0.7, 1.3)))
    frames = np.stack([_place(face, scene, t) for t, face in enumerate(faces)])
    num_samples = round(scene.num_frames / FPS * SAMPLE_RATE)
    audio = synthesize_voice(
        identity.base_pitch_hz,
        label,
        num_samples,
        loudness_rms=scene.loudness_rms,
        lead_s=scene.speech_lead_s,
        rng=voice_rng,
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


# ----------------------------------------------------------------------------------------------------
# The corpus


def clip_rng(seed: int, subject: str, label: int, k: int) -> np.random.Generator:
    """A clip's own generator: depends only on what names the clip, so worker order does not matter."""
    return np.random.default_rng([seed, zlib.crc32(subject.encode()), label, k])


def split_subjects(subjects: list[str], val_fraction: float, seed: int) -> dict[str, str]:
    """subject -> "train" | "validation": a seeded shuffle, the first ~val_fraction to validation."""
    order = sorted(subjects)
    np.random.default_rng(seed).shuffle(order)
    num_val = min(len(order) - 1, max(1, round(val_fraction * len(order)))) if val_fraction > 0 else 0
    return {s: ("validation" if i < num_val else "train") for i, s in enumerate(order)}


@dataclasses.dataclass(frozen=True)
class _Job:
    identity: Identity
    label: int
    k: int
    seed: int
    out_dir: str
    split: str

    @property
    def relative_path(self) -> str:
        return f"{self.split}/{self.identity.subject}/{CLASSES[self.label]}_{self.k}.mp4"


def _write_job(job: _Job) -> dict:
    clip = render_clip(job.identity, job.label, clip_rng(job.seed, job.identity.subject, job.label, job.k))
    write_clip_mp4(os.path.join(job.out_dir, job.relative_path), clip)
    return {
        "path": job.relative_path,
        "label": job.label,
        "label_name": CLASSES[job.label],
        "subject": job.identity.subject,
        "split": job.split,
    }


def _existing_manifest(out_dir: Path, settings: dict) -> dict | None:
    """The manifest already in `out_dir` when all its files exist (None when there is none to reuse).

    A corpus made with other settings is not overwritten: its clips would mix with the new ones.
    """
    try:
        manifest = json.loads((out_dir / MANIFEST).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    differing = sorted(key for key, value in settings.items() if manifest.get(key) != value)
    if differing:
        raise ConfigError(
            f"{out_dir / MANIFEST}: a demo corpus made with other settings ({', '.join(differing)}) is already "
            "there; choose another output folder or delete this one"
        )
    return manifest if all((out_dir / clip["path"]).is_file() for clip in manifest["clips"]) else None


def write_demo_corpus(
    out_dir: str | os.PathLike,
    *,
    clips_per_subject_and_class: int = 1,
    val_fraction: float = 0.2,
    seed: int = 0,
    num_workers: int | None = None,
    identities: list[Identity] | None = None,
) -> list[dict]:
    """Write the demo corpus under `out_dir` and return its clips' manifest entries.

    Files go to `out_dir/<split>/<subject>/<class>_<k>.mp4`; `out_dir/manifest.json` lists them
    ({"path", "label", "label_name", "subject", "split"}) with the settings, the subjects and the
    number of dropped identities. Splits are subject-disjoint. A complete corpus made with the same
    settings is returned as it is. `identities` defaults to every scikit-image face dlib finds (tests
    pass a few). Workers are spawned, so a script calling this needs an `if __name__ == "__main__":` guard.
    """
    if clips_per_subject_and_class < 1 or not 0 <= val_fraction < 1:
        raise ConfigError(
            f"demo corpus: need clips_per_subject_and_class >= 1 and 0 <= val_fraction < 1, "
            f"got {clips_per_subject_and_class} and {val_fraction}"
        )
    if identities is not None and len({i.subject for i in identities}) != len(identities):
        raise ConfigError("demo corpus: two identities share a subject id; their clips would overwrite each other")
    out_dir = Path(out_dir)
    settings = {
        "seed": seed,
        "clips_per_subject_and_class": clips_per_subject_and_class,
        "val_fraction": val_fraction,
        "identities": "scikit-image" if identities is None else sorted(i.subject for i in identities),
    }
    if (manifest := _existing_manifest(out_dir, settings)) is not None:
        return manifest["clips"]  # checked before loading identities: a rerun costs no face detection
    dropped = 0
    if identities is None:
        identities, dropped = load_identities()
    subjects = sorted(i.subject for i in identities)
    splits = split_subjects(subjects, val_fraction, seed)
    jobs = [
        _Job(identity, label, k, seed, str(out_dir), splits[identity.subject])
        for identity in identities
        for label in range(len(CLASSES))
        for k in range(clips_per_subject_and_class)
    ]
    clips = _run_jobs(jobs, num_workers or os.cpu_count() or 1)
    clips.sort(key=lambda c: c["path"])
    manifest = {**settings, "subjects": subjects, "classes": list(CLASSES), "dropped_identities": dropped}
    manifest["clips"] = clips
    out_dir.mkdir(parents=True, exist_ok=True)
    partial = out_dir / (MANIFEST + ".partial")
    partial.write_text(json.dumps(manifest, indent=1))
    partial.replace(out_dir / MANIFEST)  # the manifest appears only once every clip is on disk
    return clips


def _run_jobs(jobs: list[_Job], num_workers: int) -> list[dict]:
    # Fresh (spawned) workers with one BLAS thread each: the pool already fills the cores, and
    # OpenBLAS threads fighting over them were 10x slower on the small solves here. Spawning (not
    # forking) also keeps workers clear of any threads the caller runs (JAX's, say).
    context = multiprocessing.get_context("spawn")
    progress = tqdm(total=len(jobs), desc="demo corpus", unit="clip")
    with _single_threaded_libraries(), progress:
        pool = concurrent.futures.ProcessPoolExecutor(
            num_workers, mp_context=context, initializer=cv2.setNumThreads, initargs=(1,)
        )
        with pool:
            futures = [pool.submit(_write_job, job) for job in jobs]
            clips = []
            for future in concurrent.futures.as_completed(futures):
                clips.append(future.result())
                progress.update()
    return clips


_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


@contextlib.contextmanager
def _single_threaded_libraries():
    """Child processes started inside see one-thread settings for the numeric libraries."""
    saved = {name: os.environ.get(name) for name in _THREAD_VARIABLES}
    os.environ.update({name: "1" for name in _THREAD_VARIABLES})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
