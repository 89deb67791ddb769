"""Numerical faults, failed saves, half-written checkpoints and configs that disagree with the records.

A bad batch is made the way one arrives in practice: a label outside the classes (a corrupt record),
which makes the cross-entropy NaN. It is injected at a chosen step by wrapping `sharding.to_global`.
"""

import dataclasses
import errno
import json
import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from fer_jax import sharding
from fer_jax.config import AugmentConfig, ExperimentConfig
from fer_jax.errors import CheckpointError, ConfigError
from fer_jax.train import checkpoint, faults, loop
from fer_jax.train.step import make_optimizer, make_steps
from fer_jax.train.faults import NonFiniteLossError
from helpers import training


def tiny_config(tiny_dataset, workdir, **train_kwargs) -> ExperimentConfig:
    """The tiny run, one epoch (12 steps) unless told otherwise."""
    return training.tiny_config(tiny_dataset, workdir, **{"num_epochs": 1, **train_kwargs})


def poison_steps(monkeypatch, bad_steps):
    """Give the batches of the 1-based `bad_steps` of this run a label of 99 (no such class)."""
    real, calls = sharding.to_global, {"n": 0}

    def to_global(batch, mesh):
        calls["n"] += 1
        if calls["n"] in bad_steps:
            batch = {**batch, "label": np.full_like(batch["label"], 99)}
        return real(batch, mesh)

    monkeypatch.setattr(sharding, "to_global", to_global)


def leaves(state, *, rng: bool):
    """{path: array} of the RNG-stream leaves (rng=True) or of all the others."""
    out = {}
    for path, x in jax.tree_util.tree_leaves_with_path(state):
        name = jax.tree_util.keystr(path)
        if ("['rngs']" in name) == rng:
            out[name] = np.asarray(jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x)
    return out


def restore_step(workdir, step, like):
    manager = checkpoint.checkpoint_manager(pathlib.Path(workdir) / "checkpoints", read_only=True)
    return checkpoint.restore(manager, step, checkpoint.abstract_like(like))


def test_nonfinite_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tiny_dataset, tmp_path, monkeypatch):
    config = tiny_config(tiny_dataset, tmp_path, checkpoint_every_steps=2)
    poison_steps(monkeypatch, {5})  # not a log step (4, 8) nor a save step (even): checked at step 6
    with pytest.raises(NonFiniteLossError) as caught:
        loop.train(config)
    error = caught.value
    assert (error.step, error.quantity) == (5, "loss")
    assert "step 5: loss is nan" in str(error) and "last good checkpoint, step 4, is kept" in str(error)
    manager = checkpoint.checkpoint_manager(tmp_path / "checkpoints", read_only=True)
    assert checkpoint.latest_step(manager) == 4  # the save at step 6 never happened
    steps = loop.build_state(config, sharding.make_mesh())
    state, meta = checkpoint.restore(manager, None, checkpoint.abstract_like(steps.state))
    assert meta["step"] == 4
    assert all(np.isfinite(x).all() for x in leaves(state, rng=False).values())


def test_skip_mode_leaves_the_state_unchanged_counts_and_stops_past_the_limit(tiny_dataset, tmp_path, monkeypatch):
    config = tiny_config(tiny_dataset, tmp_path, checkpoint_every_steps=1, log_every_steps=1,
                         nonfinite="skip", max_skipped_steps=1)
    poison_steps(monkeypatch, {5, 7})
    saved = {}  # step -> (state as NumPy, meta), recorded as the loop saves (only the latest stays on disk)
    real_save = checkpoint.save

    def recording_save(manager, step, state, data_iterator, meta, metrics=None):
        saved[step] = (jax.tree.map(lambda x: x.copy(), state), dict(meta))  # copies: the step donates `state`
        return real_save(manager, step, state, data_iterator, meta, metrics)

    monkeypatch.setattr(checkpoint, "save", recording_save)
    with pytest.raises(NonFiniteLossError) as caught:
        loop.train(config)
    assert caught.value.step == 7 and "2 steps have now been skipped" in str(caught.value)
    assert "train.max_skipped_steps=1" in str(caught.value)
    assert sorted(saved) == [1, 2, 3, 4, 5, 6]  # nothing saved once step 7 went past the limit
    (before, meta4), (skipped, meta5), (after, meta6) = saved[4], saved[5], saved[6]
    assert (meta4["skipped_steps"], meta5["skipped_steps"], meta6["skipped_steps"]) == (0, 1, 1)
    on_disk, meta = restore_step(tmp_path, None, loop.build_state(config, sharding.make_mesh()).state)
    assert meta == meta6 and all(np.array_equal(x, y) for x, y in zip(leaves(on_disk, rng=False).values(),
                                                                     leaves(after, rng=False).values()))
    # The skipped step left parameters, Adam moments and Adam's count bit for bit as they were...
    a, b = leaves(before, rng=False), leaves(skipped, rng=False)
    assert a.keys() == b.keys() and len(a) > 10
    for name in a:
        np.testing.assert_array_equal(b[name], a[name], err_msg=name)
    # ...while the RNG streams moved on, and the next good step trained normally.
    assert any((leaves(before, rng=True)[k] != v).any() for k, v in leaves(skipped, rng=True).items())
    assert any((leaves(after, rng=False)[k] != v).any() for k, v in b.items())
    logged = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [l["skipped_steps"] for l in logged if l["split"] == "train"] == [0, 0, 0, 0, 1, 1]
    assert 7 not in [l["step"] for l in logged]  # nothing logged from the step that stopped the run


def test_monitor_names_a_nonfinite_gradient_and_checks_every_pending_step():
    ok = {"loss": np.float32(0.5), "grad_norm": np.float32(1.0), "finite": np.bool_(True)}
    bad_grad = {"loss": np.float32(0.5), "grad_norm": np.float32(np.inf), "finite": np.bool_(False)}
    monitor = faults.NonFiniteMonitor("error")
    for step, metrics in enumerate([ok, bad_grad, ok, ok], start=11):
        monitor.add(step, jax.tree.map(jnp.asarray, metrics))
    with pytest.raises(NonFiniteLossError) as caught:
        monitor.check(lambda: "note")
    assert (caught.value.step, caught.value.quantity) == (12, "grad_norm") and "step 12: grad_norm" in str(caught.value)
    with pytest.raises(ConfigError, match="train.nonfinite='ignore'"):
        faults.check_mode("ignore")


class _SqrtOfBrightness(nnx.Module):
    """logits = sqrt(w * mean brightness), 3 classes. A black clip gives finite logits (zeros, so a
    loss of log 3) but a gradient d/dw = brightness / (2 sqrt(w brightness)) = 0 / 0 = NaN: a
    non-finite gradient behind a finite loss, as a real model's sqrt, norm or division at zero makes."""

    def __init__(self):
        self.w = nnx.Param(jnp.ones((3,)))

    def __call__(self, inputs):
        return jnp.sqrt(self.w[...] * inputs["frames"].mean(axis=(1, 2, 3, 4))[:, None])


@pytest.mark.parametrize("mode", faults.NONFINITE_MODES)
def test_train_step_catches_a_nonfinite_gradient_behind_a_finite_loss(mode):
    model = _SqrtOfBrightness()
    mesh = sharding.make_mesh()
    steps = make_steps(model, make_optimizer(model, 0.1), mesh, AugmentConfig(enabled=False), seed=0,
                       skip_nonfinite=mode == "skip")
    frames = np.random.default_rng(0).integers(1, 256, (8, 2, 4, 4, 1), dtype=np.uint8)
    good, black = ({"frames": f, "label": np.arange(8, dtype=np.int32) % 3} for f in (frames, np.zeros_like(frames)))
    state, ok = steps.train(steps.state, sharding.to_global(good, mesh), 0)
    assert bool(ok["finite"])
    before = leaves(state, rng=False)  # copies: the step donates `state`
    state, bad = steps.train(state, sharding.to_global(black, mesh), 1)
    bad = jax.device_get(bad)
    assert np.isfinite(bad["loss"]) and not np.isfinite(bad["grad_norm"]), bad
    assert not bad["finite"], f"the step called itself finite with grad_norm {bad['grad_norm']}"
    after = leaves(state, rng=False)
    if mode == "skip":  # parameters and Adam moments and count left exactly as they were
        assert before.keys() == after.keys()
        for name in before:
            np.testing.assert_array_equal(after[name], before[name], err_msg=name)
    monitor = faults.NonFiniteMonitor(mode, max_skipped=0)
    monitor.add(2, bad)
    with pytest.raises(NonFiniteLossError) as caught:
        monitor.check(lambda: "note")
    assert (caught.value.step, caught.value.quantity) == (2, "grad_norm")


def test_select_if_finite_matches_optax_apply_if_finite():
    """Our where-select around a plain Adam update against optax's own skip-on-non-finite wrapper."""
    params = {"w": jnp.array([0.5, -1.0, 2.0]), "b": jnp.array(0.25)}
    reference, plain = optax.apply_if_finite(optax.adam(0.1), max_consecutive_errors=5), optax.adam(0.1)
    ref_params, ref_state = params, reference.init(params)
    ours, state = params, plain.init(params)
    for scale in (1.0, np.nan, -2.0, np.inf, 0.5):
        grads = jax.tree.map(lambda p: jnp.full_like(p, scale) * (1 + p), params)
        ref_updates, ref_state = reference.update(grads, ref_state, ref_params)
        ref_params = optax.apply_updates(ref_params, ref_updates)
        updates, new_state = plain.update(grads, state, ours)
        finite = jnp.isfinite(optax.tree.norm(grads))
        ours, state = faults.select_if_finite(finite, (optax.apply_updates(ours, updates), new_state), (ours, state))
        for name in params:
            np.testing.assert_allclose(ours[name], ref_params[name], rtol=1e-6, atol=0)
    assert int(ref_state.total_notfinite) == 2 and int(state[0].count) == 3  # Adam counted good steps only


def test_failed_save_raises_checkpoint_error_and_keeps_the_good_checkpoints(tiny_dataset, tmp_path, monkeypatch):
    """A read-only disk from step 4 on: os.makedirs fails with EROFS where Orbax makes the step's tmp
    folder, as it does on a file system remounted read-only (checked by hand with a tmpfs; tests
    cannot mount, and chmod does not stop root)."""
    import os

    real_makedirs = os.makedirs

    def read_only_from_step_4(path, *args, **kwargs):
        tmp = re.search(r"/(\d+)\.orbax-checkpoint-tmp", os.fspath(path))
        if tmp and int(tmp.group(1)) >= 4:
            raise OSError(errno.EROFS, "Read-only file system", os.fspath(path))
        return real_makedirs(path, *args, **kwargs)

    monkeypatch.setattr(os, "makedirs", read_only_from_step_4)
    config = tiny_config(tiny_dataset, tmp_path, checkpoint_every_steps=2, max_steps=8)
    with pytest.raises(CheckpointError) as caught:
        loop.train(config)
    message = str(caught.value)
    assert str(tmp_path / "checkpoints") in message and "Read-only file system" in message
    assert "step 2 is the newest complete checkpoint there" in message
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if "tmp" not in p.name) == ["2"]
    # Once the disk is writable again, the same command resumes from step 2 and finishes.
    monkeypatch.setattr(os, "makedirs", real_makedirs)
    results, _ = loop.train(config)
    assert results["steps"] == 8
    manager = checkpoint.checkpoint_manager(tmp_path / "checkpoints", read_only=True)
    assert checkpoint.latest_step(manager) == 8


def test_orbax_renames_a_committed_tmp_folder_and_half_written_ones_are_never_restored(tmp_path, monkeypatch):
    from orbax.checkpoint._src.path import async_path

    directory = tmp_path / "checkpoints"
    renames = []
    real_rename = async_path.rename

    async def recording_rename(src, dst):
        source, target = pathlib.Path(str(src)), pathlib.Path(str(dst))
        renames.append((source, target, (source / checkpoint.COMMIT_FILE).is_file()))
        return await real_rename(src, dst)

    monkeypatch.setattr(async_path, "rename", recording_rename)
    manager = checkpoint.checkpoint_manager(directory)
    state = {"w": jnp.arange(4.0)}
    for step in (1, 2):
        checkpoint.save(manager, step, jax.tree.map(lambda x: x * step, state), None, {"step": step})
    checkpoint.wait_until_finished(manager)
    # Orbax wrote each step into a tmp folder, put the commit file in it, then renamed it.
    steps = [(s.name.split(".")[0], ".orbax-checkpoint-tmp" in s.name, d.name, committed)
             for s, d, committed in renames if d.parent == directory]  # (items inside are renamed too)
    assert steps == [("1", True, "1", True), ("2", True, "2", True)]

    # What a killed save leaves: a tmp folder, and (non-atomic file systems, interrupted copies) a
    # step folder without its commit file.
    (directory / "3.orbax-checkpoint-tmp-1234" / "state").mkdir(parents=True)
    incomplete = directory / "4"
    incomplete.mkdir()
    for item in (directory / "2").iterdir():
        if item.name != checkpoint.COMMIT_FILE:
            (incomplete / item.name).symlink_to(item)
    half_deleted = directory / "1"  # an old step whose deletion was killed: commit file already gone
    (half_deleted / "state").mkdir(parents=True)
    reader = checkpoint.checkpoint_manager(directory, read_only=True)
    assert checkpoint.latest_step(reader) == 2
    with pytest.raises(CheckpointError, match="incomplete checkpoint"):
        checkpoint.restore(reader, 4, checkpoint.abstract_like(state))

    manager = checkpoint.checkpoint_manager(directory)  # what a resumed training run opens
    assert checkpoint.latest_step(manager) == 2
    restored, meta = checkpoint.restore(manager, None, checkpoint.abstract_like(state))
    assert meta["step"] == 2
    np.testing.assert_array_equal(restored["w"], np.arange(4.0) * 2)
    manager.wait_until_finished()
    names = sorted(p.name for p in directory.iterdir())
    # tmp folder and half-deleted old step removed; the newer incomplete step set aside, kept
    assert names == ["2", "4.incomplete"]
    checkpoint.save(manager, 3, state, None, {"step": 3})
    checkpoint.wait_until_finished(manager)
    assert checkpoint.latest_step(manager) == 3


def test_config_disagreeing_with_the_records_fails_before_compiling(tiny_dataset, tmp_path, monkeypatch):
    def no_compiling(*args, **kwargs):
        raise AssertionError("build_state ran: the mismatch was not caught before compiling")

    monkeypatch.setattr(loop, "build_state", no_compiling)
    base = tiny_config(tiny_dataset, tmp_path)
    wrong_classes = dataclasses.replace(base, data=dataclasses.replace(base.data, num_classes=7))
    with pytest.raises(ConfigError, match=r"records have 3 classes, the config says data.num_classes=7"):
        loop.train(wrong_classes)
    wrong_size = dataclasses.replace(base, data=dataclasses.replace(base.data, size=32))
    with pytest.raises(ConfigError, match=r"frames of shape \(8, 16, 16, 1\), the config expects \(8, 32, 32, 1\)"):
        loop.train(wrong_size)
    wrong_frames = dataclasses.replace(base, data=dataclasses.replace(base.data, frames=16, channels=3))
    with pytest.raises(ConfigError, match=r"tiny_clips\[train\]: records hold frames of shape"):
        loop.train(wrong_frames)
