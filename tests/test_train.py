"""The trainer: sharded steps equal single-device steps, resume is exact, the model learns."""

import dataclasses
import json

import jax

from fer_jax.train.loop import train
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
