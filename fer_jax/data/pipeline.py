"""Input pipeline: array_record records -> whole uint8 batches (grain) -> global arrays.

The host only reads and batches uint8 frames; scaling and augmentation happen inside the jitted
step. Each process reads its own share of the records and the batches of all processes together
form one global array sharded over the mesh's `data` axis.
"""

from __future__ import annotations

import collections
import dataclasses
import json
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


class RecordDecoder:
    """Serialized records -> the selected features as NumPy (labels as int32), nothing else parsed.

    tfds's own decoding converts every feature of a record, a Python call or more per value; a model
    reads only some (a 3D-CNN has no use for the log-mel an audio-visual record also holds). Here
    the record's protobuf is parsed once, arrays stored as raw bytes (fer_jax.data.record_features)
    come out through np.frombuffer, integer scalars (labels) directly, and any other feature through
    tfds's own decoder."""

    def __init__(self, features, keys):
        from tensorflow_datasets.core import example_parser
        from tensorflow_datasets.proto import tf_example_pb2

        self._features, self.keys = features, tuple(keys)
        self._parse = tf_example_pb2.Example.FromString
        specs = features.get_serialized_info()
        self._readers, others = {}, {}
        for k in self.keys:
            feature, spec = features[k], specs[k]
            if getattr(feature, "_encoding", None) == tfds.features.Encoding.BYTES:
                self._readers[k] = self._bytes_reader(k, np.dtype(feature.np_dtype), feature.shape)
            elif spec.shape == () and np.issubdtype(spec.np_dtype, np.integer):
                self._readers[k] = lambda example, k=k: np.int64(example.features.feature[k].int64_list.value[0])
            else:
                others[k] = spec
        # The rest (value lists: booleans, variable shapes) in one tfds parse of the same record.
        self._others = example_parser.ExampleParserNp(others) if others else None
        self._dtypes = {k: np.int32 if k == "label" else None for k in self.keys}

    def __reduce__(self):  # to grain's worker processes: rebuilt there (protobuf classes do not pickle)
        return RecordDecoder, (self._features, self.keys)

    @staticmethod
    def _bytes_reader(key, dtype, shape):
        def read(example):
            return np.frombuffer(example.features.feature[key].bytes_list.value[0], dtype).reshape(shape)
        return read

    def __call__(self, serialized: bytes) -> dict:
        example = self._parse(serialized)
        values = {k: read(example) for k, read in self._readers.items()}
        if self._others is not None:
            parsed = self._others.parse_example(serialized)
            values.update({k: self._features[k].decode_example_np(parsed[k]) for k in self._others.example_specs})
        return {k: np.asarray(values[k], self._dtypes[k]) for k in self.keys}

    def batch(self, records) -> dict:
        examples = [self(r) for r in records]
        return {k: np.stack([e[k] for e in examples]) for k in self.keys}


def read_records(source, indices) -> list:
    """The serialized records at `indices`, in one call to array_record (which reads them in
    parallel) where the source is tfds's array_record source."""
    raw = getattr(source, "data_source", None)
    if raw is None or not hasattr(raw, "__getitems__"):
        raise ConfigError(f"{source!r}: expected a tfds.data_source over array_record files")
    return raw.__getitems__([int(i) for i in indices])


def local_batch_size(global_batch_size: int) -> int:
    if global_batch_size % jax.process_count():
        raise ConfigError(f"batch size {global_batch_size} is not divisible by the {jax.process_count()} processes")
    return global_batch_size // jax.process_count()


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


@dataclasses.dataclass
class EvalBatch:
    batch: dict  # local arrays, padded to the full batch size
    mask: np.ndarray  # (B,) True for real examples


def eval_batches(source, config: DataConfig, keys) -> Iterator[EvalBatch]:
    """Every example of this process's share once, in order, padded to fixed-size batches so the
    eval step compiles once; padding is masked out of the metrics."""
    decode = RecordDecoder(source.dataset_info.features, keys)
    share = np.arange(len(source))[jax.process_index() :: jax.process_count()]
    size = local_batch_size(config.eval_batch_size)
    # Every process must run the same number of eval steps (collectives), so pad to the largest share.
    largest_share = -(-len(source) // jax.process_count())
    for start in range(0, largest_share, size):
        indices = share[start : start + size]
        mask = np.zeros(size, bool)
        mask[: len(indices)] = True
        # Padding repeats a real record (the first of the share, or of the split for an empty share).
        filler = indices[:1] if len(indices) else share[:1] if len(share) else np.zeros(1, int)
        indices = np.concatenate([indices, np.repeat(filler, size - len(indices))])
        yield EvalBatch(decode.batch(read_records(source, indices)), mask)


def make_mesh(devices=None) -> Mesh:
    """A 1-D mesh with a `data` axis over all devices of all processes (or the given ones)."""
    devices = np.asarray(jax.devices() if devices is None else devices)
    return Mesh(devices.reshape(-1), ("data",))


def to_global(batch: dict, mesh: Mesh) -> dict:
    """Local per-process arrays -> global arrays sharded along the batch axis over `data`."""
    sharding = NamedSharding(mesh, PartitionSpec("data"))
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), batch)


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


def to_host(x: jax.Array) -> np.ndarray:
    """A global array gathered onto every host as NumPy."""
    if jax.process_count() == 1:
        return np.asarray(jax.device_get(x))
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
