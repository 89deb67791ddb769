"""`fer-jax cv`: every run of a config's cross-validation protocol, and a per-fold table."""

from __future__ import annotations

import dataclasses
import json
import pathlib

import numpy as np

from fer_jax.config import ExperimentConfig
from fer_jax.errors import ConfigError

# Scores reported per fold, when the task produces them (classification: WAR, UAR; regression: CCC).
SCORES = ("val_accuracy", "val_uar", "val_ccc")


def run_cross_validation(config: ExperimentConfig, train_fn=None) -> dict:
    """Train one model per (name, train split, validation split) of `config.data.cv_runs`, each in
    `<workdir>/<name>`; write `<workdir>/cv_results.json` with every fold and the mean and std."""
    if not config.data.cv_runs:
        raise ConfigError(f"{config.name}: data.cv_runs is empty; this config defines no cross-validation protocol")
    if train_fn is None:
        from fer_jax.train.loop import train as train_fn

    folds = []
    for name, train_split, val_split in config.data.cv_runs:
        fold_config = dataclasses.replace(
            config,
            workdir=str(pathlib.Path(config.workdir) / name),
            data=dataclasses.replace(config.data, train_split=train_split, val_split=val_split),
        )
        results, _ = train_fn(fold_config)
        folds.append({"fold": name, **{k: results[k] for k in SCORES if k in results},
                      "num_train_clips": results["num_train_clips"], "num_val_clips": results["num_val_clips"]})
    summary = {"name": config.name, "folds": folds}
    for key in SCORES:
        values = [f[key] for f in folds if key in f]
        if values:
            summary[f"{key}_mean"] = float(np.mean(values))
            summary[f"{key}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    out = pathlib.Path(config.workdir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "cv_results.json").write_text(json.dumps(summary, indent=2))
    return summary


def format_cv_table(summary: dict) -> str:
    keys = [k for k in SCORES if f"{k}_mean" in summary]
    header = f"{'fold':<12}" + "".join(f"{k:>14}" for k in keys) + f"{'train':>8}{'val':>8}"
    lines = [header]
    for f in summary["folds"]:
        lines.append(f"{f['fold']:<12}" + "".join(f"{f[k]:>14.4f}" for k in keys)
                     + f"{f['num_train_clips']:>8}{f['num_val_clips']:>8}")
    lines.append(f"{'mean ± std':<12}" + "".join(
        f"{summary[k + '_mean']:>8.4f}±{summary[k + '_std']:.3f}"[-14:].rjust(14) for k in keys))
    return "\n".join(lines)
