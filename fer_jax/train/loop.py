"""The training loop, top to bottom: mesh, input, model, state, checkpoint, loop, evaluation."""

from __future__ import annotations

import json
import math
import pathlib
import time

import jax
import numpy as np
import tqdm
from flax import nnx

from fer_jax.config import ExperimentConfig, save_config
from fer_jax.data import pipeline
from fer_jax.errors import FerJaxError
from fer_jax.eval.evaluate import class_names_of, evaluate_split
from fer_jax.eval.plots import plot_confusion
from fer_jax.models import build_model
from fer_jax.train import checkpoint
from fer_jax.train.metric_writers import MetricWriter
from fer_jax.train.step import Steps, make_optimizer, make_steps


class NonFiniteLossError(FerJaxError):
    pass


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
    return make_steps(model, optimizer, mesh, config.augment, config.train.seed)


def train(config: ExperimentConfig, *, stop_after_steps: int | None = None, devices=None) -> tuple[dict, Steps]:
    """Train (resuming from the workdir's latest checkpoint if there is one); return the results and
    the final steps (whose `state` holds the trained model).

    `stop_after_steps` ends the run early with a checkpoint, as a preempted job would.
    """
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

    # --- Model, optimizer and their jitted steps; the model says which record features it reads.
    steps = build_state(config, mesh)
    state = steps.state
    keys = steps.batch_keys(train_source.dataset_info.features)
    for split, source in ((config.data.train_split, train_source), (config.data.val_split, val_source)):
        pipeline.check_source_matches(config.data, source, split, keys)
    data_iterator = pipeline.train_iterator(train_source, config.data, math.ceil(total_steps / steps_per_epoch), keys)

    # --- Checkpoints: resume from the latest complete one.
    manager = checkpoint.checkpoint_manager(workdir / "checkpoints")
    start_step = 0
    if manager.latest_step() is not None:
        state, meta = checkpoint.restore(manager, None, checkpoint.abstract_like(state), data_iterator)
        start_step = int(meta["step"])
        print(f"resumed from step {start_step} in {manager.directory}")

    writer = MetricWriter(workdir, enabled=is_chief)
    class_names = class_names_of(config, val_source)
    last_val: dict | None = None
    train_seconds = 0.0

    score_name = steps.task.score_name

    def save(step, val=None):
        score = val[score_name] if val else None
        meta = {"step": step, "epoch": step / steps_per_epoch, checkpoint.BEST_METRIC: score, "score_name": score_name}
        metrics = {checkpoint.BEST_METRIC: score} if val else None
        checkpoint.save(manager, step, state, data_iterator, meta, metrics)

    # --- Loop.
    stop_at = min(total_steps, stop_after_steps or total_steps)
    progress = tqdm.tqdm(total=stop_at, initial=start_step, desc=config.name, unit="step", disable=not is_chief)
    tic = time.perf_counter()
    for step in range(start_step, stop_at):
        batch = pipeline.to_global(next(data_iterator), mesh)
        state, metrics = steps.train(state, batch, step)
        done = step + 1
        if done % config.train.log_every_steps == 0 or done == stop_at:
            metrics = jax.device_get(metrics)
            if not np.isfinite(metrics["loss"]):
                raise NonFiniteLossError(f"step {done}: loss is {metrics['loss']}; the last good checkpoint is kept")
            writer.write(done, "train", metrics)
            progress.set_postfix(loss=f"{metrics['loss']:.3f}", **{score_name: f"{metrics[score_name]:.2f}"})
        progress.update(1)
        epoch_end = done % steps_per_epoch == 0 and (done // steps_per_epoch) % config.train.eval_every_epochs == 0
        if epoch_end or done == total_steps:
            jax.block_until_ready(state)
            train_seconds += time.perf_counter() - tic
            last_val = evaluate_split(steps, state, val_source, config, mesh)
            writer.write(done, "val", last_val)
            save(done, last_val)
            tic = time.perf_counter()
        elif (config.train.checkpoint_every_steps and done % config.train.checkpoint_every_steps == 0) or done == stop_at:
            save(done)
    progress.close()
    jax.block_until_ready(state)
    manager.wait_until_finished()
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
