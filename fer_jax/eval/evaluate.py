"""Predicting over a split and scoring the predictions: the validation of a training run, and of
a saved run (`fer_jax.runs`)."""

from __future__ import annotations

from typing import Callable

import numpy as np

from fer_jax.config import DataConfig, ExperimentConfig
from fer_jax.data.eval_batches import eval_batches
from fer_jax.data.sources import Split, class_names_of
from fer_jax.sharding import to_global, to_host


def predict_split(forward: Callable, state, split: Split, config: DataConfig, mesh,
                  target_keys=()) -> tuple[np.ndarray, dict]:
    """`forward(state, batch)` over every example of `split` once, in record order: (its outputs
    (N, ...), {target key: (N, ...)}), padding left out. `batch` holds global arrays of the split's
    features and "example_mask"."""
    outputs, targets = [], {k: [] for k in target_keys}
    for item in eval_batches(split.source, config, split.keys):
        batch = to_global({**item.batch, "example_mask": item.mask}, mesh)
        predicted = to_host(forward(state, batch))
        real = to_host(batch["example_mask"])
        for k in targets:
            targets[k].append(to_host(batch[k])[real])
        outputs.append(predicted[real])
    return np.concatenate(outputs), {k: np.concatenate(v) for k, v in targets.items()}


def evaluate_split(steps, state, split: Split, config: ExperimentConfig, mesh) -> dict:
    """Run the jitted `steps.evaluate` over every example of `split` once and score the task."""
    predictions, targets = predict_split(steps.evaluate, state, split, config.data, mesh, steps.task.target_keys)
    return steps.task.summarize(predictions, targets, config.data.num_classes, class_names_of(config.data, split.source))


def format_table(summary: dict, title: str) -> str:
    """A plain-text results table: WAR, UAR and per-class recall; a regression's scores (CCC, or
    MAE and RMSE per video) as they are."""
    if "accuracy" not in summary:
        shown = [(k, v) for k, v in summary.items() if k in ("ccc", "mae", "rmse", "num_videos", "num_examples")]
        return "\n".join([title] + [f"  {k:<16}{v:.4f}" if isinstance(v, float) else f"  {k:<16}{v}" for k, v in shown])
    lines = [title, f"  {'accuracy (WAR)':<16}{summary['accuracy']:.4f}", f"  {'UAR':<16}{summary['uar']:.4f}"]
    for name, recall in summary["per_class_recall"].items():
        lines.append(f"  {'recall ' + name:<16}{'n/a' if recall is None else f'{recall:.4f}'}")
    lines.append(f"  {'clips':<16}{summary['num_examples']}")
    return "\n".join(lines)
