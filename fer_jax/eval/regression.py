"""Scores of a value per video predicted from its windows: MAE and RMSE after per-video aggregation.

A long video (an AVEC2013 recording) is read as many short windows, each a record
carrying its video's target (the BDI-II score) and the video's index; a model predicts one value per
window. The challenge scores one prediction per video, so the windows' predictions are averaged per
video first, then

    MAE  = mean over videos |prediction - target|
    RMSE = sqrt(mean over videos (prediction - target)^2)

Everything here is NumPy float64, for reporting; the training loss is in `fer_jax.train.tasks`.
"""

from __future__ import annotations

import numpy as np


def per_video_mean(values, video_index) -> tuple[np.ndarray, np.ndarray]:
    """(videos (V,) int, mean of `values` over each video's windows (V,) float64), videos sorted.

    values: (N,) per window; video_index: (N,) int, the video each window belongs to.
    """
    values = np.asarray(values, np.float64).reshape(-1)
    video_index = np.asarray(video_index).reshape(-1)
    if values.shape != video_index.shape or values.size == 0:
        raise ValueError(f"need one video index per value (non-empty), got {values.size} values, {video_index.size} indices")
    videos, position = np.unique(video_index, return_inverse=True)
    sums = np.bincount(position, weights=values, minlength=len(videos))
    return videos, sums / np.bincount(position, minlength=len(videos))


def video_targets(targets, video_index) -> tuple[np.ndarray, np.ndarray]:
    """(videos sorted, each video's target); ValueError if a video's windows carry different targets."""
    targets = np.asarray(targets, np.float64).reshape(-1)
    videos, first, position = np.unique(np.asarray(video_index).reshape(-1), return_index=True, return_inverse=True)
    target = targets[first]
    if np.any(targets != target[position]):
        raise ValueError(f"videos {np.unique(videos[position[targets != target[position]]]).tolist()} have windows with different targets")
    return videos, target


def mae(predictions, targets) -> float:
    p, t = np.asarray(predictions, np.float64).ravel(), np.asarray(targets, np.float64).ravel()
    return float(np.mean(np.abs(p - t)))


def rmse(predictions, targets) -> float:
    p, t = np.asarray(predictions, np.float64).ravel(), np.asarray(targets, np.float64).ravel()
    return float(np.sqrt(np.mean((p - t) ** 2)))


def video_scores(predictions, targets, video_index) -> dict:
    """{"mae", "rmse", "num_videos"} of window predictions averaged per video, against each video's target."""
    videos, predicted = per_video_mean(predictions, video_index)
    _, target = video_targets(targets, video_index)
    return {"mae": mae(predicted, target), "rmse": rmse(predicted, target), "num_videos": int(len(videos))}
