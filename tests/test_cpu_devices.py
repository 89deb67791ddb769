"""One XLA:CPU device per core for the `fer-jax` command, and a mesh that takes the devices a batch divides."""

import json
import os
import subprocess
import sys
import types

import pytest

from fer_jax import cpu_devices
from fer_jax import sharding


def test_configure_adds_the_core_count_to_xla_flags():
    environ = {"XLA_FLAGS": "--xla_dump_to=/tmp/x", "FER_JAX_CPU_DEVICES": "4"}
    cpu_devices.configure(several_processes=False, environ=environ)
    assert environ["XLA_FLAGS"] == "--xla_dump_to=/tmp/x --xla_force_host_platform_device_count=4"


def test_configure_defaults_to_the_cores_this_process_may_use():
    environ = {}
    cpu_devices.configure(several_processes=False, environ=environ)
    cores = len(os.sched_getaffinity(0))
    assert environ.get("XLA_FLAGS") == (f"--xla_force_host_platform_device_count={cores}" if cores > 1 else None)


@pytest.mark.parametrize("environ, several", [
    ({"XLA_FLAGS": "--xla_force_host_platform_device_count=3", "FER_JAX_CPU_DEVICES": "8"}, False),  # the user's flag wins
    ({"FER_JAX_CPU_DEVICES": "1"}, False),  # one device, as before
    ({"FER_JAX_CPU_DEVICES": "8"}, True),  # several processes keep one device each
])
def test_configure_leaves_xla_flags_alone(environ, several):
    before = dict(environ)
    cpu_devices.configure(several_processes=several, environ=environ)
    assert environ == before


def _devices(processes: int, per_process: int):
    return [types.SimpleNamespace(process_index=p, id=p * per_process + i)
            for p in range(processes) for i in range(per_process)]


@pytest.mark.parametrize("per_process, batch_sizes, kept", [
    (2, (32, 64), 2),
    (4, (30, 64), 2),  # 30 = 2 x 15: two of the four cores
    (6, (32, 64), 4),
    (4, (7,), 1),
    (8, (32, 24), 8),
])
def test_mesh_takes_the_most_devices_every_batch_divides(per_process, batch_sizes, kept):
    chosen = sharding._devices_dividing(_devices(1, per_process), batch_sizes)
    assert [d.id for d in chosen] == list(range(kept))


def test_a_real_mesh_of_four_cpu_devices_shrinks_to_what_the_batch_divides():
    """In a process that has 4 CPU devices (as `fer-jax` makes on a 4-core machine), a batch of 10
    X; the sharded batch lands one share per device."""
    code = (
        "import json, numpy as np\n"
        "from fer_jax import sharding\n"
        "out = {}\n"
        "for b in (10, 8):\n"
        "    mesh = sharding.make_mesh(batch_sizes=(b,))\n"
        "    x = sharding.to_global({'x': np.arange(b)}, mesh)['x']\n"
        "    out[b] = [mesh.size, sorted(len(s.data) for s in x.addressable_shards)]\n"
        "print(json.dumps(out))\n"
    )
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"10": [2, [5, 5]], "8": [4, [2, 2, 2, 2]]}
