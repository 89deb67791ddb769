"""Identities: scikit-image's real faces (the astronaut, the LFW subset) with dlib's landmarks and a voice pitch each."""

from __future__ import annotations

import dataclasses
import functools
import os
import zlib

import cv2
import numpy as np

from data_builders.demo_av.synth.settings import TILE_SIZE



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
