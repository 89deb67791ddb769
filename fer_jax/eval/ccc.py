"""Concordance correlation coefficient (Lin 1989), the metric of continuous valence/arousal ratings.

    CCC(x, y) = 2 cov(x, y) / (var(x) + var(y) + (mean(x) - mean(y))^2)

with population (1/N) moments, as in Lin's definition and the AVEC / SEND evaluations. CCC is
Pearson's r scaled down by any difference in location or scale: a prediction that tracks the
rating's shape but sits off its level, or at the wrong amplitude, is penalised, which Pearson misses.

`ccc` and `mean_ccc_per_video` are NumPy float64 for reporting; `ccc_loss` is the differentiable
JAX version used to train regression models (1 - CCC per sequence, averaged over sequences).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

# Keeps the loss and its gradient finite on a constant sequence (zero variance on both sides),
# e.g. a fully padded row or a model that has collapsed to a constant at initialisation.
_LOSS_EPS = 1e-8


def ccc(x, y) -> float:
    """CCC of two 1-D sequences of equal length N >= 1, float64.

    Returns NaN when both are constant and equal (0 / 0: agreement is undefined, not perfect).
    """
    x = np.asarray(x, np.float64).ravel()
    y = np.asarray(y, np.float64).ravel()
    if x.shape != y.shape or x.size == 0:
        raise ValueError(f"ccc needs two non-empty sequences of equal length, got {x.size} and {y.size}")
    mx, my = x.mean(), y.mean()
    cov = np.mean((x - mx) * (y - my))
    denominator = x.var() + y.var() + (mx - my) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(2.0 * cov / denominator)


def ccc_loss(pred: jax.Array, target: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """Mean over sequences of 1 - CCC: pred, target (B, T) float, mask (B, T) bool -> scalar float32.

    Each row's moments are taken over its valid (mask True) steps only, so padding never pulls a
    sequence's mean or variance. A row with no valid step contributes nothing to the mean.
    """
    pred = jnp.asarray(pred, jnp.float32)
    target = jnp.asarray(target, jnp.float32)
    mask = jnp.ones(pred.shape, bool) if mask is None else jnp.asarray(mask, bool)
    weights = mask.astype(jnp.float32)
    count = weights.sum(axis=-1)
    safe_count = jnp.maximum(count, 1.0)

    def masked_mean(v):
        return (v * weights).sum(axis=-1) / safe_count

    mp, mt = masked_mean(pred), masked_mean(target)
    dp, dt = pred - mp[:, None], target - mt[:, None]
    cov = masked_mean(dp * dt)
    denominator = masked_mean(dp**2) + masked_mean(dt**2) + (mp - mt) ** 2
    per_row = 1.0 - 2.0 * cov / (denominator + _LOSS_EPS)
    has_steps = (count > 0).astype(jnp.float32)
    return (per_row * has_steps).sum() / jnp.maximum(has_steps.sum(), 1.0)


def mean_ccc_per_video(preds, targets, masks=None) -> float:
    """CCC of each video, then their mean (float64): the SEND protocol's score.

    preds, targets: a padded (N, T) array each, or sequences of N 1-D arrays of any lengths; masks
    (N, T) bool marks the valid steps of the padded form (None: all valid). Videos whose CCC is
    undefined (constant prediction and rating that agree exactly) are left out of the mean.
    """
    preds_list, targets_list = _rows(preds), _rows(targets)
    if len(preds_list) != len(targets_list):
        raise ValueError(f"{len(preds_list)} predictions but {len(targets_list)} targets")
    if masks is not None:
        masks_list = _rows(masks)
        if len(masks_list) != len(preds_list):
            raise ValueError(f"{len(masks_list)} masks for {len(preds_list)} videos")
        preds_list = [p[m.astype(bool)] for p, m in zip(preds_list, masks_list)]
        targets_list = [t[m.astype(bool)] for t, m in zip(targets_list, masks_list)]
    scores = np.array([ccc(p, t) for p, t in zip(preds_list, targets_list) if p.size])
    if scores.size == 0 or np.isnan(scores).all():
        return float("nan")
    return float(np.nanmean(scores))


def _rows(values) -> list[np.ndarray]:
    if isinstance(values, np.ndarray | jax.Array):
        array = np.asarray(values)
        return [array] if array.ndim == 1 else list(array)
    if isinstance(values, Sequence):
        return [np.asarray(v).ravel() for v in values]
    raise TypeError(f"expected an array or a sequence of arrays, got {type(values).__name__}")
