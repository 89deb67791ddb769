"""Face alignment: a similarity transform that puts the two eye centres at fixed crop positions.

Canonical layout, in fractions of the crop side (0 = left/top edge of the first pixel, 1 = the
far edge of the last): eye centres at x = 0.31 and 0.69 (inter-ocular distance 0.38), y = 0.32.
On an average face (measured on dlib's 68 points) the chin lies ~1.75 inter-ocular distances
below the eyes and the jaw ~1.07 to each side, so this crop is tight: the jaw line spans x ~0.1
to 0.9, the chin sits at y ~0.98, the brows at ~0.2 and an open mouth stays inside; little
background or hair is left for a model to latch on to.

`box_scale` s > 1 widens the window by s about the crop centre (same output size, so the face is
s times smaller): the eyes move to 0.5 + (EYE_X - 0.5) / s and 0.5 + (EYE_Y - 0.5) / s, and the
central 1/s of a box_scale-s crop shows what the tight crop shows. 1.25 adds 25% context.

Pixel coordinates follow OpenCV and dlib: the centre of pixel (i, j) is at x = j, y = i, so a
fraction u of the crop is pixel coordinate u * size - 0.5. "Left eye" means the eye on the
image's left (the subject's right eye, iBUG points 36-41).
"""

from __future__ import annotations

import cv2
import numpy as np

EYE_Y = 0.32
EYE_X = (0.31, 0.69)
LEFT_EYE_POINTS = slice(36, 42)  # the eye on the image's left
RIGHT_EYE_POINTS = slice(42, 48)
# Below this scale a bilinear warp skips source pixels and aliases; shrink with area averaging first.
_MIN_DIRECT_SCALE = 0.5


def eye_centers(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(left_xy, right_xy), each (2,) float64: means of iBUG points 36-41 and 42-47 of (68, 2)."""
    landmarks = np.asarray(landmarks, np.float64)
    return landmarks[LEFT_EYE_POINTS].mean(axis=0), landmarks[RIGHT_EYE_POINTS].mean(axis=0)


def canonical_eye_positions(size: int, box_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(left_xy, right_xy) (2,) float64: where the eye centres land in a size x size crop."""
    if box_scale <= 0:
        raise ValueError(f"box_scale must be positive, got {box_scale}")

    def place(fraction):  # a fraction of the tight crop -> pixel coordinate of the widened one
        # Written so that box_scale = 1 gives fraction * size - 0.5 bit for bit (unchanged crops).
        return fraction * size / box_scale + 0.5 * size * (1.0 - 1.0 / box_scale) - 0.5

    left = np.array([place(EYE_X[0]), place(EYE_Y)])
    right = np.array([place(EYE_X[1]), place(EYE_Y)])
    return left, right


def similarity_from_eyes(left_eye, right_eye, size: int, box_scale: float = 1.0) -> np.ndarray:
    """(2, 3) float64 matrix M with crop_xy = M @ [x, y, 1] for frame coordinates (x, y).

    Rotation, uniform scale and translation chosen so that both eye centres land exactly on
    `canonical_eye_positions(size, box_scale)`. Written with complex numbers: a similarity is
    z -> a z + b.
    """
    src_l, src_r = (complex(*np.asarray(p, np.float64)) for p in (left_eye, right_eye))
    dst_l, dst_r = (complex(*p) for p in canonical_eye_positions(size, box_scale))
    if abs(src_r - src_l) < 1e-6:
        raise ValueError(f"eye centres coincide ({left_eye}, {right_eye}); landmarks are degenerate")
    a = (dst_r - dst_l) / (src_r - src_l)
    b = dst_l - a * src_l
    return np.array([[a.real, -a.imag, b.real], [a.imag, a.real, b.imag]])


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine matrix to points (..., 2); returns float64 (..., 2)."""
    points = np.asarray(points, np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def _prefilter(image: np.ndarray, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shrink `image` by area averaging when the warp would shrink it a lot; adjust `matrix` to match.

    warpAffine's bilinear interpolation looks at 2x2 source pixels per output pixel, so a face
    several times larger than the crop (e.g. 1280x720 corpora) would alias. cv2.resize with
    INTER_AREA averages whole blocks; the warp then only has a small scale left to do.
    """
    scale = np.sqrt(abs(np.linalg.det(matrix[:, :2])))
    if scale >= _MIN_DIRECT_SCALE:
        return image, matrix
    factor = int(1.0 / scale)  # the warp's remaining scale, scale * factor, is then in (1 - scale, 1]
    height, width = image.shape[:2]
    new_w, new_h = max(1, round(width / factor)), max(1, round(height / factor))
    small = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
    # Pixel centres: small x' sits at original x = (x' + 0.5) * width / new_w - 0.5.
    sx, sy = width / new_w, height / new_h
    to_original = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])
    return small, matrix @ to_original


def align_face(
    frame: np.ndarray, landmarks: np.ndarray, size: int = 64, grayscale: bool = True, box_scale: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Crop a face so that its eye centres land on `canonical_eye_positions(size, box_scale)`.

    frame: (H, W, 3) uint8 RGB or (H, W[, 1]) uint8 gray; landmarks: (68, 2) (x, y) in frame pixels.
    Returns (crop (size, size, 1) uint8 if grayscale else (size, size, 3), landmarks (68, 2) float32
    in crop pixel coordinates). Pixels outside the frame repeat its border (cv2.BORDER_REPLICATE),
    so a face near the edge gets smeared edges rather than black wedges that look like features.
    """
    frame = np.asarray(frame)
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[..., 0]
    if grayscale and frame.ndim == 3:
        # Convert before warping: one channel is a third of the interpolation work.
        frame = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    elif not grayscale and frame.ndim == 2:
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    matrix = similarity_from_eyes(*eye_centers(landmarks), size, box_scale)
    source, warp = _prefilter(frame, matrix)
    crop = cv2.warpAffine(source, warp, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if crop.ndim == 2:
        crop = crop[..., None]
    return crop, transform_points(landmarks, matrix).astype(np.float32)
