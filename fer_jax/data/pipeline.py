"""Input pipeline: array_record source -> grain (shuffle, per-process share, batch) -> global arrays.

The host only reads and batches uint8 frames; scaling and augmentation happen inside the jitted
step. Each process reads its own share of the records and the batches of all processes together
form one global array sharded over the mesh's `data` axis.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator

import grain
import jax
import numpy as np
import tensorflow_datasets as tfds
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from fer_jax.config import DataConfig
from fer_jax.errors import ConfigError

def open_source(config: DataConfig, split: str):
    """A random-access view of one split's array_record files (no TensorFlow involved)."""
    try:
        return tfds.data_source(config.dataset, split=split, data_dir=config.data_dir or None, download=False)
    except Exception as e:  # tfds raises several types for "not built" / "no such split"
        raise ConfigError(
            f"cannot open {config.dataset}[{split}] in {config.data_dir or 'the default TFDS data dir'}: {e}. "
            f"Build it first: fer-jax build {config.dataset.split('/')[0]}"
        ) from e


def check_source_matches(config: DataConfig, source, split: str, keys=("frames", "label")) -> None:
    """Catch a config that disagrees with the records (missing features, frame shape, class count)
    before anything is compiled."""
    features = source.dataset_info.features
    missing = [k for k in keys if k not in features]
    if missing:
        raise ConfigError(
            f"{config.dataset}[{split}]: the model reads {missing}, which these records do not have "
            f"(they have {sorted(features.keys())}); pick a builder config that stores them"
        )
    expected = (config.frames, config.size, config.size, config.channels)
    if "frames" in keys and tuple(features["frames"].shape) != expected:
        raise ConfigError(
            f"{config.dataset}[{split}]: records hold frames of shape {tuple(features['frames'].shape)}, "
            f"the config expects {expected} (data.frames, data.size, data.channels)"
        )
    if "label" in keys and features["label"].num_classes != config.num_classes:
        raise ConfigError(
            f"{config.dataset}[{split}]: records have {features['label'].num_classes} classes, "
            f"the config says data.num_classes={config.num_classes}"
        )


class _Select(grain.transforms.Map):
    """Keep the features a model and its task read; labels as int32, everything else as stored."""

    def __init__(self, keys):
        self.keys = tuple(keys)

    def map(self, example: dict) -> dict:
        return {k: np.asarray(example[k], np.int32) if k == "label" else np.asarray(example[k]) for k in self.keys}


def local_batch_size(global_batch_size: int) -> int:
    if global_batch_size % jax.process_count():
        raise ConfigError(f"batch size {global_batch_size} is not divisible by the {jax.process_count()} processes")
    return global_batch_size // jax.process_count()


class _ProcessShare(grain.MapDataset):
    """This process's rows of every global batch of `parent`, and nothing else is read.

    Local element j is global element (j // L) * G + p * L + j % L, for G the global batch size, L
    the local one and p the process index: the global batches are those of one process reading
    everything, so a run gives the same result on any number of hosts.
    """

    _MUTATES_ELEMENT_SPEC = False

    def __init__(self, parent: grain.MapDataset, global_batch: int, local_batch: int, process: int):
        super().__init__(parent)
        self.global_batch, self.local_batch, self.process = global_batch, local_batch, process
        self._length = len(parent) // global_batch * local_batch

    def __len__(self) -> int:
        return self._length

    def _parent_index(self, index: int) -> int:
        step, row = divmod(index, self.local_batch)
        return step * self.global_batch + self.process * self.local_batch + row

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.slice(index)
        return self._parent[self._parent_index(index)]

    def __str__(self) -> str:
        return f"ProcessShare(process={self.process}, rows {self.local_batch} of {self.global_batch})"


def train_iterator(source, config: DataConfig, num_epochs: int, keys) -> grain.DatasetIterator:
    """A checkpointable iterator of this process's local batches: a fresh shuffle every epoch.

    Every process shuffles the whole split with the same seed and reads only its rows of each
    global batch (see _ProcessShare)."""
    local = local_batch_size(config.global_batch_size)
    ds = grain.MapDataset.source(source)
    ds = ds.shuffle(seed=config.shuffle_seed).repeat(num_epochs)
    if jax.process_count() > 1:
        ds = _ProcessShare(ds, config.global_batch_size, local, jax.process_index())
    ds = ds.map(_Select(keys)).batch(local, drop_remainder=True)
    iter_ds = ds.to_iter_dataset()
    if config.worker_count > 0:
        iter_ds = iter_ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=config.worker_count))
    return iter(iter_ds)


@dataclasses.dataclass
class EvalBatch:
    batch: dict  # local arrays, padded to the full batch size
    mask: np.ndarray  # (B,) True for real examples


def eval_batches(source, config: DataConfig, keys) -> Iterator[EvalBatch]:
    """Every example of this process's share once, in order, padded to fixed-size batches so the
    eval step compiles once; padding is masked out of the metrics."""
    select = _Select(keys)
    ds = grain.MapDataset.source(source)[jax.process_index() :: jax.process_count()].map(select)
    size = local_batch_size(config.eval_batch_size)
    # Every process must run the same number of eval steps (collectives), so pad to the largest share.
    largest_share = -(-len(source) // jax.process_count())
    for start in range(0, largest_share, size):
        items = [ds[i] for i in range(start, min(start + size, len(ds)))]
        mask = np.zeros(size, bool)
        mask[: len(items)] = True
        filler = items[0] if items else select.map(source[0])
        items += [filler] * (size - len(items))
        yield EvalBatch({k: np.stack([it[k] for it in items]) for k in select.keys}, mask)


def make_mesh(devices=None) -> Mesh:
    """A 1-D mesh with a `data` axis over all devices of all processes (or the given ones)."""
    devices = np.asarray(jax.devices() if devices is None else devices)
    return Mesh(devices.reshape(-1), ("data",))


def to_global(batch: dict, mesh: Mesh) -> dict:
    """Local per-process arrays -> global arrays sharded along the batch axis over `data`."""
    sharding = NamedSharding(mesh, PartitionSpec("data"))
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), batch)


def to_host(x: jax.Array) -> np.ndarray:
    """A global array gathered onto every host as NumPy."""
    if jax.process_count() == 1:
        return np.asarray(jax.device_get(x))
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
