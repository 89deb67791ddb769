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
from fer_jax.data import pipeline
from fer_jax.errors import FerJaxError, Preempted
from fer_jax.eval.evaluate import class_names_of, evaluate_split
from fer_jax.eval.plots import plot_confusion
from fer_jax.models import build_model
from fer_jax.train import checkpoint, faults
from fer_jax.train.faults import NonFiniteLossError  # noqa: F401  (raised by the loop; importable from here)
from fer_jax.train.metric_writers import MetricWriter
from fer_jax.train.step import Steps, make_optimizer, make_steps


def build_state(config: ExperimentConfig, mesh) -> Steps:
    """Model and optimizer from the config, split, placed on the mesh, with their jitted steps."""

    # Built inside jit: eagerly, every random initialiser is compiled and run on its own (~20 s on CPU).
    @nnx.jit
    def create():
        model = build_model(
            config.model.name, num_classes=config.data.num_classes, rngs=nnx.Rngs(config.train.seed),
            **config.model.kwargs,
        )
        return model, make_optimizer(model, config.train.learning_rate)

    model, optimizer = create()
    return make_steps(model, optimizer, mesh, config.augment, config.train.seed, config.train.precision,
                      skip_nonfinite=config.train.nonfinite == "skip")


def train(config: ExperimentConfig, *, stop_after_steps: int | None = None, devices=None) -> tuple[dict, Steps]:
    """Train (resuming from the workdir's latest checkpoint if there is one); return the results and
    the final steps (whose `state` holds the trained model).

    `stop_after_steps` ends the run early with a checkpoint, as a preempted job would.
    Faults (fer_jax.train.faults): SIGTERM/SIGINT save a checkpoint at the current step and raise
    `Preempted`; a non-finite loss or gradient raises NonFiniteLossError (train.nonfinite="error")
    or is skipped and counted ("skip"); a failed save raises CheckpointError.
    """
    faults.check_mode(config.train.nonfinite)
    workdir = pathlib.Path(config.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    is_chief = jax.process_index() == 0
    if is_chief:
        save_config(config, workdir / "config.json")

    # --- Mesh: one `data` axis over every device of every process.
    mesh = pipeline.make_mesh(devices)

    # --- Input: this process's share of the records, shuffled afresh each epoch.
    train_source = pipeline.open_source(config.data, config.data.train_split)
    val_source = pipeline.open_source(config.data, config.data.val_split)
    steps_per_epoch = len(train_source) // config.data.global_batch_size
    if steps_per_epoch == 0:
        raise FerJaxError(
            f"{config.data.dataset}: {len(train_source)} training clips, fewer than one batch of "
            f"{config.data.global_batch_size}; lower data.global_batch_size"
        )
    total_steps = config.train.max_steps or config.train.num_epochs * steps_per_epoch
    # A config whose frame shape or class count disagrees with the records fails here, before
    # anything is compiled (the check below, with the model's own input keys, runs again after).
    for split, source in ((config.data.train_split, train_source), (config.data.val_split, val_source)):
        stored = source.dataset_info.features
        pipeline.check_source_matches(config.data, source, split, [k for k in ("frames", "label") if k in stored])

    # --- Model, optimizer and their jitted steps; the model says which record features it reads.
    steps = build_state(config, mesh)
    state = steps.state
    keys = steps.batch_keys(train_source.dataset_info.features)
    for split, source in ((config.data.train_split, train_source), (config.data.val_split, val_source)):
        pipeline.check_source_matches(config.data, source, split, keys)
    data_iterator = pipeline.DevicePrefetch(
        pipeline.train_iterator(train_source, config.data, math.ceil(total_steps / steps_per_epoch), keys),
        mesh, config.data.device_prefetch)

    # --- Checkpoints: resume from the newest complete one.
    manager = checkpoint.checkpoint_manager(workdir / "checkpoints")
    start_step = 0
    monitor = faults.NonFiniteMonitor(config.train.nonfinite, config.train.max_skipped_steps)
    if checkpoint.latest_step(manager) is not None:
        state, meta = checkpoint.restore(manager, None, checkpoint.abstract_like(state), data_iterator)
        start_step = int(meta["step"])
        monitor.skipped = int(meta.get("skipped_steps", 0))
        print(f"resumed from step {start_step} in {manager.directory}")

    writer = MetricWriter(workdir, enabled=is_chief)
    class_names = class_names_of(config, val_source)
    last_val: dict | None = None
    train_seconds = 0.0

    score_name = steps.task.score_name

    def save(step, val=None):
        score = val[score_name] if val else None
        meta = {"step": step, "epoch": step / steps_per_epoch, checkpoint.BEST_METRIC: score, "score_name": score_name,
                "skipped_steps": monitor.skipped}
        metrics = {checkpoint.BEST_METRIC: score} if val else None
        checkpoint.save(manager, step, state, data_iterator, meta, metrics)

    # --- Loop.
    stop_at = min(total_steps, stop_after_steps or total_steps)
    progress = tqdm.tqdm(total=stop_at, initial=start_step, desc=config.name, unit="step", disable=not is_chief)
    tic = time.perf_counter()
    every = config.train.checkpoint_every_steps

    def kept_note() -> str:
        checkpoint.wait_until_finished(manager)
        kept = checkpoint.latest_step(manager)
        return (f"the last good checkpoint, step {kept}, is kept in {manager.directory}" if kept is not None
                else f"no checkpoint was saved yet in {manager.directory}")

    with faults.PreemptionGuard() as guard:
        try:
            for step in range(start_step, stop_at):
                batch = next(data_iterator)  # already on the devices
                state, metrics = steps.train(state, batch, step)
                done = step + 1
                monitor.add(done, metrics)  # device scalars, checked below before anything is saved
                preempted = faults.preemption_requested(guard, done)
                log_now = done % config.train.log_every_steps == 0 or done == stop_at
                epoch = done // steps_per_epoch
                epoch_end = done % steps_per_epoch == 0 and epoch % config.train.eval_every_epochs == 0
                eval_now = epoch_end or done == total_steps
                save_now = eval_now or (every and done % every == 0) or done == stop_at or preempted
                if log_now or save_now:
                    metrics = monitor.check(kept_note)  # raises on the first bad step since the last check
                if log_now:
                    logged = {k: v for k, v in metrics.items() if k != "finite"}
                    if config.train.nonfinite == "skip":
                        logged["skipped_steps"] = monitor.skipped
                    writer.write(done, "train", logged)
                    progress.set_postfix(loss=f"{metrics['loss']:.3f}", **{score_name: f"{metrics[score_name]:.2f}"})
                progress.update(1)
                if eval_now:
                    jax.block_until_ready(state)
                    train_seconds += time.perf_counter() - tic
                    last_val = evaluate_split(steps, state, val_source, config, mesh)
                    writer.write(done, "val", last_val)
                    save(done, last_val)
                    tic = time.perf_counter()
                elif save_now:
                    save(done)
                if preempted and done < stop_at:  # (a signal during the last step: the run is complete)
                    checkpoint.wait_until_finished(manager)
                    raise Preempted(
                        f"{guard.signal_name or 'preemption notice'}: stopped after step {done} of {stop_at} and saved "
                        f"a checkpoint in {manager.directory}; rerun the same command to resume from step {done}",
                        done, guard.signal_name or "preemption",
                    )
            jax.block_until_ready(state)
            checkpoint.wait_until_finished(manager)
        finally:
            data_iterator.close()  # stops reading (and any worker processes) now
            progress.close()
            writer.close()

    steps.state = state
    best = checkpoint.best_step(manager)
    results = {
        "name": config.name,
        "steps": stop_at,
        "epochs": stop_at / steps_per_epoch,
        "train_seconds": train_seconds + (time.perf_counter() - tic),
        "num_train_clips": len(train_source),
        "num_val_clips": len(val_source),
        "best_step": best,
        "device_kind": jax.devices()[0].device_kind,
        "device_count": jax.device_count(),
    }
    if last_val is not None:
        # Scores of the final model (no selection on the validation set); best_step names the
        # checkpoint a paper protocol that picks the best validation epoch would report.
        results.update({f"val_{k}": v for k, v in last_val.items() if k != "num_examples"}, evaluated_step=stop_at)
        if is_chief and "confusion" in last_val:
            plot_confusion(last_val["confusion"], class_names, workdir / "confusion_matrix.png",
                           title=f"{config.name}: validation, step {stop_at}")
    if is_chief:
        (workdir / "results.json").write_text(json.dumps(results, indent=2))
    return results, steps
