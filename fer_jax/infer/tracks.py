"""Face tracks over a video stream: one id per face, with the detector and tracker training used.

The preprocessing of the records (`fer_jax.preprocess.face.track_face`) detects once and follows
the largest face with dlib's correlation tracker, detecting again when it is lost. `FaceTracker`
does the same frame by frame on an unbounded stream, and can follow every face (`all_faces`):
then the detector also runs every `redetect_every` frames to pick up faces that walk in. A new
detection that overlaps a face followed (or lost less than `forget_after` frames ago) keeps that
face's id, so a face the tracker briefly loses is still the same track.

Frames over `detect_pixels` are downscaled before detection, tracking and landmarks (their cost
grows with the pixels; a face found at 720p is far larger than any model's crop); the boxes and
landmarks it returns are in the full frame's pixels, so the crops are still cut from the full frame.
"""

from __future__ import annotations

import dataclasses

import cv2
import dlib
import numpy as np

from fer_jax.infer.limits import DETECT_PIXELS, detection_scale
from fer_jax.preprocess import face

# Intersection over union above which a detection is taken to be an already known face.
SAME_FACE_IOU = 0.3


@dataclasses.dataclass
class TrackedFace:
    """One face in one frame: its track id, box (left, top, right, bottom) and 68 landmarks."""

    track_id: int
    box: np.ndarray  # (4,) float32
    landmarks: np.ndarray  # (68, 2) float32, frame pixel coordinates


@dataclasses.dataclass
class _Track:
    track_id: int
    tracker: object | None  # dlib.correlation_tracker while followed, None once lost
    box: np.ndarray
    last_seen: int


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (left, top, right, bottom) boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(0.0, w) * max(0.0, h)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def _as_array(box: face.Box) -> np.ndarray:
    return np.array([box.left, box.top, box.right, box.bottom], np.float32)


class FaceTracker:
    """Feed frames in order with `update`; get the faces followed in each."""

    def __init__(self, upsample: int = 1, detector: str = "hog", all_faces: bool = False,
                 redetect_every: int = 25, forget_after: int = 50,
                 min_confidence: float = face.TRACKER_MIN_CONFIDENCE, detect_pixels: int | None = DETECT_PIXELS):
        self.detect_pixels = detect_pixels
        self.upsample, self.detector, self.all_faces = upsample, detector, all_faces
        self.redetect_every, self.forget_after, self.min_confidence = redetect_every, forget_after, min_confidence
        self.tracks: list[_Track] = []
        self.next_id = 0
        self.frame_index = -1
        self.detections = 0

    def update(self, frame: np.ndarray) -> list[TrackedFace]:
        """Faces in `frame` ((H, W, 3) uint8 RGB), the largest first."""
        self.frame_index += 1
        gray = face.as_gray_uint8(frame)
        scale = detection_scale(*gray.shape[:2], self.detect_pixels)
        if scale < 1.0:
            size = (max(1, round(gray.shape[1] * scale)), max(1, round(gray.shape[0] * scale)))
            gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
        lost = False
        for track in self._followed():
            if track.tracker.update(gray) >= self.min_confidence:
                track.box = _as_array(face.Box.from_dlib(track.tracker.get_position()))
                track.last_seen = self.frame_index
            else:
                track.tracker, lost = None, True
        due = self.all_faces and self.frame_index % self.redetect_every == 0
        if lost or due or not self._followed():
            self._detect(gray)
        self.tracks = [t for t in self.tracks if self.frame_index - t.last_seen <= self.forget_after]
        # Tracks live in the (downscaled) detection frame; callers get full-frame pixels.
        faces = [TrackedFace(t.track_id, t.box / scale, face.landmarks(gray, face.Box(*t.box.tolist())) / scale)
                 for t in self._followed()]
        return sorted(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]), reverse=True)

    def _followed(self) -> list[_Track]:
        return [t for t in self.tracks if t.tracker is not None]

    def _detect(self, gray: np.ndarray) -> None:
        self.detections += 1
        boxes = [_as_array(b) for b in face.detect_faces(gray, self.upsample, self.detector)]
        if not self.all_faces:
            boxes = boxes[:1]  # the largest face, as the records were made
            for track in self.tracks:  # one face followed at a time: a new largest face replaces it
                if not boxes or iou(track.box, boxes[0]) < SAME_FACE_IOU:
                    track.tracker = None
        claimed = set()
        for box in boxes:
            candidates = [t for t in self.tracks if t.track_id not in claimed and iou(t.box, box) >= SAME_FACE_IOU]
            if candidates:
                track = max(candidates, key=lambda t: iou(t.box, box))
            else:
                track = _Track(self.next_id, None, box, self.frame_index)
                self.next_id += 1
                self.tracks.append(track)
            claimed.add(track.track_id)
            # (Re)start the correlation tracker on the detector's box: it corrects the tracker's drift.
            track.tracker = dlib.correlation_tracker()
            track.tracker.start_track(gray, face.Box(*box.tolist()).to_dlib())
            track.box, track.last_seen = box, self.frame_index
