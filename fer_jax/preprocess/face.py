"""Face detection, tracking and 68-point landmarks with dlib.

dlib's HOG frontal-face detector, its correlation tracker and the iBUG 68-point shape predictor
(shipped by the `face-recognition-models` package, so nothing is downloaded) are the tools the
3D-CNN + ConvLSTM paper used. Detection is the slow part, so a clip is detected once and then
tracked; the detector runs again only when the tracker's confidence drops.
"""

from __future__ import annotations

import dataclasses
import functools

import dlib
import numpy as np

NUM_LANDMARKS = 68
# Peak-to-sidelobe ratio under which dlib's correlation tracker is considered lost (dlib's docs
# call values above ~7 a confident track).
TRACKER_MIN_CONFIDENCE = 7.0


@functools.cache
def _detector():
    return dlib.get_frontal_face_detector()


@functools.cache
def _shape_predictor():
    import face_recognition_models

    return dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())


def _as_gray_uint8(image: np.ndarray) -> np.ndarray:
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


def detect_faces(image: np.ndarray, upsample: int = 1) -> list[Box]:
    """All frontal faces in `image` (H, W[, C]), largest first."""
    boxes = [Box.from_dlib(r) for r in _detector()(_as_gray_uint8(image), upsample)]
    return sorted(boxes, key=lambda b: b.area, reverse=True)


def landmarks(image: np.ndarray, box: Box) -> np.ndarray:
    """The 68 iBUG landmarks (68, 2) as float32 (x, y) pixel coordinates of the face in `box`."""
    shape = _shape_predictor()(_as_gray_uint8(image), box.to_dlib())
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


def largest_face_landmarks(image: np.ndarray, upsample: int = 1) -> np.ndarray | None:
    """Landmarks (68, 2) of the largest face in `image`, or None when no face is found."""
    boxes = detect_faces(image, upsample)
    return landmarks(image, boxes[0]) if boxes else None


@dataclasses.dataclass
class TrackResult:
    """Per-frame result of `track_face` for a clip of T frames."""

    landmarks: np.ndarray  # (T, 68, 2) float32; rows of frames without a face are NaN
    boxes: np.ndarray  # (T, 4) float32 left, top, right, bottom; NaN where no face
    found: np.ndarray  # (T,) bool
    detections: int  # how many frames ran the (slow) detector


def track_face(frames, upsample: int = 1, min_confidence: float = TRACKER_MIN_CONFIDENCE) -> TrackResult:
    """Follow the largest face through `frames` (iterable of (H, W[, C]) uint8 arrays).

    The detector runs on the first frame and again whenever the correlation tracker is lost (or no
    face has been found yet); otherwise the tracker's box feeds the shape predictor.
    """
    tracker = None
    all_landmarks, all_boxes, found = [], [], []
    detections = 0
    for frame in frames:
        gray = _as_gray_uint8(frame)
        box = None
        if tracker is not None and tracker.update(gray) >= min_confidence:
            box = Box.from_dlib(tracker.get_position())
        if box is None:
            detections += 1
            boxes = detect_faces(gray, upsample)
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
