"""Serialized records -> NumPy arrays of the features a model reads."""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from fer_jax.errors import ConfigError


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
