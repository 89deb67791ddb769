"""How records store arrays: shared by the corpus builders and the synthetic bench corpus."""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds


def array_feature(shape: tuple[int, ...], dtype) -> tfds.features.FeatureConnector:
    """The feature of one array: raw bytes in the record, so reading is one np.frombuffer.
    (TFDS's default stores an array as a protobuf list of int64 or float values, which reads about
    a value at a time: 1.6 ms for one 8x64x64 clip, the input pipeline's largest cost.) Shapes with
    a None and booleans (TensorFlow's decode_raw, which `tfds build` uses, has no bool) keep the
    default list encoding; () is a Scalar."""
    if shape == ():
        return tfds.features.Scalar(dtype=dtype)
    as_bytes = None not in shape and np.dtype(dtype) != np.bool_
    return tfds.features.Tensor(shape=shape, dtype=dtype, encoding="bytes" if as_bytes else "none")
