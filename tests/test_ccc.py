"""CCC metric and loss: against a direct float64 formula, against scipy's Pearson r, masks, gradients."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from fer_jax.eval.ccc import ccc, ccc_loss, mean_ccc_per_video


def _ccc_by_sums(x, y):
    # Lin's formula term by term with exact (fsum) accumulation: an independent float64 reference.
    n = len(x)
    mx, my = math.fsum(x) / n, math.fsum(y) / n
    sxy = math.fsum((a - mx) * (b - my) for a, b in zip(x, y)) / n
    sxx = math.fsum((a - mx) ** 2 for a in x) / n
    syy = math.fsum((b - my) ** 2 for b in y) / n
    return 2 * sxy / (sxx + syy + (mx - my) ** 2)


def test_ccc_matches_the_formula_term_by_term():
    rng = np.random.default_rng(0)
    for n in (2, 7, 120):
        x = rng.normal(0.3, 0.5, n)
        y = 0.6 * x + rng.normal(-0.2, 0.3, n)
        assert ccc(x, y) == pytest.approx(_ccc_by_sums(list(x), list(y)), rel=1e-12, abs=1e-15)
    x = rng.normal(size=50)
    x -= x.mean()  # x and -x then share their mean and variance: perfect disagreement
    assert ccc(x, x) == pytest.approx(1.0, abs=1e-14)
    assert ccc(x, -x) == pytest.approx(-1.0, abs=1e-14)
    assert ccc(x, x + 1.0) < 1.0  # the same shape at another level is not full concordance


def test_ccc_equals_pearson_when_moments_agree_and_shrinks_it_otherwise():
    rng = np.random.default_rng(1)
    x = rng.normal(0.2, 0.4, 200)
    z = 0.5 * x + rng.normal(size=200)
    # y rescaled to x's mean and (population) variance: then CCC is exactly Pearson's r.
    y = (z - z.mean()) / z.std() * x.std() + x.mean()
    r = stats.pearsonr(x, y).statistic
    assert ccc(x, y) == pytest.approx(r, rel=1e-12)
    # In general CCC = r * 2 sx sy / (sx^2 + sy^2 + (mx - my)^2) < r: shifted, rescaled y.
    y2 = 3.0 * z + 1.0
    r2 = stats.pearsonr(x, y2).statistic
    bias = 2 * x.std() * y2.std() / (x.var() + y2.var() + (x.mean() - y2.mean()) ** 2)
    assert ccc(x, y2) == pytest.approx(r2 * bias, rel=1e-12)
    assert abs(ccc(x, y2)) < abs(r2)


def test_ccc_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="equal length"):
        ccc(np.zeros(3), np.zeros(4))


def test_loss_is_one_minus_ccc_per_valid_row_and_ignores_padding():
    rng = np.random.default_rng(2)
    lengths = [9, 5, 12, 0]
    pred = rng.uniform(-1, 1, (4, 12)).astype(np.float32)
    target = (0.5 * pred + rng.normal(0, 0.3, (4, 12))).astype(np.float32)
    mask = np.arange(12)[None] < np.array(lengths)[:, None]
    # The reference sees only the valid steps; the row with no steps is not part of the mean.
    expected = np.mean([1 - ccc(pred[i, :n], target[i, :n]) for i, n in enumerate(lengths) if n])
    loss = ccc_loss(pred, target, mask)
    assert loss.dtype == jnp.float32
    assert float(loss) == pytest.approx(expected, rel=1e-5, abs=1e-6)
    # Garbage in the padding must not change anything.
    noisy_pred = np.where(mask, pred, 100.0)
    noisy_target = np.where(mask, target, -50.0)
    assert float(ccc_loss(noisy_pred, noisy_target, mask)) == pytest.approx(float(loss), rel=1e-6)
    assert float(ccc_loss(target[:3], target[:3])) == pytest.approx(0.0, abs=1e-6)


def test_loss_gradient_is_finite_even_for_constant_and_empty_rows():
    pred = jnp.array([[0.1, 0.4, -0.2, 0.3], [0.5, 0.5, 0.5, 0.5], [0.0, 0.0, 0.0, 0.0]])
    target = jnp.array([[0.2, 0.1, -0.3, 0.6], [0.5, 0.5, 0.5, 0.5], [0.2, 0.3, 0.1, 0.0]])
    mask = jnp.array([[True] * 4, [True] * 4, [False] * 4])
    grad = jax.grad(ccc_loss)(pred, target, mask)
    assert bool(jnp.all(jnp.isfinite(grad)))
    assert float(jnp.abs(grad[0]).max()) > 0  # the informative row does push the prediction
    np.testing.assert_array_equal(np.asarray(grad[2]), 0.0)  # the empty row does not


def test_mean_ccc_per_video_is_the_mean_of_per_video_cccs():
    rng = np.random.default_rng(3)
    lengths = [6, 10, 3]
    preds = [rng.normal(size=n) for n in lengths]
    targets = [p + rng.normal(0, 0.5, p.shape) for p in preds]
    expected = np.mean([_ccc_by_sums(list(p), list(t)) for p, t in zip(preds, targets)])
    assert mean_ccc_per_video(preds, targets) == pytest.approx(expected, rel=1e-12)
    # The padded (N, T) form with a mask gives the same score; pooling all steps would not.
    padded_p, padded_t = np.zeros((3, 10)), np.zeros((3, 10))
    mask = np.zeros((3, 10), bool)
    for i, (p, t) in enumerate(zip(preds, targets)):
        padded_p[i, : len(p)], padded_t[i, : len(t)], mask[i, : len(p)] = p, t, True
    assert mean_ccc_per_video(padded_p, padded_t, mask) == pytest.approx(expected, rel=1e-12)
    pooled = ccc(np.concatenate(preds), np.concatenate(targets))
    assert abs(pooled - expected) > 1e-6
