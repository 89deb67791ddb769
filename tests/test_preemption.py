"""Preemption: `fer-jax train` killed with SIGKILL at random steps, three times in a row, then
stopped with SIGTERM, resumes each time and ends with the parameters of an uninterrupted run.

Each interrupted run is a real `python -m fer_jax.cli train` subprocess on the tiny corpus with a
checkpoint after every step, so kills land anywhere: inside a step, inside an asynchronous save
(leaving an Orbax tmp folder behind), inside the deletion of the previous checkpoint, between them.
The subprocesses inherit conftest's environment (four CPU devices, the persistent compile cache),
so they compile nothing the first one did not.
"""

import contextlib
import io
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from fer_jax.config import TrainConfig, load_config
from fer_jax import sharding
from fer_jax.errors import Preempted
from fer_jax.train import checkpoint, faults
from fer_jax.train.loop import train

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIG = """
from fer_jax.config import AugmentConfig, DataConfig, ExperimentConfig, ModelConfig, TrainConfig


def get_config():
    return ExperimentConfig(
        name="tiny", workdir={workdir!r},
        data=DataConfig(dataset={name!r}, data_dir={data_dir!r}, num_classes=3, frames=8, size=16,
                        global_batch_size=8, eval_batch_size=16),
        model=ModelConfig(kwargs={{"frames": 8, "size": 16, "conv_features": [4, 8, 8], "convlstm_filters": 4,
                                  "dropout": 0.2}}),
        augment=AugmentConfig(),
        train=TrainConfig(learning_rate=3e-3, num_epochs=1, log_every_steps=4, checkpoint_every_steps=1),
    )
"""
TOTAL_STEPS = 12  # 96 clips / 8 per batch, one epoch
TIMEOUT_S = 300


def complete_steps(directory: pathlib.Path) -> list[int]:
    if not directory.is_dir():
        return []
    steps = (int(p.name) for p in directory.iterdir() if p.name.isdigit())
    return sorted(s for s in steps if checkpoint.is_complete(directory, s))


def start(config_path, log_dir, run):
    out, err = open(log_dir / f"run{run}.out", "w"), open(log_dir / f"run{run}.err", "w")
    command = [sys.executable, "-m", "fer_jax.cli", "train", "--config", str(config_path)]
    return subprocess.Popen(command, cwd=REPO, env=dict(os.environ), stdout=out, stderr=err)


def signal_after(proc, checkpoints: pathlib.Path, step: int, delay: float, sig) -> None:
    """Send `sig` to `proc` `delay` seconds after checkpoint `step` (or a later one) is complete."""
    deadline = time.monotonic() + TIMEOUT_S
    while proc.poll() is None:
        if (complete_steps(checkpoints) or [0])[-1] >= step:
            time.sleep(delay)
            proc.send_signal(sig)
            break
        assert time.monotonic() < deadline, "training subprocess made no progress"
        time.sleep(0.01)
    proc.wait(timeout=TIMEOUT_S)


@pytest.fixture(scope="module")
def interrupted(tiny_dataset, tmp_path_factory):
    """Three SIGKILLs at random steps, a SIGTERM, then a run to the end; what each run left."""
    data_dir, name = tiny_dataset
    root = tmp_path_factory.mktemp("preempt")
    config_path = root / "config.py"
    config_path.write_text(CONFIG.format(workdir=str(root / "killed"), name=name, data_dir=data_dir))
    checkpoints = root / "killed" / "checkpoints"
    seed = time.time_ns() % 2**32  # a different schedule each time; printed with any failure
    rng = np.random.default_rng(seed)
    history = []  # (signal, target step, return code, complete steps after, tmp folders left)
    target = 0
    for run, sig in enumerate([signal.SIGKILL] * 3 + [signal.SIGTERM]):
        target += int(rng.integers(1, 3))
        proc = start(config_path, root, run)
        # SIGKILLs land a random 0-50 ms after a save (inside the next step or save); SIGTERM at
        # once, so at least 4 steps remain for it to interrupt even on a fast machine.
        signal_after(proc, checkpoints, target, float(rng.uniform(0, 0.05)) if sig == signal.SIGKILL else 0.0, sig)
        tmp_left = [p.name for p in checkpoints.iterdir() if "tmp" in p.name]
        history.append((sig, target, proc.returncode, complete_steps(checkpoints), tmp_left))
    # The last resume runs in this process (one interpreter start less; the same code): its final
    # state is what is compared with an uninterrupted run.
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        results, resumed = train(load_config(config_path))
    logs = {p.name: p.read_text() for p in root.glob("run*.*")}
    logs["runfinal.out"] = printed.getvalue()
    assert results["steps"] == TOTAL_STEPS
    return {"root": root, "config_path": config_path, "history": history, "logs": logs, "seed": seed,
            "resumed": resumed}


def test_sigkilled_three_times_resumes_to_the_uninterrupted_parameters(interrupted, tmp_path):
    history, logs, seed = interrupted["history"], interrupted["logs"], interrupted["seed"]
    for run, (sig, target, code, complete, _) in enumerate(history[:3]):
        stderr = logs[f"run{run}.err"][-2000:]
        assert code == -signal.SIGKILL, f"seed {seed}: run {run} was not killed (status {code}): {stderr}"
        assert complete and complete[-1] >= target, f"seed {seed}: {history}"
        # The next run resumed from exactly the newest complete checkpoint this one left.
        assert f"resumed from step {complete[-1]} " in logs[f"run{run + 1}.out"], f"seed {seed}: {history}"
    assert "resumed from step" not in logs["run0.out"]

    config = load_config(interrupted["config_path"], [f"workdir={tmp_path / 'straight'}"])
    _, straight = train(config)  # the same config, never interrupted
    manager = checkpoint.checkpoint_manager(interrupted["root"] / "killed" / "checkpoints", read_only=True)
    assert checkpoint.latest_step(manager) == TOTAL_STEPS
    a, b = jax.tree.leaves(straight.state), jax.tree.leaves(interrupted["resumed"].state)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        x, y = (jax.random.key_data(v) if jax.dtypes.issubdtype(v.dtype, jax.dtypes.prng_key) else v for v in (x, y))
        # Equal to float32 rounding (in practice bit-identical on CPU); a wrong data order or a
        # lost optimizer step moves parameters by ~1e-3.
        np.testing.assert_allclose(np.asarray(y), np.asarray(x), rtol=1e-6, atol=1e-7, err_msg=f"seed {seed}")
    # Tmp folders of killed saves, and old checkpoints whose deletion a kill cut short, were
    # cleaned up by the next run, never restored.
    assert sorted(p.name for p in manager.directory.iterdir()) == [str(TOTAL_STEPS)]


def test_sigterm_saves_at_the_current_step_and_exits_75(interrupted):
    sig, target, code, complete, tmp_left = interrupted["history"][3]
    err = interrupted["logs"]["run3.err"]
    assert code == Preempted.EXIT_STATUS == 75, err[-2000:]
    stopped = int(re.search(r"SIGTERM: stopped after step (\d+) of 12", err).group(1))
    # The step in flight when the signal came was finished and saved, and nothing after it ran.
    assert complete[-1] == stopped >= target and not tmp_left
    assert "rerun the same command to resume" in err
    assert f"resumed from step {stopped} " in interrupted["logs"]["runfinal.out"]


def test_sigterm_saves_even_when_no_periodic_save_is_due(tiny_dataset, tmp_path, monkeypatch, capsys):
    """With the default checkpoint_every_steps (no periodic saves; the only other save is the
    evaluation at the epoch's end), the checkpoint a SIGTERM leaves can come from the preemption
    path alone. The signal is sent from inside the run, while it fetches the batch of step 5."""
    data_dir, name = tiny_dataset
    config_path = tmp_path / "config.py"
    config_path.write_text(CONFIG.format(workdir=str(tmp_path / "run"), name=name, data_dir=data_dir))
    config = load_config(config_path, [f"train.checkpoint_every_steps={TrainConfig.checkpoint_every_steps}"])
    assert config.train.checkpoint_every_steps == 0
    real, calls = sharding.to_global, {"n": 0}

    def to_global(batch, mesh):
        calls["n"] += 1
        if calls["n"] == 5:
            os.kill(os.getpid(), signal.SIGTERM)  # caught by the loop's PreemptionGuard
        return real(batch, mesh)

    monkeypatch.setattr(sharding, "to_global", to_global)
    with pytest.raises(Preempted) as caught:
        train(config)
    stopped = caught.value.step
    assert 1 <= stopped < TOTAL_STEPS and caught.value.signal_name == "SIGTERM"
    checkpoints = tmp_path / "run" / "checkpoints"
    assert complete_steps(checkpoints) == [stopped], f"SIGTERM after step {stopped} left {complete_steps(checkpoints)}"
    monkeypatch.undo()
    capsys.readouterr()
    results, _ = train(config)
    assert results["steps"] == TOTAL_STEPS and f"resumed from step {stopped} " in capsys.readouterr().out


def test_guard_turns_sigint_into_a_request_and_a_second_signal_into_the_default():
    # Python's own Ctrl-C handler first: a test run earlier in the same worker may have left
    # another one (CI saw a second SIGINT ignored when the suite's order changed).
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with faults.PreemptionGuard() as guard:
            assert not guard.requested
            os.kill(os.getpid(), signal.SIGINT)
            assert guard.requested and guard.signal_name == "SIGINT"
            # A second Ctrl-C interrupts as usual.
            assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, inherited)
