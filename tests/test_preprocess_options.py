"""ClipConfig options of the video side: Haar detection, wider crops, gamma correction,
variable-length clips, frame indices, the no-face policy and the declared record shapes."""

import cv2
import numpy as np
import pytest
import skimage.data

from fer_jax.errors import ConfigError
from fer_jax.preprocess import align, clip, face, photometric, temporal

NUM, SIZE = 12, 160
BASE = clip.ClipConfig(need_audio=False)


def _moving_face_frames(num=NUM, blank_first=0):
    """(num, SIZE, SIZE, 3) uint8 RGB: a window sliding 2 px right and down per frame over the
    astronaut's face, 2% brighter each frame (alignment undoes the sliding exactly; the brightness
    keeps aligned frames apart); the first `blank_first` frames plain gray."""
    image = skimage.data.astronaut().astype(np.float64)
    frames = np.stack(
        [
            np.clip(image[22 + 2 * i : 22 + 2 * i + SIZE, 124 + 2 * i : 124 + 2 * i + SIZE] * (0.8 + 0.02 * i), 0, 255)
            for i in range(num)
        ]
    ).astype(np.uint8)
    frames[:blank_first] = 128
    return frames


@pytest.fixture(scope="module")
def frames():
    return _moving_face_frames()


@pytest.fixture(scope="module")
def hog_clip(frames):
    return clip.process_frames(frames, BASE)


# --- detector -----------------------------------------------------------------------------------


def test_haar_finds_her_face_where_dlib_does():
    image = skimage.data.astronaut()
    (hog,) = face.detect_faces(image, upsample=0)
    haar = face.detect_faces(image, upsample=0, detector="haar")[0]
    # After the Haar-to-dlib box mapping the boxes agree to a few pixels (the face is ~90 px).
    np.testing.assert_allclose(
        [haar.left, haar.top, haar.right, haar.bottom], [hog.left, hog.top, hog.right, hog.bottom], atol=8
    )
    points_hog, points_haar = face.landmarks(image, hog), face.landmarks(image, haar)
    left, right = align.eye_centers(points_hog)
    assert np.median(np.linalg.norm(points_haar - points_hog, axis=1)) < 0.05 * np.linalg.norm(right - left)


def test_upsample_sets_the_smallest_face_for_both_detectors():
    """Faces down to 80 / 2**upsample px: the astronaut's face shrunk to ~45 px needs upsample 1."""
    small = cv2.resize(skimage.data.astronaut(), None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    for detector in face.DETECTORS:
        assert face.detect_faces(small, upsample=0, detector=detector) == []
        (box,) = face.detect_faces(small, upsample=1, detector=detector)
        assert 40 < box.right - box.left < 55 and 85 < (box.left + box.right) / 2 < 135


def test_haar_clip_is_aligned_like_the_hog_clip(frames, hog_clip):
    haar_clip = clip.process_frames(frames, clip.ClipConfig(need_audio=False, detector="haar"))
    assert haar_clip["face_found_fraction"] == 1.0
    left, right = align.eye_centers(haar_clip["landmarks"].transpose(1, 0, 2))
    want_left, want_right = align.canonical_eye_positions(64)
    np.testing.assert_allclose(left, np.broadcast_to(want_left, left.shape), atol=0.01)
    np.testing.assert_allclose(right, np.broadcast_to(want_right, right.shape), atol=0.01)
    # Same face, landmarks from a slightly different box: within a pixel of the HOG clip's.
    assert np.abs(haar_clip["landmarks"] - hog_clip["landmarks"]).mean() < 1.0
    assert np.abs(haar_clip["frames"].astype(float) - hog_clip["frames"]).mean() < 4


def test_bad_config_values_raise_config_error():
    for kwargs in ({"detector": "mtcnn"}, {"audio_features": ("mfcc",)}, {"box_scale": 0}, {"max_frames": 0}):
        with pytest.raises(ConfigError):
            clip.ClipConfig(**kwargs)


# --- box_scale ----------------------------------------------------------------------------------


@pytest.mark.parametrize("zoom", [1.0, 3.0])  # 3x: the face is large enough for align's area prefilter
def test_wider_crop_holds_the_tight_crop_in_its_centre(zoom):
    """box_scale 2 at 128 px shows the same face at the same scale as box_scale 1 at 64 px, with a
    32 px ring of context: its centre 64 x 64 must be the tight crop."""
    image = cv2.resize(skimage.data.astronaut(), None, fx=zoom, fy=zoom, interpolation=cv2.INTER_CUBIC)
    points = face.largest_face_landmarks(image, upsample=0)
    tight, tight_points = align.align_face(image, points, 64, grayscale=True)
    wide, wide_points = align.align_face(image, points, 128, grayscale=True, box_scale=2.0)
    difference = np.abs(wide[32:96, 32:96].astype(int) - tight)
    # warpAffine interpolates at 1/32 px steps: a float-rounding shift of the warp can tip a pixel
    # into the next step, a few grey levels at a sharp edge. A wrong window would differ everywhere.
    assert (difference > 1).mean() < 0.005 and difference.mean() < 0.05
    np.testing.assert_allclose(wide_points - 32, tight_points, atol=1e-3)
    assert np.abs(wide[:32].astype(int) - wide[32:64]).mean() > 5  # the ring is context, not padding


def test_box_scale_keeps_eyes_at_proportional_positions(frames, hog_clip):
    wide = clip.process_frames(frames, clip.ClipConfig(need_audio=False, box_scale=1.25))
    left, right = align.eye_centers(wide["landmarks"].transpose(1, 0, 2))
    # Eye x at 0.5 + (0.31 - 0.5) / 1.25 = 0.348 and 0.652 of the side, y at 0.356 (independent arithmetic).
    np.testing.assert_allclose(left, np.broadcast_to([0.348 * 64 - 0.5, 0.356 * 64 - 0.5], left.shape), atol=0.01)
    np.testing.assert_allclose(right, np.broadcast_to([0.652 * 64 - 0.5, 0.356 * 64 - 0.5], right.shape), atol=0.01)
    # dlib, run again on the wider crop (upscaled so it can see the smaller face), agrees.
    big = cv2.resize(wide["frames"][0, ..., 0], (256, 256), interpolation=cv2.INTER_CUBIC)
    found = face.landmarks(big, face.detect_faces(big, upsample=0)[0]).astype(np.float64)
    found_left, found_right = align.eye_centers((found + 0.5) / 4 - 0.5)
    want_left, want_right = align.canonical_eye_positions(64, 1.25)
    np.testing.assert_allclose(found_left, want_left, atol=2.0)
    np.testing.assert_allclose(found_right, want_right, atol=2.0)


# --- gamma --------------------------------------------------------------------------------------


def _gamma_reference(pixels, gamma):
    """NumPy float64 reference: 255 * (in / 255) ** (1 / gamma), unrounded."""
    return 255.0 * (np.asarray(pixels, np.float64) / 255.0) ** (1.0 / gamma)


@pytest.mark.parametrize("gamma", [1.5, 0.7, 2.2])
def test_gamma_matches_the_float64_formula(gamma):
    levels = np.arange(256, dtype=np.uint8)
    # Tolerance 0.5 grey level: the LUT is the formula correctly rounded to uint8.
    assert np.abs(photometric.apply_gamma(levels, gamma) - _gamma_reference(levels, gamma)).max() <= 0.5 + 1e-9
    image = np.random.default_rng(0).integers(0, 256, (17, 9, 3), dtype=np.uint8)
    out = photometric.apply_gamma(image, gamma)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert np.abs(out - _gamma_reference(image, gamma)).max() <= 0.5 + 1e-9


def test_gamma_is_applied_before_detection_and_cropping(frames):
    dark = (frames * 0.35).astype(np.uint8)
    corrected = clip.process_frames(dark, clip.ClipConfig(need_audio=False, gamma=1.5))
    by_hand = clip.process_frames(np.rint(_gamma_reference(dark, 1.5)).astype(np.uint8), BASE)
    np.testing.assert_array_equal(corrected["frames"], by_hand["frames"])
    np.testing.assert_array_equal(corrected["landmarks"], by_hand["landmarks"])
    assert corrected["gamma_applied"] is True
    assert corrected["frames"].mean() > clip.process_frames(dark, BASE)["frames"].mean() + 15


def test_gamma_only_for_dark_clips(frames, hog_clip):
    dark = (frames * 0.35).astype(np.uint8)
    # Mean luma of the clip's frames: the astronaut window is ~125, the darkened one ~43.
    assert photometric.mean_luma(frames) > 100 and photometric.mean_luma(dark) < 50
    config = clip.ClipConfig(need_audio=False, gamma=1.5, gamma_if_dark_below=80)
    bright = clip.process_frames(frames, config)
    assert bright["gamma_applied"] is False
    np.testing.assert_array_equal(bright["frames"], hog_clip["frames"])
    darkened = clip.process_frames(dark, config)
    assert darkened["gamma_applied"] is True
    np.testing.assert_array_equal(
        darkened["frames"], clip.process_frames(dark, clip.ClipConfig(need_audio=False, gamma=1.5))["frames"]
    )


def test_mean_luma_is_bt601():
    rgb = np.random.default_rng(1).integers(0, 256, (2, 5, 7, 3), dtype=np.uint8)
    want = (rgb.astype(np.float64) @ [0.299, 0.587, 0.114]).mean()
    assert photometric.mean_luma(rgb) == pytest.approx(want, abs=0.5)  # OpenCV rounds each pixel


# --- variable length, frame indices, no-face policy ---------------------------------------------


def test_short_clip_keeps_every_frame_and_is_padded(frames):
    config = clip.ClipConfig(need_audio=False, variable_length=True, max_frames=16, store_frame_indices=True)
    example = clip.process_frames(frames, config)
    assert example["frames"].shape == (16, 64, 64, 1)
    np.testing.assert_array_equal(example["frame_mask"], np.arange(16) < NUM)
    np.testing.assert_array_equal(example["frame_indices"], list(range(NUM)) + [-1] * 4)
    assert not example["frames"][NUM:].any() and not example["landmarks"][NUM:].any()
    every = clip.process_frames(frames, clip.ClipConfig(need_audio=False, num_frames=NUM))  # 0..11 in order
    np.testing.assert_array_equal(example["frames"][:NUM], every["frames"])
    np.testing.assert_array_equal(example["landmarks"][:NUM], every["landmarks"])


def test_long_clip_is_evenly_subsampled(frames):
    config = clip.ClipConfig(need_audio=False, variable_length=True, max_frames=5, store_frame_indices=True)
    example = clip.process_frames(frames, config)
    assert example["frame_mask"].all() and example["frame_mask"].shape == (5,)
    np.testing.assert_array_equal(example["frame_indices"], [0, 3, 6, 8, 11])  # round(linspace(0, 11, 5))
    fixed = clip.process_frames(frames, clip.ClipConfig(need_audio=False, num_frames=5))
    np.testing.assert_array_equal(example["frames"], fixed["frames"])


def test_frames_without_a_face_keep_their_time():
    """NO_FACE_POLICY with variable length: blank frames 0-2 stay where they are (blank pixels,
    their own indices) and borrow frame 3's crop window; nothing moves in time."""
    frames = _moving_face_frames(8, blank_first=3)
    config = clip.ClipConfig(need_audio=False, variable_length=True, max_frames=10, store_frame_indices=True)
    example = clip.process_frames(frames, config)
    np.testing.assert_array_equal(example["frame_indices"], list(range(8)) + [-1, -1])
    assert example["face_found_fraction"] == pytest.approx(5 / 8)
    crops = example["frames"][:8].astype(float)
    assert crops[:3].std(axis=(1, 2, 3)).max() < 3 and crops[3:].std(axis=(1, 2, 3)).min() > 20
    np.testing.assert_allclose(example["landmarks"][:3], np.broadcast_to(example["landmarks"][3], (3, 68, 2)), atol=2)
    assert clip.NO_FACE_POLICY == "borrow_nearest_landmarks_keep_time"


def test_select_frames():
    fixed, real = clip.select_frames(20, clip.ClipConfig(num_frames=8))
    np.testing.assert_array_equal(fixed, temporal.sample_indices(20, 8)) and real == 8
    short, real = clip.select_frames(3, clip.ClipConfig(variable_length=True, max_frames=5))
    assert real == 3 and short.tolist() == [0, 1, 2, -1, -1]


@pytest.mark.parametrize(
    "config",
    [
        BASE,
        clip.ClipConfig(need_audio=False, grayscale=False, size=48, num_frames=3, lemhi=True),
        clip.ClipConfig(need_audio=False, variable_length=True, max_frames=6, store_frame_indices=True, lemhi=True),
    ],
)
def test_outputs_match_record_spec(frames, config):
    example = clip.process_frames(frames, config)
    spec = config.record_spec()
    for name, (shape, dtype) in spec.items():
        assert np.shape(example[name]) == shape and np.asarray(example[name]).dtype == dtype, name
    assert set(example) - set(spec) <= {"num_source_frames", "face_found_fraction"}
