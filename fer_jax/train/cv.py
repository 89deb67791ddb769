"""`fer-jax cv`: every run of a config's cross-validation protocol, and a per-fold table."""

from __future__ import annotations

import dataclasses
import json
import pathlib

import numpy as np

from fer_jax.config import ExperimentConfig
from fer_jax.errors import ConfigError

# Scores reported per fold, when the task produces them (classification: WAR, UAR; regression: CCC;
# score per video: MAE, RMSE): of the final model, and at the best validation epoch (`best_`; what
# papers that select it report).
SCORES = ("val_accuracy", "val_uar", "val_ccc", "val_mae", "val_rmse")
ALL_SCORES = SCORES + tuple(f"best_{k}" for k in SCORES)


def run_cross_validation(config: ExperimentConfig, train_fn=None) -> dict:
    """Train one model per (name, train split, validation split) of `config.data.cv_runs`, each in
    `<workdir>/<name>`; write `<workdir>/cv_results.json` with every fold and the mean and std.

    Runs that repeat an earlier run's (train, validation) pair (repeated 80:20 runs) are not copies:
    the k-th repetition trains with `train.seed + k` and `data.shuffle_seed + k`."""
    if not config.data.cv_runs:
        raise ConfigError(f"{config.name}: data.cv_runs is empty; this config defines no cross-validation protocol")
    if train_fn is None:
        from fer_jax.train.loop import train as train_fn

    folds = []
    for index, (name, train_split, val_split) in enumerate(config.data.cv_runs):
        repetition = [run[1:] for run in config.data.cv_runs[:index]].count((train_split, val_split))
        fold_config = dataclasses.replace(
            config,
            workdir=str(pathlib.Path(config.workdir) / name),
            data=dataclasses.replace(config.data, train_split=train_split, val_split=val_split,
                                     shuffle_seed=config.data.shuffle_seed + repetition),
            train=dataclasses.replace(config.train, seed=config.train.seed + repetition),
        )
        results, _ = train_fn(fold_config)
        results = {**results, **best_epoch_scores(fold_config.workdir, results.get("best_step"))}
        folds.append({"fold": name, **{k: results[k] for k in ALL_SCORES if k in results},
                      "num_train_clips": results["num_train_clips"], "num_val_clips": results["num_val_clips"]})
    summary = {"name": config.name, "folds": folds}
    for key in ALL_SCORES:
        values = [f[key] for f in folds if key in f]
        if values:
            summary[f"{key}_mean"] = float(np.mean(values))
            summary[f"{key}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    out = pathlib.Path(config.workdir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "cv_results.json").write_text(json.dumps(summary, indent=2))
    return summary


def best_epoch_scores(workdir: str, best_step: int | None) -> dict:
    """{"best_val_<score>": value} of the validation row the trainer logged at `best_step` (the
    checkpoint kept as best) in `<workdir>/metrics.jsonl`; {} when there is none."""
    path = pathlib.Path(workdir) / "metrics.jsonl"
    if best_step is None or not path.is_file():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    # A resumed run appends; its last row for the step is the one the checkpoint holds.
    val = [r for r in rows if r.get("split") == "val" and r.get("step") == best_step]
    if not val:
        return {}
    return {f"best_{k}": val[-1][k.removeprefix("val_")] for k in SCORES if k.removeprefix("val_") in val[-1]}


def format_cv_table(summary: dict) -> str:
    keys = [k for k in ALL_SCORES if f"{k}_mean" in summary]
    width = max(len(k) for k in keys) + 2 if keys else 14
    header = f"{'fold':<12}" + "".join(f"{k:>{width}}" for k in keys) + f"{'train':>8}{'val':>8}"
    lines = [header]
    for f in summary["folds"]:
        lines.append(f"{f['fold']:<12}" + "".join(f"{f[k]:>{width}.4f}" if k in f else "n/a".rjust(width) for k in keys)
                     + f"{f['num_train_clips']:>8}{f['num_val_clips']:>8}")
    lines.append(f"{'mean ± std':<12}" + "".join(
        f"{summary[k + '_mean']:.4f}±{summary[k + '_std']:.3f}".rjust(width) for k in keys))
    return "\n".join(lines)
