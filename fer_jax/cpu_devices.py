"""One XLA:CPU device per core for the `fer-jax` command, so that a step keeps every core busy.

Why (measured on this project's 2-core CPU machine, BENCHMARKS.md): XLA:CPU runs a step's
element-wise fusions, gathers and pooling on one thread per device and only its matrix products
on every core, so with one device a core idles for much of the step. With one device per core the
batch is split over them as over GPUs (the mesh's `data` axis, `fer_jax.sharding.make_mesh`), each
runs its share on its own core, and the gradients are summed: the paper-size 3D-CNN + ConvLSTM
step went from 42 to 51 clips/s. The mesh takes as many of these devices as divide the batch.

XLA reads the count when its CPU backend starts, so `configure` runs before anything touches jax
(the command's entry point, `fer_jax.cli.console_main`). FER_JAX_CPU_DEVICES=N sets the count
(1: one device, as before); an XLA_FLAGS that sets the count itself is left as it is. A library
user sets XLA_FLAGS themselves (docs/speed.md). Runs of several processes (`--num-processes`)
keep one device per process: they are how the tests stand in for several hosts on one machine.
"""

from __future__ import annotations

import os

COUNT_FLAG = "--xla_force_host_platform_device_count"


def wanted_count(environ=os.environ) -> int:
    """FER_JAX_CPU_DEVICES, else the cores this process may run on."""
    if "FER_JAX_CPU_DEVICES" in environ:
        return int(environ["FER_JAX_CPU_DEVICES"])
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def configure(several_processes: bool, environ=os.environ) -> None:
    """Add the device count to XLA_FLAGS in `environ`, unless it is set there already or the
    command runs several processes."""
    flags = environ.get("XLA_FLAGS", "")
    if COUNT_FLAG in flags or several_processes:
        return
    count = wanted_count(environ)
    if count > 1:
        environ["XLA_FLAGS"] = f"{flags} {COUNT_FLAG}={count}".strip()
