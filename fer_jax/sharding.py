"""The mesh and the moves between host and devices: one `data` axis over every device of every
process; local per-process batches in, global sharded arrays out, and back to NumPy on the hosts.

Each process reads its own share of the records (`fer_jax.data`); the batches of all processes
together form one global array split along the mesh's `data` axis.
"""

from __future__ import annotations

import collections
import json

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from fer_jax.errors import ConfigError


def make_mesh(devices=None, *, batch_sizes=()) -> Mesh:
    """A 1-D mesh with a `data` axis over all devices of all processes (or the given ones).

    On CPU, where the `fer-jax` command makes one device per core (`fer_jax.cpu_devices`), each
    process takes only as many of its devices as divide its share of every batch in `batch_sizes`
    (a batch of 30 on 4 cores runs on 2 of them), so a batch size never has to suit the machine.
    Elsewhere every device is used and a batch that does not divide fails as before.
    """
    if devices is None:
        devices = jax.devices()
        if batch_sizes and devices[0].platform == "cpu":
            devices = _devices_dividing(devices, batch_sizes)
    return Mesh(np.asarray(devices).reshape(-1), ("data",))


def _devices_dividing(devices, batch_sizes) -> list:
    """The first k devices of each process, k the most that divide every process's batch share."""
    shares = [local_batch_size(size) for size in batch_sizes]
    local = sum(d.process_index == devices[0].process_index for d in devices)
    per_process = max(k for k in range(1, local + 1) if all(share % k == 0 for share in shares))
    taken = collections.Counter()
    kept = []
    for device in devices:
        if taken[device.process_index] < per_process:
            taken[device.process_index] += 1
            kept.append(device)
    return kept


def local_batch_size(global_batch_size: int) -> int:
    """This process's rows of a global batch."""
    if global_batch_size % jax.process_count():
        raise ConfigError(f"batch size {global_batch_size} is not divisible by the {jax.process_count()} processes")
    return global_batch_size // jax.process_count()


def to_global(batch: dict, mesh: Mesh) -> dict:
    """Local per-process arrays -> global arrays sharded along the batch axis over `data`."""
    sharding = NamedSharding(mesh, PartitionSpec("data"))
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), batch)


def to_host(x: jax.Array) -> np.ndarray:
    """A global array gathered onto every host as NumPy."""
    if jax.process_count() == 1:
        return np.asarray(jax.device_get(x))
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


class DevicePrefetch:
    """Global batches already on the devices, `depth` ahead of the step that takes them, so copying
    a batch overlaps the steps before it (a step is dispatched asynchronously; its batch is waiting).

    For checkpoints it stands in for the grain iterator it wraps: its state is the position after
    the batches handed out, not after those read ahead, so a resumed run sees the same batches."""

    def __init__(self, iterator, mesh: Mesh, depth: int = 2):
        if depth < 1:
            raise ConfigError(f"data.device_prefetch must be >= 1, got {depth}")
        self._iterator, self._mesh, self._depth = iterator, mesh, depth
        self._ahead: collections.deque = collections.deque()
        self._state = iterator.get_state()

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        while len(self._ahead) < self._depth:
            try:
                batch = to_global(next(self._iterator), self._mesh)
            except StopIteration:
                break
            self._ahead.append((batch, self._iterator.get_state()))
        if not self._ahead:
            raise StopIteration
        batch, self._state = self._ahead.popleft()
        return batch

    # The interface grain's Orbax handler uses for iterators other than its own (JSON as bytes).
    def get_state(self) -> bytes:
        return json.dumps(self._state).encode()

    def set_state(self, state: bytes) -> None:
        self._ahead.clear()
        self._state = json.loads(state)
        self._iterator.set_state(self._state)

    def start_prefetch(self) -> None:
        if hasattr(self._iterator, "start_prefetch"):
            self._iterator.start_prefetch()

    def close(self) -> None:
        self._ahead.clear()
        if hasattr(self._iterator, "close"):
            self._iterator.close()
