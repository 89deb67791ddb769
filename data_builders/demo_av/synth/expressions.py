"""Expressions: each class's landmark displacements at the apex, in the face's own frame (FACS prototypes)."""

from __future__ import annotations

import dataclasses

import numpy as np

from data_builders.demo_av.synth.settings import CLASSES, FACE_CONFUSIONS, confused_with



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
INNER_LIP_CONTOUR = tuple(range(60, 68))

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
TEETH_RGB = (215.0, 210.0, 200.0)
MOUTH_CAVITY_RGB = (45.0, 24.0, 24.0)
TEETH_HEIGHT = 0.13  # inter-ocular distances (upper incisors show ~9 mm of a ~63 mm eye distance)


def face_axes(landmarks: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """(inter-ocular distance, unit vector across the face from its right eye to its left, unit vector down)."""
    between = landmarks[42:48].mean(0) - landmarks[36:42].mean(0)
    iod = float(np.linalg.norm(between))
    across = between / iod
    return iod, across, np.array([-across[1], across[0]])


def apex_displacements(landmarks: np.ndarray, label: int, *, confusable: bool = False) -> np.ndarray:
    """(68, 2) pixel displacements of `landmarks` at the apex of class `label`, at intensity 1.

    `confusable`: the average apex of the classes FACE_CONFUSIONS groups with `label` (itself alone
    when in no group), so that those classes look alike."""
    if confusable:
        group = confused_with(label, FACE_CONFUSIONS)
        return np.mean([apex_displacements(landmarks, c) for c in group], axis=0, dtype=np.float32)
    iod, across, down = face_axes(landmarks)
    offset = landmarks @ across - landmarks[27:31].mean(0) @ across  # signed distance from the nose's line
    side = np.where(np.abs(offset) < 0.05 * iod, 0.0, np.sign(offset))  # points on the midline have no "out"
    moved = np.zeros_like(landmarks, dtype=np.float32)
    for move in EXPRESSION_MOVES[CLASSES[label]]:
        idx = list(move.points)
        moved[idx] += iod * (move.out * side[idx, None] * across + move.down * down)
    return moved
