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


def make_mesh(devices=None) -> Mesh:
    """A 1-D mesh with a `data` axis over all devices of all processes (or the given ones)."""
    devices = np.asarray(jax.devices() if devices is None else devices)
    return Mesh(devices.reshape(-1), ("data",))


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
