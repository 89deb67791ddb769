"""A run on disk, restored one way (fer_jax.runs.saved_run): the model alone, no optimizer, and
its predictions over a split are those the trainer's own validation made."""

import json

import jax
import numpy as np
import pytest
from flax import nnx

from fer_jax.errors import CheckpointError
from fer_jax.runs.evaluate import evaluate_checkpoint
from fer_jax.runs.saved_run import load_run
from fer_jax.train import checkpoint
from fer_jax.train.loop import train
from fer_jax.train.step import make_optimizer, model_of
from helpers.training import tiny_config


@pytest.fixture(scope="module")
def run(tiny_dataset, tmp_path_factory):
    """The tiny run, one epoch (12 steps) with its validation at the end."""
    workdir = tmp_path_factory.mktemp("run")
    results, _ = train(tiny_config(tiny_dataset, workdir, num_epochs=1))
    return workdir, results


def raw(x):
    return np.asarray(jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x)


def test_the_model_is_restored_without_its_optimizer_and_equals_the_trainers_state(run):
    workdir, results = run
    saved = load_run(workdir / "checkpoints")  # the checkpoints/ folder names the same run
    assert saved.workdir == workdir and saved.step == results["best_step"] == 12

    # The whole (model, optimizer) state, as the trainer restores it to resume.
    config = saved.config
    model, optimizer = nnx.eval_shape(lambda: (m := model_of(config), make_optimizer(m, config.train.learning_rate)))
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
                            nnx.state((model, optimizer)))
    manager = checkpoint.checkpoint_manager(workdir / "checkpoints", read_only=True)
    full, _ = checkpoint.restore(manager, saved.step, abstract)

    restored, trained = jax.tree.leaves(saved.params), jax.tree.leaves(full[0])
    assert len(restored) == len(trained) < len(jax.tree.leaves(full))  # the Adam moments were not read
    for a, b in zip(restored, trained):
        np.testing.assert_array_equal(raw(a), raw(b))


def test_evaluating_the_saved_run_repeats_the_trainers_validation(run):
    workdir, results = run
    summary = evaluate_checkpoint(workdir)
    # The same weights on the same clips as the validation after the last step: the same
    # predictions, clip for clip.
    assert (summary["split"], summary["step"], results["evaluated_step"]) == ("validation", 12, 12)
    assert summary["num_examples"] == results["num_val_clips"]
    np.testing.assert_array_equal(summary["confusion"], results["val_confusion"])
    assert summary["accuracy"] == results["val_accuracy"]
    assert json.loads((workdir / "eval_validation_step12.json").read_text())["accuracy"] == summary["accuracy"]


def test_a_run_without_a_complete_checkpoint_is_refused(run, tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "config.json").write_text((run[0] / "config.json").read_text())
    with pytest.raises(CheckpointError, match=r"checkpoints: no complete checkpoint here"):
        load_run(tmp_path)
