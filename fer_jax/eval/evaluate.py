"""Evaluation of a model state on a split, and of a saved checkpoint (`fer-jax eval`)."""

from __future__ import annotations

import json
import pathlib

import numpy as np

from fer_jax.config import ExperimentConfig, read_saved_config
from fer_jax.data import pipeline
from fer_jax.errors import CheckpointError
from fer_jax.eval.plots import plot_confusion


def evaluate_split(steps, state, source, config: ExperimentConfig, mesh) -> dict:
    """Run the jitted `steps.evaluate` over every example of `source` once and score the task."""
    keys = steps.batch_keys(source.dataset_info.features)
    targets = {k: [] for k in steps.task.target_keys}
    predictions = []
    for item in pipeline.eval_batches(source, config.data, keys):
        batch = pipeline.to_global({**item.batch, "example_mask": item.mask}, mesh)
        predicted = pipeline.to_host(steps.evaluate(state, batch))
        real = pipeline.to_host(batch["example_mask"])
        for k in targets:
            targets[k].append(pipeline.to_host(batch[k])[real])
        predictions.append(predicted[real])
    targets = {k: np.concatenate(v) for k, v in targets.items()}
    return steps.task.summarize(
        np.concatenate(predictions), targets, config.data.num_classes, class_names_of(config, source)
    )


def class_names_of(config: ExperimentConfig, source) -> list[str]:
    if config.data.class_names:
        return list(config.data.class_names)
    features = source.dataset_info.features
    return list(features["label"].names) if "label" in features else []


def format_table(summary: dict, title: str) -> str:
    """A plain-text results table: WAR, UAR and per-class recall."""
    lines = [title, f"  {'accuracy (WAR)':<16}{summary['accuracy']:.4f}", f"  {'UAR':<16}{summary['uar']:.4f}"]
    for name, recall in summary["per_class_recall"].items():
        lines.append(f"  {'recall ' + name:<16}{'n/a' if recall is None else f'{recall:.4f}'}")
    lines.append(f"  {'clips':<16}{summary['num_examples']}")
    return "\n".join(lines)


def evaluate_checkpoint(directory: str | pathlib.Path, split: str | None = None, step: int | None = None) -> dict:
    """Evaluate the best (or given) checkpoint of a training workdir on its validation split.

    Everything about the model and its inputs is read from the config saved beside the checkpoints.
    """
    # Imported here: evaluation of a saved run needs the trainer's state layout, training does not need this.
    from fer_jax.train import checkpoint
    from fer_jax.train.loop import build_state

    workdir = pathlib.Path(directory)
    if workdir.name == "checkpoints":
        workdir = workdir.parent
    config = read_saved_config(workdir / "config.json")
    split = split or config.data.val_split
    manager = checkpoint.checkpoint_manager(workdir / "checkpoints", read_only=True)
    step = step if step is not None else checkpoint.best_step(manager) or manager.latest_step()
    if step is None:
        raise CheckpointError(f"{workdir / 'checkpoints'}: no checkpoint to evaluate")
    mesh = pipeline.make_mesh()
    steps = build_state(config, mesh)
    state, meta = checkpoint.restore(manager, step, checkpoint.abstract_like(steps.state))
    source = pipeline.open_source(config.data, split)
    pipeline.check_source_matches(config.data, source, split, steps.batch_keys(source.dataset_info.features))
    summary = evaluate_split(steps, state, source, config, mesh)
    summary.update(split=split, step=int(step))
    out = workdir / f"eval_{split}_step{step}.json"
    out.write_text(json.dumps(summary, indent=2))
    plot_confusion(summary["confusion"], class_names_of(config, source), workdir / f"confusion_{split}_step{step}.png",
                   title=f"{config.name} {split} step {step}")
    return summary
