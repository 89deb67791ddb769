"""The trainer: sharded steps equal single-device steps, resume is exact, the model learns."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from fer_jax.errors import ConfigError
from fer_jax.train.loop import train
from fer_jax.train.step import make_optimizer
from helpers.training import assert_same_params, params_of, tiny_config


def test_step_on_four_device_mesh_equals_one_device(tiny_dataset, tmp_path):
    assert jax.device_count() == 4, "conftest.py sets four CPU devices"
    config = tiny_config(tiny_dataset, tmp_path / "one", max_steps=6)
    _, one = train(config, devices=jax.devices()[:1])
    config = dataclasses.replace(config, workdir=str(tmp_path / "four"))
    _, four = train(config, devices=jax.devices())
    assert one.state is not four.state
    # Same global batch; only the order of the cross-device sums differs, so float32 rounding.
    assert_same_params(params_of(one), params_of(four), rtol=1e-4, atol=1e-6)
    assert len(jax.tree.leaves(four.state)[0].sharding.device_set) == 4  # really ran on the 4-device mesh


def test_resumed_run_equals_uninterrupted_run(tiny_dataset, tmp_path):
    config = tiny_config(tiny_dataset, tmp_path / "straight", num_epochs=2)
    results, straight = train(config)
    config = dataclasses.replace(config, workdir=str(tmp_path / "resumed"))
    partial, _ = train(config, stop_after_steps=7)  # mid-epoch, mid-shuffle
    assert partial["steps"] == 7
    resumed_results, resumed = train(config)
    assert resumed_results["steps"] == results["steps"] == 24
    assert_same_params(params_of(straight), params_of(resumed), rtol=0, atol=0)


def test_training_learns_and_writes_results(tiny_dataset, tmp_path):
    config = tiny_config(tiny_dataset, tmp_path, num_epochs=6, eval_every_epochs=3)
    results, _ = train(config)
    assert results["val_accuracy"] > 0.8  # chance is 1/3
    saved = json.loads((tmp_path / "results.json").read_text())
    for key in ("val_accuracy", "val_uar", "train_seconds", "num_train_clips", "num_val_clips"):
        assert key in saved
    assert saved["num_train_clips"] == 96 and saved["num_val_clips"] == 30
    lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert {l["split"] for l in lines} == {"train", "val"}
    assert all("loss" in l and "grad_norm" in l for l in lines if l["split"] == "train")
    assert (tmp_path / "confusion_matrix.png").stat().st_size > 1000
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_learning_rate_schedule_sets_each_adam_step(schedule):
    """With a constant gradient, every Adam step moves each weight by the step's learning rate
    (m / sqrt(v) = 1), so the moves read back the schedule: lr throughout, or lr (1 + cos(pi k / K)) / 2."""
    lr, total = 0.01, 4
    # Weights from zero, so each move is read off numbers near its own size (no O(1) weight's ulps).
    model = nnx.Linear(2, 1, kernel_init=nnx.initializers.zeros, rngs=nnx.Rngs(0))
    optimizer = make_optimizer(model, lr, schedule, total_steps=total)
    grads = jax.tree.map(jnp.ones_like, nnx.state(model, nnx.Param))
    moves = []
    for _ in range(total):
        before = model.kernel[...].copy()
        optimizer.update(model, grads)
        moves.append(float((before - model.kernel[...]).mean()))
    expected = [lr if schedule == "constant" else lr * (1 + np.cos(np.pi * k / total)) / 2 for k in range(total)]
    # float32 Adam: the bias correction 1 - 0.999^t cancels all but ~1e-3 of its terms, so it holds
    # float32's epsilon / 1e-3 relative error (halved by the square root); eps (1e-8) adds 1e-8.
    np.testing.assert_allclose(moves, expected, rtol=np.finfo(np.float32).eps / (1 - 0.999))


def test_unknown_or_unsized_schedule_is_named():
    model = nnx.Linear(2, 1, rngs=nnx.Rngs(0))
    with pytest.raises(ConfigError, match="lr_schedule must be one of"):
        make_optimizer(model, 0.01, "linear")
    with pytest.raises(ConfigError, match="needs the run's number of steps"):
        make_optimizer(model, 0.01, "cosine")


def test_train_names_an_unknown_schedule_before_reading_data(tmp_path):
    """The schedule is checked first, as train.nonfinite is: the data folder here does not exist,
    so a later check would fail on the data instead."""
    config = tiny_config((str(tmp_path / "no_data"), "tiny_dataset"), tmp_path / "run", lr_schedule="linear")
    with pytest.raises(ConfigError, match="lr_schedule must be one of"):
        train(config)
