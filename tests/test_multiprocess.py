"""Multi-host training: 2 processes x 2 CPU devices, joined by jax.distributed over loopback with
gloo collectives, end with the same parameters as 1 process x 4 devices."""

import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import pytest

TESTS = pathlib.Path(__file__).parent
STEPS = 4


def _config(tiny_dataset, workdir):
    """The trainer tests' tiny run with a C3D (the quickest of our models to compile: four programs
    are compiled here) and no augmentation (not what is under test)."""
    import dataclasses

    from helpers.training import tiny_config

    from fer_jax.config import AugmentConfig, ModelConfig

    c3d = {"frames": 8, "size": 16, "in_channels": 1, "conv_blocks": [[4], [8]],
           "pool_windows": [[1, 2, 2], [2, 2, 2]], "fc_features": [16], "dropout": 0.2}
    return dataclasses.replace(tiny_config(tiny_dataset, workdir), model=ModelConfig(name="msff_c3d", kwargs=c3d),
                               augment=AugmentConfig(enabled=False))


def test_process_shares_tile_the_single_process_batches(tiny_dataset):
    """Each process's rows of every batch, side by side, are the batches one process reads alone
    (epoch boundaries inside a batch included), and every epoch is a permutation of the split."""
    from fer_jax.config import DataConfig
    from fer_jax.data.sources import open_source
    from fer_jax.data.train_batches import TrainBatches

    data_dir, name = tiny_dataset
    source = open_source(DataConfig(dataset=name, data_dir=data_dir), "train")
    n = len(source)  # 96 records: batches of 10 cross the epoch boundaries at 96 and 192
    kwargs = dict(num_epochs=3, seed=5, global_batch=10)
    whole = TrainBatches(source, ("frames", "label"), local_batch=10, process=0, **kwargs)
    shares = [TrainBatches(source, ("frames", "label"), local_batch=5, process=p, **kwargs) for p in (0, 1)]
    assert len(whole) == len(shares[0]) == 3 * n // 10
    for k in (0, 9, 19, len(whole) - 1):
        for key in ("frames", "label"):
            np.testing.assert_array_equal(np.concatenate([shares[0][k][key], shares[1][k][key]]), whole[k][key])
    order = np.concatenate([whole.record_indices(k) for k in range(len(whole))])
    for epoch in range(2):
        assert sorted(order[epoch * n : (epoch + 1) * n]) == list(range(n))
    assert list(order[:n]) != list(order[n : 2 * n])  # a fresh order each epoch
    assert whole[3]["label"].dtype == np.int32 and whole[3]["frames"].dtype == np.uint8


def test_distributed_needs_all_three_settings(monkeypatch):
    from fer_jax import distributed
    from fer_jax.errors import ConfigError

    for name in distributed.ENV.values():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("SLURM_NTASKS", raising=False)
    monkeypatch.delenv("OMPI_COMM_WORLD_SIZE", raising=False)
    assert distributed.initialize() is False  # one process: nothing to join
    with pytest.raises(ConfigError, match="all three"):
        distributed.initialize("127.0.0.1:1234", 2, None)
    with pytest.raises(ConfigError, match="not in"):
        distributed.initialize("127.0.0.1:1234", 2, 2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(process_id: int, port: int, data_dir: str, name: str, workdir: str, out: str) -> None:
    """One of the 2 processes (run as a script): join, train STEPS steps into a workdir both share
    (as hosts share a file system), save the parameters."""
    from fer_jax.distributed import initialize

    assert initialize(f"127.0.0.1:{port}", 2, process_id)
    import jax

    from helpers.training import params_of

    from fer_jax.train.loop import train

    assert jax.process_count() == 2 and jax.device_count() == 4 and jax.local_device_count() == 2
    _, steps = train(_config((data_dir, name), workdir), stop_after_steps=STEPS)
    np.savez(out, *params_of(steps))


def test_two_processes_equal_one_process_with_four_devices(tiny_dataset, tmp_path):
    import jax

    from helpers.training import assert_same_params, params_of

    from fer_jax.train.loop import train

    data_dir, name = tiny_dataset
    port = _free_port()
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, str(p), str(port), data_dir, name, str(tmp_path / "multi"),
             str(tmp_path / f"params_{p}.npz")],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for p in (0, 1)
    ]
    outputs = []
    for p, proc in enumerate(procs):
        try:
            outputs.append(proc.communicate(timeout=400)[0])
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail(f"process {p} did not finish in 400 s")
    for p, proc in enumerate(procs):
        assert proc.returncode == 0, f"process {p} failed:\n" + "\n".join(
            f"--- process {q}:\n{out[-2500:]}" for q, out in enumerate(outputs))
    # The single-process reference afterwards (not meanwhile: on a busy CPU the two processes must
    # keep within gloo's 30 s of each other): 4 devices of this process. stop_after_steps: mid-epoch,
    # so neither run compiles the evaluation (the checkpoint is written).
    _, one = train(_config(tiny_dataset, tmp_path / "single"), stop_after_steps=STEPS, devices=jax.devices())
    reference = params_of(one)
    for p in (0, 1):
        with np.load(tmp_path / f"params_{p}.npz") as saved:
            # Same global batches; only the order of the cross-device sums differs: float32 rounding.
            assert_same_params(reference, [saved[f"arr_{i}"] for i in range(len(saved.files))], rtol=1e-4, atol=1e-6)


if __name__ == "__main__":
    _worker(int(sys.argv[1]), int(sys.argv[2]), *sys.argv[3:])
