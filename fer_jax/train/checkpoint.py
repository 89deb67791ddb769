"""Orbax checkpoints: model + optimizer state, the data iterator's position, and step metadata.

One `CheckpointManager` keeps the latest checkpoint (to resume from) and the best one by
validation score (accuracy for classifiers, CCC for regressors: to evaluate and deploy); a checkpoint may be both. Orbax writes into a
temporary folder and renames it when complete, so a half-written checkpoint is never restored.
"""

from __future__ import annotations

import pathlib

import grain
import jax
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy as policies

from fer_jax.errors import CheckpointError

BEST_METRIC = "val_score"


def checkpoint_manager(directory: str | pathlib.Path, *, read_only: bool = False) -> ocp.CheckpointManager:
    directory = pathlib.Path(directory).absolute()
    if read_only and not directory.is_dir():
        raise CheckpointError(f"{directory}: no checkpoint directory here")
    keep = policies.AnyPreservationPolicy(
        [
            policies.LatestN(n=1),
            policies.BestN(get_metric_fn=lambda m: m[BEST_METRIC], n=1, keep_checkpoints_without_metrics=False),
        ]
    )
    options = ocp.CheckpointManagerOptions(preservation_policy=keep, read_only=read_only, create=not read_only)
    return ocp.CheckpointManager(directory, options=options)


def save(manager: ocp.CheckpointManager, step: int, state, data_iterator, meta: dict, metrics: dict | None = None):
    args = {"state": ocp.args.StandardSave(state), "meta": ocp.args.JsonSave(meta)}
    if data_iterator is not None:
        args["data"] = grain.checkpoint.CheckpointSave(data_iterator)
    manager.save(step, args=ocp.args.Composite(**args), metrics=metrics, force=True)


def restore(manager: ocp.CheckpointManager, step: int | None, abstract_state, data_iterator=None):
    """Restore `state` shaped and sharded like `abstract_state`; the iterator is restored in place.

    `step` None means the latest. Returns (state, meta)."""
    step = manager.latest_step() if step is None else step
    if step is None:
        raise CheckpointError(f"{manager.directory}: no complete checkpoint to restore")
    args = {"state": ocp.args.StandardRestore(abstract_state), "meta": ocp.args.JsonRestore()}
    if data_iterator is not None:
        args["data"] = grain.checkpoint.CheckpointRestore(data_iterator)
    restored = manager.restore(step, args=ocp.args.Composite(**args))
    return restored["state"], restored["meta"]


def best_step(manager: ocp.CheckpointManager) -> int | None:
    """The kept step with the highest validation score (read from each step's metadata: the
    manager's own `best_step` only knows about a `best_fn` option, not preservation policies)."""
    scored = []
    for step in manager.all_steps():
        meta = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
        if meta.get(BEST_METRIC) is not None:
            scored.append((meta[BEST_METRIC], step))
    return max(scored)[1] if scored else None


def abstract_like(state):
    """ShapeDtypeStructs with the shardings of `state`, the target Orbax restores into."""
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
