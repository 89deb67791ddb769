"""Face detection, tracking and 68-point landmarks with dlib (and, optionally, OpenCV's Haar cascade).

dlib's HOG frontal-face detector, its correlation tracker and the iBUG 68-point shape predictor
(shipped by the `face-recognition-models` package, so nothing is downloaded) are the tools the
3D-CNN + ConvLSTM paper used. Detection is the slow part, so a clip is detected once and then
tracked; the detector runs again only when the tracker's confidence drops.

Detectors (`detect_faces(..., detector=...)`, the one place that knows them):
    "hog"   dlib's HOG + linear SVM frontal-face detector (the default).
    "haar"  OpenCV's frontal-face Haar cascade (`haarcascade_frontalface_default.xml` from
            `cv2.data.haarcascades`, shipped with opencv-python). Its boxes frame the face higher
            and larger than dlib's, and the shape predictor was trained on dlib's boxes, so each
            Haar box is mapped onto the box dlib would give (HAAR_TO_DLIB_*, measured on the 91
            LFW faces both find); that brings the landmarks from ~1.8% to ~1.5% of the
            inter-ocular distance (median) away from those found on dlib's own box.
Both find faces down to 80 / 2**upsample pixels wide (the HOG detector's 80 px window, upsampled).
Haar is not much faster at equal reach (one core, one 320x240 frame: HOG 47 ms, Haar 38 ms at
upsample 1; 9.5 and 13.6 ms at upsample 0), and since the tracker keeps the detector to about one
call per clip, a clip's cost hardly depends on the choice: pick by which finds the faces.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import os

import dlib
import numpy as np

NUM_LANDMARKS = 68
# Peak-to-sidelobe ratio under which dlib's correlation tracker is considered lost (dlib's docs
# call values above ~7 a confident track).
TRACKER_MIN_CONFIDENCE = 7.0
DETECTORS = ("hog", "haar")
# Smallest face (pixels) found at upsample=0: the HOG detector's window. Haar uses the same rule.
_MIN_FACE_PX = 80
# Haar box (x, y, w, h) -> dlib-like box: centre moved down by HAAR_TO_DLIB_SHIFT * w, side scaled
# by HAAR_TO_DLIB_SCALE (medians over 91 LFW faces; spread ~0.03 and ~0.08).
HAAR_TO_DLIB_SHIFT = 0.056
HAAR_TO_DLIB_SCALE = 0.885
# Haar cascade settings: OpenCV's usual ones. Its trained window is 24 x 24 pixels.
_HAAR_SCALE_FACTOR = 1.1
_HAAR_MIN_NEIGHBORS = 5
_HAAR_WINDOW = 24


@functools.cache
def _detector():
    return dlib.get_frontal_face_detector()


@functools.cache
def _haar_cascade():
    import cv2

    path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise RuntimeError(f"OpenCV could not load its Haar cascade {path}; reinstall opencv-python-headless")
    return cascade


def shape_predictor_path() -> str:
    """Path of the iBUG 68-point model inside the installed `face-recognition-models` package.

    Found without importing the package: its __init__ imports `pkg_resources`, which setuptools
    >= 81 no longer ships, and which only served to build this very path.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("face-recognition-models is not installed; pip install face-recognition-models")
    path = os.path.join(spec.submodule_search_locations[0], "models", "shape_predictor_68_face_landmarks.dat")
    if not os.path.isfile(path):
        raise RuntimeError(f"{path} is missing; reinstall face-recognition-models")
    return path


@functools.cache
def _shape_predictor():
    return dlib.shape_predictor(shape_predictor_path())


def as_gray_uint8(image: np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, C) array -> contiguous (H, W) uint8, the form dlib's detector is fastest on."""
    if image.ndim == 3:
        if image.shape[2] == 1:
            image = image[..., 0]
        else:  # ITU-R BT.601 luma, as OpenCV's RGB2GRAY
            image = image[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
            image = np.clip(np.rint(image), 0, 255)
    return np.ascontiguousarray(image.astype(np.uint8))


@dataclasses.dataclass(frozen=True)
class Box:
    """A face box in pixel coordinates of the frame (left, top inclusive; right, bottom exclusive)."""

    left: float
    top: float
    right: float
    bottom: float

    @property
    def area(self) -> float:
        return max(0.0, self.right - self.left) * max(0.0, self.bottom - self.top)

    def to_dlib(self) -> dlib.rectangle:
        return dlib.rectangle(int(round(self.left)), int(round(self.top)), int(round(self.right)), int(round(self.bottom)))

    @classmethod
    def from_dlib(cls, r) -> "Box":
        return cls(float(r.left()), float(r.top()), float(r.right()), float(r.bottom()))


def _haar_boxes(gray: np.ndarray, upsample: int) -> list[Box]:
    """Haar detections of faces >= 80 / 2**upsample px, as dlib-like boxes (see the module docstring)."""
    import cv2

    min_face = _MIN_FACE_PX / 2**upsample
    # The cascade cannot see faces smaller than its window: enlarge the image instead.
    zoom = max(1.0, _HAAR_WINDOW / min_face)
    if zoom > 1.0:
        gray = cv2.resize(gray, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_LINEAR)
    side = int(round(min_face * zoom))
    found = _haar_cascade().detectMultiScale(
        gray, scaleFactor=_HAAR_SCALE_FACTOR, minNeighbors=_HAAR_MIN_NEIGHBORS, minSize=(side, side)
    )
    boxes = []
    for x, y, w, h in np.asarray(found, np.float64).reshape(-1, 4) / zoom:
        cx, cy = x + w / 2, y + h / 2 + HAAR_TO_DLIB_SHIFT * w
        half = HAAR_TO_DLIB_SCALE * w / 2
        boxes.append(Box(cx - half, cy - half, cx + half, cy + half))
    return boxes


def detect_faces(image: np.ndarray, upsample: int = 1, detector: str = "hog") -> list[Box]:
    """All frontal faces in `image` (H, W[, C]), largest first, found by `detector` ("hog" or "haar")."""
    gray = as_gray_uint8(image)
    if detector == "hog":
        boxes = [Box.from_dlib(r) for r in _detector()(gray, upsample)]
    elif detector == "haar":
        boxes = _haar_boxes(gray, upsample)
    else:
        raise ValueError(f"unknown face detector {detector!r}; expected one of {DETECTORS}")
    return sorted(boxes, key=lambda b: b.area, reverse=True)


def landmarks(image: np.ndarray, box: Box) -> np.ndarray:
    """The 68 iBUG landmarks (68, 2) as float32 (x, y) pixel coordinates of the face in `box`."""
    shape = _shape_predictor()(as_gray_uint8(image), box.to_dlib())
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


def largest_face_landmarks(image: np.ndarray, upsample: int = 1, detector: str = "hog") -> np.ndarray | None:
    """Landmarks (68, 2) of the largest face in `image`, or None when no face is found."""
    boxes = detect_faces(image, upsample, detector)
    return landmarks(image, boxes[0]) if boxes else None


@dataclasses.dataclass
class TrackResult:
    """Per-frame result of `track_face` for a clip of T frames."""

    landmarks: np.ndarray  # (T, 68, 2) float32; rows of frames without a face are NaN
    boxes: np.ndarray  # (T, 4) float32 left, top, right, bottom; NaN where no face
    found: np.ndarray  # (T,) bool
    detections: int  # how many frames ran the (slow) detector


def track_face(
    frames, upsample: int = 1, min_confidence: float = TRACKER_MIN_CONFIDENCE, detector: str = "hog"
) -> TrackResult:
    """Follow the largest face through `frames` (iterable of (H, W[, C]) uint8 arrays).

    The detector (`detect_faces`'s `detector`) runs on the first frame and again whenever the
    correlation tracker is lost (or no face has been found yet); otherwise the tracker's box feeds
    the shape predictor.
    """
    tracker = None
    all_landmarks, all_boxes, found = [], [], []
    detections = 0
    for frame in frames:
        gray = as_gray_uint8(frame)
        box = None
        if tracker is not None and tracker.update(gray) >= min_confidence:
            box = Box.from_dlib(tracker.get_position())
        if box is None:
            detections += 1
            boxes = detect_faces(gray, upsample, detector)
            tracker = None
            if boxes:
                box = boxes[0]
                tracker = dlib.correlation_tracker()
                tracker.start_track(gray, box.to_dlib())
        if box is None:
            all_landmarks.append(np.full((NUM_LANDMARKS, 2), np.nan, np.float32))
            all_boxes.append(np.full(4, np.nan, np.float32))
            found.append(False)
            continue
        all_landmarks.append(landmarks(gray, box))
        all_boxes.append(np.array([box.left, box.top, box.right, box.bottom], np.float32))
        found.append(True)
    if not found:
        return TrackResult(np.zeros((0, NUM_LANDMARKS, 2), np.float32), np.zeros((0, 4), np.float32), np.zeros(0, bool), 0)
    return TrackResult(np.stack(all_landmarks), np.stack(all_boxes), np.array(found), detections)
