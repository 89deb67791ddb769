"""The training loop, top to bottom: mesh, input, model, state, checkpoint, loop, evaluation."""

from __future__ import annotations

import json
import math
import pathlib
import time

import jax
import tqdm
from flax import nnx

from fer_jax.config import ExperimentConfig, save_config
from fer_jax.data.sources import class_names_of, open_split
from fer_jax.data.train_batches import train_iterator
from fer_jax.errors import FerJaxError, Preempted
from fer_jax.eval.evaluate import evaluate_split
from fer_jax.eval.plots import plot_confusion
from fer_jax.sharding import DevicePrefetch, make_mesh
from fer_jax.train import checkpoint, faults
from fer_jax.train.faults import NonFiniteLossError  # noqa: F401  (raised by the loop; importable from here)
from fer_jax.train.metric_writers import MetricWriter
from fer_jax.train.step import Steps, check_lr_schedule, make_optimizer, make_steps, model_of
from fer_jax.train.tasks import record_keys_of


def build_state(config: ExperimentConfig, mesh, total_steps: int | None = None) -> Steps:
    """Model and optimizer from the config, split, placed on the mesh, with their jitted steps.
    `total_steps`: the run's length, which a decaying learning rate (train.lr_schedule) needs."""

    @nnx.jit  # (see model_of: built inside jit)
    def create():
        model = model_of(config)
        return model, make_optimizer(model, config.train.learning_rate, config.train.lr_schedule, total_steps)

    model, optimizer = create()
    return make_steps(model, optimizer, mesh, config.augment, config.train.seed, config.train.precision,
                      skip_nonfinite=config.train.nonfinite == "skip")


def is_due(step: int, every: int | None, last_step: int) -> bool:
    """Whether work done every `every` steps (None or 0: never) is due after 1-based `step`; it is
    always due after `last_step`."""
    return bool(every) and step % every == 0 or step == last_step


class Stopwatch:
    """Seconds spent training: running, except while paused (evaluation and its save)."""

    def __init__(self):
        self.seconds, self._since = 0.0, time.perf_counter()

    def pause(self, state) -> None:
        jax.block_until_ready(state)  # the steps dispatched so far count as training
        self.seconds += time.perf_counter() - self._since

    def resume(self) -> None:
        self._since = time.perf_counter()

    def total(self) -> float:
        return self.seconds + (time.perf_counter() - self._since)


def train(config: ExperimentConfig, *, stop_after_steps: int | None = None, devices=None) -> tuple[dict, Steps]:
    """Train (resuming from the workdir's latest checkpoint if there is one); return the results and
    the final steps (whose `state` holds the trained model).

    `stop_after_steps` ends the run early with a checkpoint, as a preempted job would.
    Faults (fer_jax.train.faults): SIGTERM/SIGINT save a checkpoint at the current step and raise
    `Preempted`; a non-finite loss or gradient raises NonFiniteLossError (train.nonfinite="error")
    or is skipped and counted ("skip"); a failed save raises CheckpointError.
    """
    faults.check_mode(config.train.nonfinite)
    check_lr_schedule(config.train.lr_schedule)
    workdir = pathlib.Path(config.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    is_chief = jax.process_index() == 0
    if is_chief:
        save_config(config, workdir / "config.json")

    # --- Mesh: one `data` axis over every device of every process.
    mesh = make_mesh(devices, batch_sizes=(config.data.global_batch_size, config.data.eval_batch_size))

    # --- Input: both splits, checked against the config and the model's keys (read from the
    # model's traced shape) before anything is compiled.
    model_keys = record_keys_of(nnx.eval_shape(lambda: model_of(config)))
    train_split = open_split(config.data, config.data.train_split, model_keys)
    val_split = open_split(config.data, config.data.val_split, model_keys)
    steps_per_epoch = len(train_split) // config.data.global_batch_size
    if steps_per_epoch == 0:
        raise FerJaxError(
            f"{config.data.dataset}: {len(train_split)} training clips, fewer than one batch of "
            f"{config.data.global_batch_size}; lower data.global_batch_size"
        )
    total_steps = config.train.max_steps or config.train.num_epochs * steps_per_epoch

    # --- Model, optimizer and their jitted steps; this process's batches, on the devices ahead of time.
    steps = build_state(config, mesh, total_steps)
    data_iterator = DevicePrefetch(
        train_iterator(train_split.source, config.data, math.ceil(total_steps / steps_per_epoch), train_split.keys),
        mesh, config.data.device_prefetch)

    # --- Checkpoints: resume from the newest complete one.
    checkpoints = checkpoint.TrainingCheckpoints(workdir / "checkpoints", steps.task.score_name, steps_per_epoch)
    monitor = faults.NonFiniteMonitor(config.train.nonfinite, config.train.max_skipped_steps)
    state, start_step, monitor.skipped = checkpoints.resume(steps.state, data_iterator)

    # --- Loop: step, log, maybe evaluate, maybe save.
    writer = MetricWriter(workdir, enabled=is_chief)
    stop_at = min(total_steps, stop_after_steps or total_steps)
    eval_every = steps_per_epoch * config.train.eval_every_epochs
    progress = tqdm.tqdm(total=stop_at, initial=start_step, desc=config.name, unit="step", disable=not is_chief)
    stopwatch, last_val = Stopwatch(), None
    with faults.PreemptionGuard() as guard:
        try:
            for step in range(start_step, stop_at):
                state, metrics = steps.train(state, next(data_iterator), step)  # the batch is on the devices
                done = step + 1
                monitor.add(done, metrics)  # device scalars, checked below before anything is saved
                preempted = faults.preemption_requested(guard, done)
                log_now = is_due(done, config.train.log_every_steps, stop_at)
                eval_now = is_due(done, eval_every, total_steps)
                save_now = eval_now or preempted or is_due(done, config.train.checkpoint_every_steps, stop_at)
                if log_now or save_now:
                    metrics = monitor.check(checkpoints.kept_note)  # raises on the first bad step since the last check
                if log_now:
                    _log_train(writer, progress, done, metrics, config, monitor.skipped, steps.task.score_name)
                progress.update(1)
                if eval_now:
                    stopwatch.pause(state)
                    last_val = evaluate_split(steps, state, val_split, config, mesh)
                    writer.write(done, "val", last_val)
                    checkpoints.save(done, state, data_iterator, monitor.skipped, last_val)
                    stopwatch.resume()
                elif save_now:
                    checkpoints.save(done, state, data_iterator, monitor.skipped)
                if preempted and done < stop_at:  # (a signal during the last step: the run is complete)
                    checkpoints.wait_until_finished()
                    raise Preempted(
                        f"{guard.signal_name or 'preemption notice'}: stopped after step {done} of {stop_at} and saved "
                        f"a checkpoint in {checkpoints.directory}; rerun the same command to resume from step {done}",
                        done, guard.signal_name or "preemption",
                    )
            jax.block_until_ready(state)
            checkpoints.wait_until_finished()
        finally:
            data_iterator.close()  # stops reading (and any worker processes) now
            progress.close()
            writer.close()

    steps.state = state
    results = {
        "name": config.name,
        "steps": stop_at,
        "epochs": stop_at / steps_per_epoch,
        "train_seconds": stopwatch.total(),
        "num_train_clips": len(train_split),
        "num_val_clips": len(val_split),
        "best_step": checkpoints.best_step(),
        "device_kind": jax.devices()[0].device_kind,
        "device_count": jax.device_count(),
    }
    if last_val is not None:
        # Scores of the final model (no selection on the validation set); best_step names the
        # checkpoint a paper protocol that picks the best validation epoch would report.
        results.update({f"val_{k}": v for k, v in last_val.items() if k != "num_examples"}, evaluated_step=stop_at)
        if is_chief and "confusion" in last_val:
            plot_confusion(last_val["confusion"], class_names_of(config.data, val_split.source),
                           workdir / "confusion_matrix.png", title=f"{config.name}: validation, step {stop_at}")
    if is_chief:
        (workdir / "results.json").write_text(json.dumps(results, indent=2))
    return results, steps


def _log_train(writer: MetricWriter, progress, step: int, metrics: dict, config: ExperimentConfig, skipped: int,
               score_name: str) -> None:
    logged = {k: v for k, v in metrics.items() if k != "finite"}
    if config.train.nonfinite == "skip":
        logged["skipped_steps"] = skipped
    writer.write(step, "train", logged)
    progress.set_postfix(loss=f"{metrics['loss']:.3f}", **{score_name: f"{metrics[score_name]:.2f}"})
