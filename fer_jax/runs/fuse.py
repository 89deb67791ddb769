"""`fer-jax fuse`: late fusion of separately trained runs (Hu et al. 2019's last step).

Each workdir is one `fer-jax train` run, or one `fer-jax cv` run (then every fold is fused with the
same fold of the others). For each run, the best checkpoint's softmax probabilities on its
validation split are fused with convex weights found by random search on that split
(`late_fusion.random_search_fusion_weights`), and scored there: the weights are chosen on the
split they are reported on, so the fused figure is an optimistic one.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib

import numpy as np

from fer_jax.data.sources import class_names_of
from fer_jax.errors import ConfigError
from fer_jax.eval.late_fusion import fuse, random_search_fusion_weights
from fer_jax.eval.metrics import classification_summary
from fer_jax.runs.saved_run import evaluation_mesh, load_run


@dataclasses.dataclass
class RunScores:
    workdir: pathlib.Path
    dataset: str
    split: str
    step: int
    probabilities: np.ndarray  # (N, C) softmax of the model's logits
    labels: np.ndarray  # (N,)
    class_names: list[str]


def validation_scores(workdir: str | pathlib.Path) -> RunScores:
    """Class probabilities of a run's best checkpoint (the latest when none was scored) on its
    validation split, in the split's record order."""
    mesh = evaluation_mesh(workdir)
    run = load_run(workdir, mesh=mesh, trained_precision=True)
    if run.task.name != "classification":
        raise ConfigError(f"{run.workdir}: late fusion combines class scores; {run.config.model.name} is a "
                          f"{run.task.name} model")
    data = run.open_split()
    probabilities, targets = run.predict_split(data, mesh, probabilities=True)
    return RunScores(run.workdir, run.config.data.dataset, data.name, run.step, probabilities, targets["label"],
                     class_names_of(run.config.data, data.source))


def _runs_of(workdir: pathlib.Path) -> list[str]:
    """Fold names of a `fer-jax cv` workdir, or [""] for a single run."""
    if (workdir / "cv_results.json").is_file():
        return [f["fold"] for f in json.loads((workdir / "cv_results.json").read_text())["folds"]]
    if (workdir / "config.json").is_file():
        return [""]
    raise ConfigError(f"{workdir}: neither a training workdir (config.json) nor a cv workdir (cv_results.json)")


def fuse_run_scores(scores: list[RunScores], *, trials: int = 1000, seed: int = 0) -> dict:
    """Fuse one run of each model: weights, and WAR/UAR of each model and of the fusion."""
    first = scores[0]
    for other in scores[1:]:
        if (other.dataset, other.split) != (first.dataset, first.split) or not np.array_equal(other.labels, first.labels):
            raise ConfigError(
                f"{other.workdir}: validated on {other.dataset}[{other.split}] ({len(other.labels)} clips), but "
                f"{first.workdir} on {first.dataset}[{first.split}] ({len(first.labels)} clips); late fusion "
                "needs the same clips in the same order"
            )
    num_classes = first.probabilities.shape[1]
    weights, _ = random_search_fusion_weights([s.probabilities for s in scores], first.labels, trials=trials, seed=seed)

    def scored(probabilities):
        summary = classification_summary(first.labels, probabilities.argmax(-1), num_classes, first.class_names)
        return {"accuracy": summary["accuracy"], "uar": summary["uar"], "confusion": summary["confusion"]}

    return {
        "weights": [float(w) for w in weights],
        "models": [{"workdir": str(s.workdir), "step": s.step, **scored(s.probabilities)} for s in scores],
        "fused": scored(fuse([s.probabilities for s in scores], weights)),
        "num_val_clips": int(len(first.labels)),
    }


def fuse_runs(workdirs, out: str | pathlib.Path | None = None, *, trials: int = 1000, seed: int = 0) -> dict:
    """Fuse every run (or cv fold) the workdirs share; write `<out>/fuse_results.json` (default:
    `fused_<names>` beside the first workdir) with each fold and the mean and std of the fused scores."""
    workdirs = [pathlib.Path(w) for w in workdirs]
    if len(workdirs) < 2:
        raise ConfigError("fer-jax fuse needs the workdirs of at least two trained models")
    runs = _runs_of(workdirs[0])
    for workdir in workdirs[1:]:
        if _runs_of(workdir) != runs:
            raise ConfigError(f"{workdir}: its runs {_runs_of(workdir)} are not {workdirs[0]}'s {runs}")
    folds = []
    for run in runs:
        fused = fuse_run_scores([validation_scores(w / run) for w in workdirs], trials=trials, seed=seed)
        folds.append({"fold": run or workdirs[0].name, **fused})
    summary = {"workdirs": [str(w) for w in workdirs], "folds": folds}
    for key in ("accuracy", "uar"):
        values = [f["fused"][key] for f in folds]
        summary[f"fused_{key}_mean"] = float(np.mean(values))
        summary[f"fused_{key}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    out = pathlib.Path(out) if out else workdirs[0].parent / ("fused_" + "+".join(w.name for w in workdirs))
    out.mkdir(parents=True, exist_ok=True)
    (out / "fuse_results.json").write_text(json.dumps(summary, indent=2))
    summary["out"] = str(out)
    return summary


def format_fuse_table(summary: dict) -> str:
    names = [pathlib.Path(w).name for w in summary["workdirs"]]
    width = max(12, *(len(n) + 2 for n in names))
    lines = [f"{'fold':<12}" + "".join(f"{n:>{width}}" for n in names) + f"{'fused WAR':>12}{'fused UAR':>12}  weights"]
    for f in summary["folds"]:
        lines.append(f"{f['fold']:<12}" + "".join(f"{m['accuracy']:>{width}.4f}" for m in f["models"])
                     + f"{f['fused']['accuracy']:>12.4f}{f['fused']['uar']:>12.4f}  "
                     + " ".join(f"{w:.3f}" for w in f["weights"]))
    lines.append(f"{'mean ± std':<12}" + " " * (width * len(names))
                 + f"{summary['fused_accuracy_mean']:.4f}±{summary['fused_accuracy_std']:.3f}".rjust(12)
                 + f"{summary['fused_uar_mean']:.4f}±{summary['fused_uar_std']:.3f}".rjust(12))
    return "\n".join(lines)
