"""Alignment checked from the outside: dlib, run again on the aligned crop, must find the eyes
where `canonical_eye_positions` says they are."""

import cv2
import numpy as np
import pytest
import skimage.data

from fer_jax.preprocess import align, face

SIZE = 64
UPSCALE = 4  # dlib's detector needs faces of ~80 px; a 64 px crop holds a ~50 px face
PAD = 32  # replicated border around the upscaled crop, so the detector's window has some context
TOLERANCE_PX = 2.0


@pytest.fixture(scope="module")
def astronaut():
    return skimage.data.astronaut()


# Centre of the astronaut's face in the photograph (dlib's box is about x 175-265, y 76-166).
FACE_CENTRE = np.array([220.0, 121.0])


def _rotated(image, degrees, scale):
    """(`image` rotated by `degrees` counter-clockwise and scaled about its centre, where the face centre went)."""
    h, w = image.shape[:2]
    out_w, out_h = int(round(w * scale)), int(round(h * scale))
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, scale)
    matrix[:, 2] += (out_w / 2 - w / 2, out_h / 2 - h / 2)
    rotated = cv2.warpAffine(image, matrix, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return rotated, matrix[:, :2] @ FACE_CENTRE + matrix[:, 2]


def _her_landmarks(image, face_centre):
    """Landmarks of the detection around `face_centre`: rotated copies also give false detections
    on the spacesuit, sometimes larger than her face."""
    for box in face.detect_faces(image, upsample=0):
        if box.left < face_centre[0] < box.right and box.top < face_centre[1] < box.bottom:
            return face.landmarks(image, box)
    raise AssertionError("dlib does not find the astronaut's face")


def _redetect(crop):
    """Landmarks (68, 2) found by dlib on an aligned crop, in the crop's own pixel coordinates."""
    big = cv2.resize(crop[..., 0] if crop.shape[2] == 1 else crop, (SIZE * UPSCALE,) * 2, interpolation=cv2.INTER_CUBIC)
    big = cv2.copyMakeBorder(big, PAD, PAD, PAD, PAD, cv2.BORDER_REPLICATE)
    boxes = face.detect_faces(big, upsample=0)
    assert boxes, "dlib finds no face in the aligned crop"
    points = face.landmarks(big, boxes[0]).astype(np.float64) - PAD
    # cv2.resize keeps pixel centres aligned: big pixel p covers crop coordinate (p + 0.5) / UPSCALE - 0.5.
    return (points + 0.5) / UPSCALE - 0.5


def test_astronaut_face_is_found(astronaut):
    boxes = face.detect_faces(astronaut, upsample=0)
    assert len(boxes) == 1
    box = boxes[0]
    assert 150 < box.left < box.right < 300 and 50 < box.top < box.bottom < 200  # her face, not the flag


@pytest.mark.parametrize("degrees, scale", [(0, 1.0), (13, 1.0), (-12, 1.0), (13, 2.0)])
def test_eyes_land_on_canonical_positions(astronaut, degrees, scale):
    image, face_centre = _rotated(astronaut, degrees, scale) if degrees or scale != 1.0 else (astronaut, FACE_CENTRE)
    points = _her_landmarks(image, face_centre)
    left, right = align.eye_centers(points)
    if degrees:  # the input really is tilted, so passing needs the rotation to be removed
        assert abs(left[1] - right[1]) > 0.15 * abs(right[0] - left[0])

    crop, crop_points = align.align_face(image, points, SIZE, grayscale=True)
    assert crop.shape == (SIZE, SIZE, 1) and crop.dtype == np.uint8

    found = _redetect(crop)
    found_left, found_right = align.eye_centers(found)
    want_left, want_right = align.canonical_eye_positions(SIZE)
    np.testing.assert_allclose(found_left, want_left, atol=TOLERANCE_PX)
    np.testing.assert_allclose(found_right, want_right, atol=TOLERANCE_PX)
    # The landmarks align_face returns are where dlib sees the face parts in the crop.
    assert np.median(np.linalg.norm(crop_points - found, axis=1)) < TOLERANCE_PX


def test_rgb_crop_matches_gray_crop(astronaut):
    points = face.largest_face_landmarks(astronaut, upsample=0)
    rgb, rgb_points = align.align_face(astronaut, points, SIZE, grayscale=False)
    gray, gray_points = align.align_face(astronaut, points, SIZE, grayscale=True)
    assert rgb.shape == (SIZE, SIZE, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb_points, gray_points)
    luma = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(int)
    assert np.abs(luma - gray[..., 0]).max() <= 2  # same window; RGB order (BGR would shift luma a lot)


def test_canonical_layout_is_symmetric_and_level():
    left, right = align.canonical_eye_positions(SIZE)
    assert left[0] < right[0] and left[1] == right[1]
    assert (left[0] + right[0]) / 2 == pytest.approx((SIZE - 1) / 2)  # centred on the middle pixel centre
    assert right[0] - left[0] == pytest.approx(0.38 * SIZE)


def test_similarity_maps_eyes_exactly_and_is_a_similarity():
    rng = np.random.default_rng(0)
    for _ in range(20):
        left = rng.uniform(0, 500, 2)
        right = left + rng.uniform(20, 80) * np.array([np.cos(a := rng.uniform(-0.5, 0.5)), np.sin(a)])
        matrix = align.similarity_from_eyes(left, right, SIZE)
        assert matrix.shape == (2, 3)
        mapped = align.transform_points(np.stack([left, right]), matrix)
        np.testing.assert_allclose(mapped, np.stack(align.canonical_eye_positions(SIZE)), atol=1e-9)
        linear = matrix[:, :2]
        scale2 = np.linalg.det(linear)
        assert scale2 > 0  # no mirroring
        np.testing.assert_allclose(linear @ linear.T, scale2 * np.eye(2), atol=1e-12)


def test_coincident_eyes_raise():
    with pytest.raises(ValueError, match="coincide"):
        align.similarity_from_eyes((10.0, 10.0), (10.0, 10.0), SIZE)


def _blob_centroid(image):
    weights = image.astype(np.float64)
    weights -= weights.min()
    ys, xs = np.indices(weights.shape)
    return np.array([(weights * xs).sum(), (weights * ys).sum()]) / weights.sum()


@pytest.mark.parametrize("shrink", [0.9, 0.3, 0.07])
def test_pixels_go_where_the_landmarks_go(shrink):
    """A bright blob in the frame lands where transform_points sends its centre, also when
    align_face shrinks the frame with area averaging before warping (shrink < 0.5)."""
    iod = 0.38 * SIZE / shrink
    height, width = int(6 * iod) + 37, int(5 * iod) + 11  # odd sizes: resizing is not by whole factors
    left = np.array([width * 0.4, height * 0.45])
    right = left + iod * np.array([np.cos(0.2), np.sin(0.2)])
    points = np.zeros((68, 2))
    points[36:42], points[42:48] = left, right
    blob_centre = left + (right - left) * 0.5 + np.array([0.1, 0.4]) * iod
    ys, xs = np.indices((height, width))
    sigma = 2.5 / shrink  # ~2.5 px in the crop
    frame = (200 * np.exp(-((xs - blob_centre[0]) ** 2 + (ys - blob_centre[1]) ** 2) / (2 * sigma**2))).astype(np.uint8)

    crop, _ = align.align_face(frame, points, SIZE, grayscale=True)
    matrix = align.similarity_from_eyes(left, right, SIZE)
    want = align.transform_points(blob_centre, matrix)
    np.testing.assert_allclose(_blob_centroid(crop[..., 0]), want, atol=0.25)


def test_large_frames_are_averaged_not_aliased():
    """A face 10x larger than the crop: fine detail must average out (area prefilter), not alias
    into coarse patterns as plain bilinear sampling of every ~10th pixel would."""
    iod = 0.38 * SIZE * 10
    stripes = np.zeros((int(4 * iod), int(4 * iod)), np.uint8)
    stripes[:, ::2] = 255  # 1-pixel stripes: their average is mid-gray
    points = np.zeros((68, 2))
    points[36:42], points[42:48] = (1.5 * iod, 1.5 * iod), (2.5 * iod, 1.52 * iod)
    crop, _ = align.align_face(stripes, points, SIZE)
    assert abs(crop.mean() - 127.5) < 3 and crop.std() < 10
