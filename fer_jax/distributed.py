"""Multi-host start-up: JAX's own distributed runtime, before anything touches the devices.

Under SLURM (`srun`) or Open MPI (`mpirun`) JAX finds the coordinator, the process count and this
process's id by itself. Anywhere else (a Kubernetes pod set, hand-started processes) give them
explicitly, by `fer-jax --coordinator-address HOST:PORT --num-processes N --process-id I ...` or by
$FER_JAX_COORDINATOR_ADDRESS, $FER_JAX_NUM_PROCESSES and $FER_JAX_PROCESS_ID. A single process
needs nothing and this is then a no-op.
"""

from __future__ import annotations

import os

import jax

from fer_jax.errors import ConfigError

ENV = {"coordinator_address": "FER_JAX_COORDINATOR_ADDRESS", "num_processes": "FER_JAX_NUM_PROCESSES",
       "process_id": "FER_JAX_PROCESS_ID"}


def _int(name: str, value) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r}: expected an integer") from None


def detected_cluster() -> str | None:
    """The launcher JAX will read the process layout from, if this is a multi-process launch."""
    tasks = os.environ.get("SLURM_STEP_NUM_TASKS") or os.environ.get("SLURM_NTASKS")
    if (_int("SLURM_NTASKS", tasks) or 0) > 1:
        return "slurm"
    if (_int("OMPI_COMM_WORLD_SIZE", os.environ.get("OMPI_COMM_WORLD_SIZE")) or 0) > 1:
        return "openmpi"
    return None


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> bool:
    """Join the job's processes into one JAX runtime; returns True when it is multi-process.

    Arguments left as None fall back to the $FER_JAX_* variables, then to JAX's detection of
    SLURM or Open MPI. CPU processes talk through gloo (no accelerator interconnect to use).
    """
    coordinator_address = coordinator_address or os.environ.get(ENV["coordinator_address"]) or None
    num_processes = num_processes if num_processes is not None else _int(
        ENV["num_processes"], os.environ.get(ENV["num_processes"]))
    process_id = process_id if process_id is not None else _int(ENV["process_id"], os.environ.get(ENV["process_id"]))
    explicit = (coordinator_address, num_processes, process_id)
    if all(v is None for v in explicit):
        if detected_cluster() is None:
            return False
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize()  # JAX reads SLURM / Open MPI's variables itself
        _join_cpu_collectives()
        return True
    if any(v is None for v in explicit):
        raise ConfigError(
            "multi-host: give all three of the coordinator address, the number of processes and this "
            f"process's id (flags or ${', $'.join(ENV.values())}); got {dict(zip(ENV, explicit))}"
        )
    if not 0 <= process_id < num_processes:
        raise ConfigError(f"multi-host: process id {process_id} is not in [0, {num_processes})")
    if num_processes == 1:
        return False
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address, num_processes, process_id)
    _join_cpu_collectives()
    return True


def _join_cpu_collectives() -> None:
    # gloo gives each process 30 s to join a new collective context, and busy CPU hosts drift apart
    # by more while compiling. Right after start-up the processes are in step, so the context
    # that later barriers (checkpointing) use is made now.
    if jax.devices()[0].platform == "cpu":
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("fer_jax.distributed.initialize")
