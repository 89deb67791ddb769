"""Late fusion: the random weight search beats each model alone and the plain average where it can."""

import numpy as np
import pytest

from fer_jax.eval.late_fusion import fuse, random_search_fusion_weights


def _two_complementary_models():
    """Two 2-class models whose fusion is right on every example only for w_A in (0.6, 0.8).

    Kind 1 (label 0): A right by a margin of 0.2, B wrong by 0.3 -> needs w_A > 0.6.
    Kind 2 (label 1): A wrong by 0.1, B right by 0.4            -> needs w_A < 0.8.
    Equal weights (0.5) miss kind 1; A alone misses kind 2; B alone misses kind 1.
    """
    a = np.array([[0.6, 0.4]] * 6 + [[0.55, 0.45]] * 4)
    b = np.array([[0.35, 0.65]] * 6 + [[0.3, 0.7]] * 4)
    labels = np.array([0] * 6 + [1] * 4)
    return [a, b], labels


def _accuracy(scores, labels):
    return float((scores.argmax(-1) == labels).mean())


def test_search_finds_the_complementary_weighting():
    scores, labels = _two_complementary_models()
    weights, accuracy = random_search_fusion_weights(scores, labels, trials=200, seed=0)
    assert weights.shape == (2,) and np.all(weights >= 0) and weights.sum() == pytest.approx(1.0)
    assert 0.6 < weights[0] < 0.8
    # The reported accuracy is the accuracy of fuse() with the returned weights.
    assert accuracy == _accuracy(fuse(scores, weights), labels) == 1.0
    singles = [_accuracy(s, labels) for s in scores]
    equal = _accuracy(fuse(scores, [0.5, 0.5]), labels)
    assert singles == [0.6, 0.4] and equal == 0.4
    assert accuracy > max(singles + [equal])


def test_search_never_does_worse_than_single_models_or_the_average():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 60)
    # Three noisy models of different quality on random data.
    scores = [rng.dirichlet(np.ones(4), 60) + q * np.eye(4)[labels] for q in (0.1, 0.4, 0.0)]
    weights, accuracy = random_search_fusion_weights(scores, labels, trials=300, seed=1)
    assert accuracy >= max(_accuracy(s, labels) for s in scores)
    assert accuracy >= _accuracy(fuse(scores, np.full(3, 1 / 3)), labels)
    assert accuracy == _accuracy(fuse(scores, weights), labels)
    # Seeded: the same search gives the same answer.
    again = random_search_fusion_weights(scores, labels, trials=300, seed=1)
    np.testing.assert_array_equal(again[0], weights)


def test_fuse_is_the_weighted_sum_and_checks_shapes():
    a, b = np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])
    np.testing.assert_allclose(fuse([a, b], [0.25, 0.75]), [[0.25, 0.75]])
    with pytest.raises(ValueError, match="weights"):
        fuse([a, b], [1.0])
    with pytest.raises(ValueError, match="one shape"):
        random_search_fusion_weights([a, np.zeros((2, 2))], [0])
    with pytest.raises(ValueError, match="labels"):
        random_search_fusion_weights([a, b], [0, 1])
