"""LEMHI against a pixel-by-pixel NumPy float64 reference on a synthetic moving square, and the
behaviour it exists for: recency order, and landmark boosting of small movements."""

import numpy as np
import pytest
import skimage.data

from fer_jax.preprocess import clip, mhi

SIZE, T = 32, 6
THRESHOLD, ALPHA, SIGMA = 12.0, 1.0, 2.5


def _reference(frames, landmarks, threshold, alpha, sigma):
    """The module docstring's formula, one pixel at a time, in float64."""
    frames = frames.astype(np.float64)
    count, size = frames.shape[0], frames.shape[1]
    tau = count - 1
    history = np.zeros((size, size))
    for t in range(1, count):
        new = np.zeros((size, size))
        for y in range(size):
            for x in range(size):
                bumps = np.exp(-((x - landmarks[t, :, 0]) ** 2 + (y - landmarks[t, :, 1]) ** 2) / (2 * sigma**2))
                motion = abs(frames[t, y, x] - frames[t - 1, y, x]) * (1 + alpha * bumps.max())
                new[y, x] = tau if motion > threshold else max(0.0, history[y, x] - 1)
        history = new
    return np.rint(255 * history / tau).astype(np.uint8) if tau else np.zeros((size, size), np.uint8)


def _moving_square(flicker_at=None):
    """(T, SIZE, SIZE) uint8: a 6 x 6 square (200 on 40) moving 3 px right per frame at rows 4-9;
    optionally a faint 8-level flicker (below the threshold unboosted) in two 3 x 3 patches, one at
    `flicker_at` (y, x) and one at (26, 26), alternating every frame."""
    frames = np.full((T, SIZE, SIZE), 40, np.uint8)
    for t in range(T):
        frames[t, 4:10, 2 + 3 * t : 8 + 3 * t] = 200
        if flicker_at is not None and t % 2:
            for y, x in (flicker_at, (26, 26)):
                frames[t, y - 1 : y + 2, x - 1 : x + 2] += 8
    return frames


def _landmarks(points):
    """(T, 68, 2): the given (x, y) points, the rest parked far outside the crop."""
    landmarks = np.full((T, 68, 2), -1000.0)
    if points:
        landmarks[:, : len(points)] = points
    return landmarks


def test_lemhi_matches_the_reference_and_orders_motion_by_recency():
    frames = _moving_square()
    landmarks = _landmarks([(5.0, 20.0)])  # nowhere near the square: weights ~1 there
    got = mhi.lemhi(frames, landmarks, THRESHOLD, ALPHA, SIGMA)
    assert got.shape == (SIZE, SIZE, 1) and got.dtype == np.uint8
    np.testing.assert_array_equal(got[..., 0], _reference(frames, landmarks, THRESHOLD, ALPHA, SIGMA))  # exact
    row = got[6, :, 0]
    # The square (columns 2 + 3t .. 7 + 3t) changes 3 columns at each edge per step: the last step's
    # are the newest motion (255); columns last changed at step t hold 255 * t / 5; the background
    # never moved.
    assert row[14:17].tolist() == [255] * 3 and row[20:23].tolist() == [255] * 3  # step 5 (last)
    assert row[17:20].tolist() == [204] * 3  # covered at step 4, unchanged at step 5
    assert row[2:5].tolist() == [51] * 3  # left behind at step 1: 255 * 1 / 5
    assert row[5:8].tolist() == [102] * 3  # step 2
    assert got[20:, :, 0].max() == 0 and got[:4, :, 0].max() == 0


def test_landmarks_boost_small_movements_only_near_them():
    frames = _moving_square(flicker_at=(20, 6))
    plain = mhi.lemhi(frames, _landmarks([]), THRESHOLD, ALPHA, SIGMA)[..., 0]
    boosted_landmarks = _landmarks([(6.0, 20.0)])  # (x, y) on the first flicker patch
    boosted = mhi.lemhi(frames, boosted_landmarks, THRESHOLD, ALPHA, SIGMA)[..., 0]
    np.testing.assert_array_equal(boosted, _reference(frames, boosted_landmarks, THRESHOLD, ALPHA, SIGMA))
    assert plain[19:22, 5:8].max() == 0  # 8 < 12: no motion without the boost
    assert boosted[20, 6] == 255  # 8 * (1 + 1) = 16 > 12 at the landmark, flickering to the last frame
    assert boosted[26, 26] == 0  # the same flicker far from any landmark stays below the threshold
    np.testing.assert_array_equal(boosted[:12], plain[:12])  # the square is unaffected


def test_landmark_weights_formula():
    points = np.array([[3.0, 4.0], [10.0, 2.0]])
    weights = mhi.landmark_weights(points, 16, alpha=2.0, sigma=1.5)
    y, x = 7, 5
    want = 1 + 2.0 * max(np.exp(-((x - px) ** 2 + (y - py) ** 2) / (2 * 1.5**2)) for px, py in points)
    assert weights[y, x] == pytest.approx(want, rel=1e-12)
    assert weights[4, 3] == pytest.approx(3.0) and weights.min() >= 1.0


def test_single_frame_has_no_motion():
    assert not mhi.lemhi(np.full((1, 8, 8), 9, np.uint8), np.zeros((1, 68, 2))).any()


def test_process_clip_lemhi_is_the_mhi_of_its_own_frames():
    image = skimage.data.astronaut()
    frames = np.stack([image[22 + 3 * i : 182 + 3 * i, 124 : 284] for i in range(10)])  # the face moves up
    config = clip.ClipConfig(need_audio=False, lemhi=True, size=48, grayscale=False)
    example = clip.process_frames(frames, config)
    gray = (example["frames"].astype(np.float64) @ [0.299, 0.587, 0.114]).round().astype(np.uint8)
    want = mhi.lemhi(gray, example["landmarks"], config.lemhi_threshold, config.lemhi_alpha, 0.04 * 48)
    # OpenCV's RGB2GRAY rounds in fixed point: a grey level off here and there may flip a threshold.
    assert (example["lemhi"] != want).mean() < 0.02
    assert example["lemhi"].shape == (48, 48, 1) and example["lemhi"].any()
