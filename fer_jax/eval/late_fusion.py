"""Late (score-level) fusion of several models: a convex combination of their class scores.

Hu et al. 2019 fuse LEMHI-CNN and CNN-CTSLSTM by weighting each model's scores with weights found
by random search on the validation set. `random_search_fusion_weights` does that search;
`fuse` applies the weights. Scores should be on a common scale (softmax probabilities, not raw
logits) so that a weight means the same thing for every model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_BLOCK = 256  # candidates scored per einsum


def fuse(scores: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """sum_m weights[m] * scores[m]: M arrays (N, C) and M weights -> fused (N, C) float64."""
    stacked = _stack(scores)
    weights = np.asarray(weights, np.float64)
    if weights.shape != (stacked.shape[0],):
        raise ValueError(f"fuse: {stacked.shape[0]} score arrays need as many weights, got shape {weights.shape}")
    return np.einsum("m,mnc->nc", weights, stacked)


def random_search_fusion_weights(
    scores: Sequence[np.ndarray], labels, *, trials: int = 1000, seed: int = 0
) -> tuple[np.ndarray, float]:
    """Convex weights (M,) maximising the accuracy of `fuse(scores, weights)` on `labels` (N,).

    Candidates are drawn uniformly from the simplex (Dirichlet(1, ..., 1)), `trials` of them from
    `seed`. Equal weights and each model alone are tried first, so the result is never worse on
    these labels than any single model or the plain average; ties keep the earliest candidate, so
    a random draw must strictly improve on those baselines to be chosen. Returns (weights,
    accuracy), weights float64 summing to 1.
    """
    stacked = _stack(scores)
    labels = np.asarray(labels, np.int64)
    num_models, num_examples, _ = stacked.shape
    if labels.shape != (num_examples,):
        raise ValueError(f"labels must have shape ({num_examples},) to match the scores, got {labels.shape}")
    if trials < 0:
        raise ValueError(f"trials must be >= 0, got {trials}")
    rng = np.random.default_rng(seed)
    candidates = np.concatenate(
        [
            np.full((1, num_models), 1.0 / num_models),
            np.eye(num_models),
            rng.dirichlet(np.ones(num_models), size=trials),
        ]
    )
    # Blocks of candidates: (K, M) x (M, N, C) -> (K, N, C) at once, without holding all
    # trials x N x C scores in memory for large validation sets.
    accuracies = np.concatenate(
        [
            (np.einsum("km,mnc->knc", block, stacked).argmax(-1) == labels[None]).mean(-1)
            for block in np.array_split(candidates, max(1, len(candidates) // _BLOCK))
        ]
    )
    best = int(np.argmax(accuracies))  # argmax returns the first maximum: the tie rule above
    return candidates[best], float(accuracies[best])


def _stack(scores: Sequence[np.ndarray]) -> np.ndarray:
    if len(scores) == 0:
        raise ValueError("late fusion needs at least one score array")
    arrays = [np.asarray(s, np.float64) for s in scores]
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1 or arrays[0].ndim != 2:
        raise ValueError(f"late fusion needs score arrays of one shape (N, C), got {[a.shape for a in arrays]}")
    return np.stack(arrays)
