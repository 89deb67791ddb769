"""Augmentation: the rotation matches SciPy in float64; flips and draws behave as configured."""

import jax
import numpy as np
import pytest
import scipy.ndimage

from fer_jax.config import AugmentConfig
from fer_jax.train.augment import augment_batch, rotate_clip
from helpers.tolerance import assert_caught, rounding_tolerance


@pytest.mark.parametrize("angle", [5.0, -10.0, 15.0])
def test_rotation_matches_scipy(angle):
    rng = np.random.default_rng(0)
    clip = rng.uniform(0, 1, size=(3, 20, 24, 2)).astype(np.float32)
    ours = np.asarray(rotate_clip(clip, np.float32(angle)))
    # scipy rotates the (row, col) plane; positive angle is counter-clockwise as displayed.
    ref = scipy.ndimage.rotate(clip.astype(np.float64), angle, axes=(2, 1), reshape=False, order=1, mode="nearest")
    # float32 sampling coordinates (rotate: 2-term sums, about the centre and back: 3 layers on
    # coordinates up to 24 px) move each sample by that many pixels, on values in [0, 1] whose
    # slope is at most 1 per pixel; then the bilinear 4-term sum. 2.5e-5.
    tol = rounding_tolerance(terms=2, layers=3, scale=max(clip.shape[1:3])) + rounding_tolerance(terms=4)
    np.testing.assert_allclose(ours, ref, atol=tol, rtol=0)
    mirrored = scipy.ndimage.rotate(clip.astype(np.float64), -angle, axes=(2, 1), reshape=False, order=1,
                                    mode="nearest")
    assert_caught(ours, mirrored, tol, "rotated the other way")


def test_augment_applies_one_transform_per_clip_and_flips():
    rng = np.random.default_rng(1)
    frames = rng.uniform(0, 1, size=(64, 2, 8, 8, 1)).astype(np.float32)
    flip_only = AugmentConfig(rotate_prob=0.0, flip_prob=1.0)
    out = np.asarray(augment_batch(frames, jax.random.key(0), flip_only))
    np.testing.assert_array_equal(out, frames[:, :, :, ::-1, :])
    identity = AugmentConfig(rotate_prob=0.0, flip_prob=0.0)
    np.testing.assert_array_equal(np.asarray(augment_batch(frames, jax.random.key(0), identity)), frames)
    mixed = np.asarray(augment_batch(frames, jax.random.key(3), AugmentConfig()))
    changed = np.abs(mixed - frames).reshape(64, -1).max(axis=1) > 1e-6
    assert 0.4 < changed.mean() < 0.95  # about 1 - 0.5 * 0.5 of the clips change


def test_augment_disabled_is_identity():
    frames = np.ones((2, 2, 4, 4, 1), np.float32)
    out = augment_batch(frames, jax.random.key(0), AugmentConfig(enabled=False))
    assert out is frames


def test_crop_matches_numpy_pad_and_slice():
    from fer_jax.train.augment import crop_clip, random_crop_batch

    rng = np.random.default_rng(2)
    clip = rng.uniform(0, 1, size=(3, 10, 12, 2)).astype(np.float32)
    crop = jax.jit(lambda c, dy, dx: crop_clip(c, 2, dy, dx))
    for dy, dx in [(0, 0), (4, 1), (2, 3)]:
        ref = np.pad(clip, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="edge")[:, dy : dy + 10, dx : dx + 12]
        np.testing.assert_array_equal(np.asarray(crop(clip, dy, dx)), ref)
    frames = rng.uniform(0, 1, size=(32, 2, 10, 12, 1)).astype(np.float32)
    out = np.asarray(jax.jit(lambda f, k: random_crop_batch(f, k, 2))(frames, jax.random.key(0)))
    # Every clip is one of the 25 windows of its padded self, and the windows vary between clips.
    padded = np.pad(frames, ((0, 0), (0, 0), (2, 2), (2, 2), (0, 0)), mode="edge")
    found = [next((dy, dx) for dy in range(5) for dx in range(5)
                  if np.array_equal(out[b], padded[b, :, dy : dy + 10, dx : dx + 12])) for b in range(32)]
    assert len(set(found)) > 5


def test_spectrogram_masks_match_numpy_loops():
    from fer_jax.train.augment import mask_spectrogram

    rng = np.random.default_rng(3)
    spec = rng.normal(size=(20, 8, 3)).astype(np.float32)
    time_bands = (np.array([2, 15]), np.array([3, 0]))
    freq_bands = (np.array([5]), np.array([2]))
    ref = spec.astype(np.float64).copy()
    for s, w in zip(*time_bands):
        ref[s : s + w] = spec.mean()
    for s, w in zip(*freq_bands):
        ref[:, s : s + w] = spec.mean()
    np.testing.assert_allclose(np.asarray(jax.jit(mask_spectrogram)(spec, time_bands, freq_bands)), ref, rtol=1e-6)


def test_spec_augment_draws_bands_within_limits():
    from fer_jax.train.augment import spec_augment_batch

    spec = np.arange(64 * 30 * 16, dtype=np.float32).reshape(64, 30, 16) + 1e4  # no value equals a mean
    config = AugmentConfig(time_masks=2, time_mask_width=5, freq_masks=1, freq_mask_width=3)
    out = np.asarray(jax.jit(lambda s, k: spec_augment_batch(s, k, config))(spec, jax.random.key(1)))
    for clip, aug in zip(spec, out):
        masked = aug != clip
        masked_rows, masked_cols = masked.all(axis=1), masked.all(axis=0)
        # Masked cells are whole time rows or whole frequency columns, set to the clip's mean.
        assert np.all(masked == (masked_rows[:, None] | masked_cols[None, :]))
        np.testing.assert_allclose(aug[masked], clip.mean(), rtol=1e-6)
        assert masked_rows.sum() <= 2 * 5 and masked_cols.sum() <= 3
    assert (out != spec).any(axis=(1, 2)).mean() > 0.8  # nearly every clip gets some mask
    assert spec_augment_batch(spec, jax.random.key(1), AugmentConfig()) is spec  # off by default
