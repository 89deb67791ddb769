"""Training batches: whole uint8 batches of this process's rows, epoch after epoch, checkpointable.

The host only reads and batches uint8 frames; scaling and augmentation happen inside the jitted
step (`fer_jax.sharding` moves the batches onto the devices).
"""

from __future__ import annotations

import grain
import jax
import numpy as np

from fer_jax.config import DataConfig
from fer_jax.data.decoding import RecordDecoder, read_records
from fer_jax.errors import ConfigError
from fer_jax.sharding import local_batch_size


class TrainBatches(grain.MapDataset):
    """Batch i of training, as this process's rows: one random-access dataset of whole batches.

    The records are streamed epoch after epoch, each epoch in a fresh order (a NumPy permutation
    seeded by (seed, epoch)), and cut into global batches of G records, a batch crossing an epoch
    boundary where it falls; the remainder of the last epoch is dropped. Process p reads only rows
    p*L .. (p+1)*L - 1 of each global batch (L = G / processes), so the global batches are those of
    one process reading everything and a run gives the same result on any number of hosts.

    A batch is read in one array_record call and decoded by RecordDecoder, which is why this is one
    dataset rather than grain's shuffle / map / batch chain: that chain costs a Python call per
    record per stage (about 0.2 ms a record, the pipeline's ceiling), this one a few per batch.
    Being a MapDataset, it keeps grain's checkpointable iterator state and its worker processes.
    """

    def __init__(self, source, keys, *, global_batch: int, local_batch: int, process: int, num_epochs: int,
                 seed: int):
        super().__init__()
        self._source, self._decode = source, RecordDecoder(source.dataset_info.features, keys)
        self._records = len(source)
        self.global_batch, self.local_batch, self.process = global_batch, local_batch, process
        self._seed, self._length = seed, self._records * num_epochs // global_batch
        self._order = (-1, None)  # (epoch, its permutation), the last one used

    def __len__(self) -> int:
        return self._length

    def __str__(self) -> str:
        return f"TrainBatches(process={self.process}, rows {self.local_batch} of {self.global_batch})"

    def _epoch_order(self, epoch: int) -> np.ndarray:
        order = self._order  # read once: grain's reading threads call this concurrently
        if order[0] != epoch:
            order = (epoch, np.random.default_rng([self._seed, epoch]).permutation(self._records))
            self._order = order
        return order[1]

    def record_indices(self, index: int) -> np.ndarray:
        """Which records batch `index` holds, for this process, in order."""
        start = index * self.global_batch + self.process * self.local_batch
        epochs, within = np.divmod(np.arange(start, start + self.local_batch), self._records)
        return np.concatenate([self._epoch_order(e)[within[epochs == e]] for e in np.unique(epochs)])

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.slice(index)
        return self._decode.batch(read_records(self._source, self.record_indices(index)))


def train_iterator(source, config: DataConfig, num_epochs: int, keys) -> grain.DatasetIterator:
    """A checkpointable iterator of this process's local batches (see TrainBatches), read by
    `config.worker_count` worker processes (0: in this process), each with `config.read_threads`
    threads keeping up to `config.prefetch_batches` batches ready."""
    ds = TrainBatches(source, keys, global_batch=config.global_batch_size,
                      local_batch=local_batch_size(config.global_batch_size), process=jax.process_index(),
                      num_epochs=num_epochs, seed=config.shuffle_seed)
    if config.read_threads < 1 or config.prefetch_batches < 1:
        raise ConfigError(f"data.read_threads and data.prefetch_batches must be >= 1, "
                          f"got {config.read_threads} and {config.prefetch_batches}")
    iter_ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=config.read_threads,
                                                   prefetch_buffer_size=config.prefetch_batches))
    if config.worker_count > 0:
        _absl_flags_parsed()
        iter_ds = iter_ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=config.worker_count))
    return iter(iter_ds)


def _absl_flags_parsed() -> None:
    """Grain's worker processes read absl flags, which only an absl app parses; elsewhere (our CLI,
    notebooks, tests) mark them parsed so each keeps its default instead of raising."""
    from absl import flags

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
