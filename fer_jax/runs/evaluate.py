"""`fer-jax eval`: a saved run's checkpoint scored on a split, with its table and confusion matrix."""

from __future__ import annotations

import json
import pathlib

from fer_jax.data.sources import class_names_of
from fer_jax.eval.plots import plot_confusion
from fer_jax.runs.saved_run import evaluation_mesh, load_run


def evaluate_checkpoint(directory: str | pathlib.Path, split: str | None = None, step: int | None = None) -> dict:
    """Evaluate the best (or given) checkpoint of a training workdir on its validation split (or
    `split`); write `eval_<split>_step<step>.json` and the confusion matrix beside the run."""
    mesh = evaluation_mesh(directory)
    run = load_run(directory, step, mesh=mesh, trained_precision=True)  # computed as its validation was
    data = run.open_split(split)
    outputs, targets = run.predict_split(data, mesh)
    class_names = class_names_of(run.config.data, data.source)
    summary = run.task.summarize(run.task.predict(outputs), targets, run.config.data.num_classes, class_names)
    summary.update(split=data.name, step=run.step)
    out = run.workdir / f"eval_{data.name}_step{run.step}.json"
    out.write_text(json.dumps(summary, indent=2))
    if "confusion" in summary:  # a classifier's; a regressor's scores are numbers only
        plot_confusion(summary["confusion"], class_names, run.workdir / f"confusion_{data.name}_step{run.step}.png",
                       title=f"{run.config.name} {data.name} step {run.step}")
    return summary
