"""fer_jax/eval/regression.py and the "score" task: window predictions averaged per video, then MAE
and RMSE over videos, against a float64 reference written out video by video; the training loss
against NumPy's mean squared error."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pytest

from fer_jax.eval import regression
from fer_jax.train.tasks import TASKS


def _reference(predictions, targets, video_index):
    """Per video, in plain Python float64: mean of its windows' predictions, its target; then MAE, RMSE."""
    by_video: dict[int, list[tuple[float, float]]] = {}
    for p, t, v in zip(predictions, targets, video_index):
        by_video.setdefault(int(v), []).append((float(p), float(t)))
    errors = [math.fsum(p for p, _ in windows) / len(windows) - windows[0][1] for windows in by_video.values()]
    return math.fsum(abs(e) for e in errors) / len(errors), math.sqrt(math.fsum(e * e for e in errors) / len(errors))


def test_video_scores_match_a_reference_written_video_by_video():
    rng = np.random.default_rng(0)
    video_index = rng.integers(0, 30, 400)  # windows of 30 videos, shuffled as a split's records are
    video_target = rng.uniform(0, 63, 30)
    targets = video_target[video_index].astype(np.float32)  # stored as float32 in the records
    predictions = (targets + rng.normal(0, 8, 400)).astype(np.float32)
    scores = regression.video_scores(predictions, targets, video_index)
    mae, rmse = _reference(predictions, targets, video_index)
    # float64 sums of ~400 terms of magnitude <= 100: rounding is ~400 * 1e-16 * 100, far below 1e-9.
    assert scores["mae"] == pytest.approx(mae, abs=1e-9) and scores["rmse"] == pytest.approx(rmse, abs=1e-9)
    assert scores["num_videos"] == len(np.unique(video_index))


def test_windows_are_averaged_before_the_error_is_taken():
    """Two videos (targets 10 and 20): windows at 0 and 20 average to 10, an error of 0; window
    errors would give MAE 10. Video 1 is off by 3 in both windows."""
    scores = regression.video_scores([0.0, 20.0, 23.0, 23.0], [10.0, 10.0, 20.0, 20.0], [5, 5, 1, 1])
    assert scores == {"mae": 1.5, "rmse": pytest.approx(math.sqrt(4.5), abs=1e-15), "num_videos": 2}


def test_windows_of_one_video_with_different_targets_are_refused():
    with pytest.raises(ValueError, match=r"videos \[2\]"):
        regression.video_targets([1.0, 1.0, 3.0, 4.0], [1, 1, 2, 2])
    with pytest.raises(ValueError, match="one video index per value"):
        regression.per_video_mean([1.0, 2.0], [0])


def test_score_task_loss_is_the_windows_mean_squared_error_and_its_summary_the_video_scores():
    task = TASKS["score"]
    outputs = np.array([[1.0], [4.0], [10.0]], np.float32)
    batch = {"score": np.array([2.0, 2.0, 7.0], np.float32), "video_index": np.array([0, 0, 1], np.int32)}
    loss, metrics = task.loss(jnp.asarray(outputs), {k: jnp.asarray(v) for k, v in batch.items()})
    mse = np.mean((outputs[:, 0].astype(np.float64) - batch["score"]) ** 2)  # (1 + 4 + 9) / 3
    # float32 arithmetic on values below 20: relative rounding ~1e-7.
    assert float(loss) == pytest.approx(mse, rel=1e-6) and float(metrics["neg_rmse"]) == pytest.approx(-math.sqrt(mse), rel=1e-6)
    summary = task.summarize(np.asarray(task.predict(jnp.asarray(outputs))), batch, 1, None)
    # Per video: (1 + 4) / 2 - 2 = 0.5 and 10 - 7 = 3.
    assert summary["mae"] == pytest.approx(1.75) and summary["rmse"] == pytest.approx(math.sqrt((0.25 + 9) / 2))
    assert summary["neg_rmse"] == -summary["rmse"] and summary["num_examples"] == 3 and summary["num_videos"] == 2


def test_eval_tables_show_a_score_runs_video_scores():
    from fer_jax.eval.evaluate import format_table

    table = format_table({"mae": 1.75, "rmse": 2.15, "neg_rmse": -2.15, "num_videos": 2, "num_examples": 3}, "run: test")
    assert table.splitlines() == ["run: test", "  mae             1.7500", "  rmse            2.1500",
                                  "  num_videos      2", "  num_examples    3"]
