"""Evaluation batches: every example of this process's share once, in order, in padded batches."""

from __future__ import annotations

import dataclasses
from typing import Iterator

import jax
import numpy as np

from fer_jax.config import DataConfig
from fer_jax.data.decoding import RecordDecoder, read_records
from fer_jax.sharding import local_batch_size


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
