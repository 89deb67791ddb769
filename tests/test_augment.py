"""Augmentation: the rotation matches SciPy in float64; flips and draws behave as configured."""

import jax
import numpy as np
import pytest
import scipy.ndimage

from fer_jax.config import AugmentConfig
from fer_jax.train.augment import augment_batch, rotate_clip


@pytest.mark.parametrize("angle", [5.0, -10.0, 15.0])
def test_rotation_matches_scipy(angle):
    rng = np.random.default_rng(0)
    clip = rng.uniform(0, 1, size=(3, 20, 24, 2)).astype(np.float32)
    ours = np.asarray(rotate_clip(clip, np.float32(angle)))
    # scipy rotates the (row, col) plane; positive angle is counter-clockwise as displayed.
    ref = scipy.ndimage.rotate(clip.astype(np.float64), angle, axes=(2, 1), reshape=False, order=1, mode="nearest")
    np.testing.assert_allclose(ours, ref, atol=2e-5)  # float32 arithmetic on values in [0, 1]


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
