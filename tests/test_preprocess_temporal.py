import numpy as np
import pytest

from fer_jax.preprocess.temporal import sample_indices


@pytest.mark.parametrize("num_frames", [1, 2, 3, 7, 8, 9, 16, 20, 61, 100, 1000])
@pytest.mark.parametrize("length", [1, 2, 8, 16])
def test_first_last_kept_in_range_and_ordered(num_frames, length):
    idx = sample_indices(num_frames, length)
    assert idx.shape == (length,) and np.issubdtype(idx.dtype, np.integer)
    assert idx[0] == 0
    if length > 1:
        assert idx[-1] == num_frames - 1
    assert idx.min() >= 0 and idx.max() <= num_frames - 1
    assert np.all(np.diff(idx) >= 0)  # time never runs backwards


@pytest.mark.parametrize("num_frames, length", [(20, 8), (100, 16), (61, 8), (9, 8), (1000, 7)])
def test_long_clips_are_spaced_evenly_without_repeats(num_frames, length):
    idx = sample_indices(num_frames, length)
    steps = np.diff(idx)
    ideal = (num_frames - 1) / (length - 1)
    assert np.all(steps >= 1)  # distinct frames when there are enough
    assert steps.max() - steps.min() <= 1 and np.all(np.abs(steps - ideal) < 1)
    np.testing.assert_array_less(np.abs(idx - np.linspace(0, num_frames - 1, length)), 0.5 + 1e-9)


def test_exact_values():
    np.testing.assert_array_equal(sample_indices(8, 8), np.arange(8))
    np.testing.assert_array_equal(sample_indices(20, 8), [0, 3, 5, 8, 11, 14, 16, 19])
    np.testing.assert_array_equal(sample_indices(5, 3), [0, 2, 4])
    # Halves round up: 0, 0.5, 1 -> 0, 1, 1 (NumPy's round-half-to-even would give 0, 0, 1).
    np.testing.assert_array_equal(sample_indices(2, 3), [0, 1, 1])


@pytest.mark.parametrize("num_frames, length", [(3, 8), (5, 16), (7, 8), (2, 16)])
def test_short_clips_use_every_frame_and_share_out_repeats(num_frames, length):
    idx = sample_indices(num_frames, length)
    counts = np.bincount(idx, minlength=num_frames)
    assert counts.min() >= 1  # no frame skipped
    # Each frame holds the samples nearest to it; the first and last get half an interval each.
    assert counts.max() <= np.ceil((length - 1) / (num_frames - 1))
    np.testing.assert_array_equal(sample_indices(3, 8), [0, 0, 1, 1, 1, 1, 2, 2])
    np.testing.assert_array_equal(sample_indices(1, 4), [0, 0, 0, 0])


def test_empty_clip_or_length_raise():
    with pytest.raises(ValueError, match="empty clip"):
        sample_indices(0, 8)
    with pytest.raises(ValueError, match="length"):
        sample_indices(10, 0)
