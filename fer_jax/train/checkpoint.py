"""Orbax checkpoints: model + optimizer state, the data iterator's position, and step metadata.

One `CheckpointManager` keeps the latest checkpoint (to resume from) and the best one by
validation score (accuracy for classifiers, CCC for regressors: to evaluate and deploy); a checkpoint may be both.

Atomicity: Orbax writes a step into `<step>.orbax-checkpoint-tmp-<n>/`, writes `commit_success.txt`
into it last, then renames it to `<step>/`; only folders named as a bare step count as checkpoints.
A save killed half-way leaves a tmp folder, which is never restored and is deleted when the next
run opens the folder. A step folder without the commit file is never restored either (Orbax
alone would count it as a step): older than the newest complete step, it is an old checkpoint
whose deletion was killed half-way, and is deleted; newer (copied half-way, or written where
renames are not atomic), it is renamed `<step>.incomplete` and kept. A save that fails (read-only or full disk) raises
CheckpointError naming the folder; the checkpoints already there are left as they were.
"""

from __future__ import annotations

import logging
import pathlib
import shutil

import grain
import jax
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy as policies

from fer_jax.errors import CheckpointError

BEST_METRIC = "val_score"
COMMIT_FILE = "commit_success.txt"  # written last into a step folder, before its rename
INCOMPLETE_SUFFIX = ".incomplete"

log = logging.getLogger(__name__)


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
    if not read_only:
        set_aside_incomplete(directory)
    options = ocp.CheckpointManagerOptions(
        preservation_policy=keep, read_only=read_only, create=not read_only, cleanup_tmp_directories=not read_only,
        # Make the step's tmp folder in `save` itself: made in the background, a failure (read-only
        # disk) is only logged, and the save then waits out a 300 s timeout before it fails.
        async_options=ocp.AsyncOptions(create_directories_asynchronously=False),
    )
    try:
        return ocp.CheckpointManager(directory, options=options)
    except OSError as e:
        raise CheckpointError(f"{directory}: cannot open the checkpoint folder ({e})") from e


def is_complete(directory: pathlib.Path, step: int) -> bool:
    return (pathlib.Path(directory) / str(step) / COMMIT_FILE).is_file()


def set_aside_incomplete(directory: pathlib.Path) -> list[pathlib.Path]:
    """Deal with step folders that lack the commit file; return the paths set aside.

    One older than the newest complete step is a deletion by the preservation policy that was
    killed half-way (seen in tests/test_preemption.py): it is finished. A newer one is renamed
    `<step>.incomplete` and kept for a person to look at.
    """
    moved = []
    if jax.process_index() == 0 and directory.is_dir():
        # Tmp folders of killed saves: removed here, before the manager opens, rather than left to
        # Orbax's own cleanup, which runs in the background and may not be done when training starts.
        for tmp in directory.glob("*.orbax-checkpoint-tmp*"):
            log.warning("%s: an unfinished save; deleting it", tmp)
            shutil.rmtree(tmp, ignore_errors=True)
        steps = [int(p.name) for p in directory.iterdir() if p.is_dir() and p.name.isdigit()]
        newest_complete = max([s for s in steps if is_complete(directory, s)], default=-1)
        for step in sorted(s for s in steps if not is_complete(directory, s)):
            path = directory / str(step)
            if step < newest_complete:
                log.warning("%s: half-deleted old checkpoint (no %s); deleting the rest", path, COMMIT_FILE)
                shutil.rmtree(path, ignore_errors=True)
                continue
            target = path.with_name(path.name + INCOMPLETE_SUFFIX)
            n = 1
            while target.exists():
                target, n = path.with_name(f"{path.name}{INCOMPLETE_SUFFIX}{n}"), n + 1
            path.rename(target)
            log.warning("%s: no %s, so not a complete checkpoint; set aside as %s", path, COMMIT_FILE, target.name)
            moved.append(target)
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("fer_jax_checkpoint_set_aside")
    return moved


def latest_step(manager: ocp.CheckpointManager) -> int | None:
    """The newest complete step (with its commit file) on disk, or None. Read from the folder, not
    from the manager's own list, which a failed save leaves out of date."""
    directory = pathlib.Path(manager.directory)
    if not directory.is_dir():
        return None
    complete = [int(p.name) for p in directory.iterdir() if p.name.isdigit() and is_complete(directory, int(p.name))]
    return max(complete) if complete else None


def wait_until_finished(manager: ocp.CheckpointManager) -> None:
    """Wait for the saves in flight; a save that failed in the background raises CheckpointError."""
    try:
        manager.wait_until_finished()
    except Exception as e:  # Orbax re-raises the background thread's error, whatever its type
        raise _save_error(manager, None, e) from e


def _save_error(manager, step, error) -> CheckpointError:
    which = f"the checkpoint of step {step}" if step is not None else "a checkpoint"
    kept = latest_step(manager)
    kept = (f"step {kept} is the newest complete checkpoint there" if kept is not None
            else "no complete checkpoint is there yet")
    return CheckpointError(
        f"{manager.directory}: could not save {which} ({type(error).__name__}: {error}); {kept}. "
        "Free disk space or make the folder writable, then rerun the same command to resume"
    )


def save(manager: ocp.CheckpointManager, step: int, state, data_iterator, meta: dict, metrics: dict | None = None):
    args = {"state": ocp.args.StandardSave(state), "meta": ocp.args.JsonSave(meta)}
    if data_iterator is not None:
        args["data"] = grain.checkpoint.CheckpointSave(data_iterator)
    try:
        manager.save(step, args=ocp.args.Composite(**args), metrics=metrics, force=True)
    except Exception as e:  # an OSError here, or the previous async save's error re-raised
        raise _save_error(manager, step, e) from e


def _restorable(manager: ocp.CheckpointManager, step: int | None) -> int:
    """`step` (None: the latest), checked to be a complete checkpoint in the folder."""
    step = latest_step(manager) if step is None else step
    if step is None:
        raise CheckpointError(f"{manager.directory}: no complete checkpoint to restore")
    if step not in manager.all_steps():
        kept = sorted(manager.all_steps())
        raise CheckpointError(f"{manager.directory}: no checkpoint of step {step} (kept: {kept})")
    if not is_complete(manager.directory, step):
        raise CheckpointError(f"{manager.directory}/{step}: incomplete checkpoint (no {COMMIT_FILE}); not restored")
    return step


def restore(manager: ocp.CheckpointManager, step: int | None, abstract_state, data_iterator=None):
    """Restore `state` shaped and sharded like `abstract_state`; the iterator is restored in place.

    `step` None means the latest. Returns (state, meta)."""
    step = _restorable(manager, step)
    args = {"state": ocp.args.StandardRestore(abstract_state), "meta": ocp.args.JsonRestore()}
    if data_iterator is not None:
        args["data"] = grain.checkpoint.CheckpointRestore(data_iterator)
    restored = manager.restore(step, args=ocp.args.Composite(**args))
    return restored["state"], restored["meta"]


def restore_model(manager: ocp.CheckpointManager, step: int | None, abstract_model_state):
    """Only the model's variables (parameters, batch statistics, RNG streams) of a checkpoint of
    (model, optimizer) state, shaped and sharded like `abstract_model_state`: what inference needs,
    with no optimizer built and none of its moments read."""
    step = _restorable(manager, step)
    item = {0: abstract_model_state}  # the model is element 0 of the saved (model, optimizer) state
    args = ocp.args.PyTreeRestore(item=item, restore_args=ocp.checkpoint_utils.construct_restore_args(item),
                                  partial_restore=True)
    return manager.restore(step, args=ocp.args.Composite(state=args))["state"][0]


def best_step(manager: ocp.CheckpointManager) -> int | None:
    """The kept step with the highest validation score (read from each step's metadata: the
    manager's own `best_step` only knows about a `best_fn` option, not preservation policies)."""
    scored = []
    for step in manager.all_steps():
        if not is_complete(manager.directory, step):
            continue
        meta = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
        if meta.get(BEST_METRIC) is not None:
            scored.append((meta[BEST_METRIC], step))
    return max(scored)[1] if scored else None


def chosen_step(manager: ocp.CheckpointManager, step: int | None = None) -> int:
    """`step` if given, else the best-scoring kept step, else the latest complete one."""
    if step is not None:
        return step
    best = best_step(manager)
    step = best if best is not None else latest_step(manager)
    if step is None:
        raise CheckpointError(f"{manager.directory}: no complete checkpoint here")
    return step


def abstract_like(state):
    """ShapeDtypeStructs with the shardings of `state`, the target Orbax restores into."""
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, state)


class TrainingCheckpoints:
    """A training run's checkpoint folder as the loop uses it: resume from the newest complete
    checkpoint, save a step with its metadata (and its validation score, which picks the best),
    and say which checkpoint is the last good one when the run stops on a fault."""

    def __init__(self, directory: str | pathlib.Path, score_name: str, steps_per_epoch: int):
        self.manager = checkpoint_manager(directory)
        self.score_name, self.steps_per_epoch = score_name, steps_per_epoch

    @property
    def directory(self) -> pathlib.Path:
        return pathlib.Path(self.manager.directory)

    def resume(self, state, data_iterator) -> tuple[object, int, int]:
        """(state, first step to run, steps skipped so far): from the latest checkpoint, restoring
        the iterator in place, or as given (step 0) when there is none."""
        if latest_step(self.manager) is None:
            return state, 0, 0
        state, meta = restore(self.manager, None, abstract_like(state), data_iterator)
        print(f"resumed from step {int(meta['step'])} in {self.manager.directory}")
        return state, int(meta["step"]), int(meta.get("skipped_steps", 0))

    def save(self, step: int, state, data_iterator, skipped_steps: int, val: dict | None = None) -> None:
        """Save after `step`; `val`, the validation scores of this step, makes it a candidate for best."""
        score = val[self.score_name] if val else None
        meta = {"step": step, "epoch": step / self.steps_per_epoch, BEST_METRIC: score, "score_name": self.score_name,
                "skipped_steps": skipped_steps}
        save(self.manager, step, state, data_iterator, meta, {BEST_METRIC: score} if val else None)

    def wait_until_finished(self) -> None:
        wait_until_finished(self.manager)

    def kept_note(self) -> str:
        """Which checkpoint a stopped run leaves behind, once the saves in flight are done."""
        wait_until_finished(self.manager)
        kept = latest_step(self.manager)
        return (f"the last good checkpoint, step {kept}, is kept in {self.manager.directory}" if kept is not None
                else f"no checkpoint was saved yet in {self.manager.directory}")

    def best_step(self) -> int | None:
        return best_step(self.manager)
