"""The input pipeline's own pieces: opening a split for a model, the lean record decoder against
tfds's decoding, worker processes against in-process reading, and device prefetch against
checkpoint/resume."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from jax.sharding import PartitionSpec

from fer_jax.config import DataConfig
from fer_jax.data.decoding import RecordDecoder
from fer_jax.data.record_features import array_feature
from fer_jax.data.sources import RecordKeys, open_source, open_split
from fer_jax.data.train_batches import train_iterator
from fer_jax.errors import ConfigError
from fer_jax.sharding import DevicePrefetch, make_mesh


@pytest.fixture(scope="module")
def config(tiny_dataset):
    data_dir, name = tiny_dataset
    return DataConfig(dataset=name, data_dir=data_dir, num_classes=3, frames=8, size=16, global_batch_size=8)


def _batches(iterator, n):
    return [next(iterator) for _ in range(n)]


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(np.asarray(a[key]), np.asarray(b[key]))


def test_open_split_carries_what_the_model_reads_and_refuses_what_the_records_lack(config):
    # The tiny corpus has frames and label, no frame_mask and no log_mel.
    split = open_split(config, "train", RecordKeys(("frames",), optional=("frame_mask",), targets=("label",)))
    assert (split.name, split.keys, len(split)) == ("train", ("frames", "label"), len(open_source(config, "train")))
    with pytest.raises(ConfigError, match=r"tiny_clips\[train\]: the model reads \['log_mel'\]"):
        open_split(config, "train", RecordKeys(("frames", "log_mel"), targets=("label",)))


def test_decoder_equals_tfds_decoding_for_bytes_list_and_scalar_features():
    features = tfds.features.FeaturesDict({
        "frames": array_feature((2, 3, 4, 1), np.uint8),  # raw bytes
        "log_mel": array_feature((5, 3), np.float32),  # raw bytes
        "mask": array_feature((2,), np.bool_),  # a protobuf list
        "label": tfds.features.ClassLabel(num_classes=4),
        "clip_id": tfds.features.Text(),
    })
    rng = np.random.default_rng(0)
    example = {"frames": rng.integers(0, 256, (2, 3, 4, 1), np.uint8), "log_mel": rng.normal(size=(5, 3)).astype(np.float32),
               "mask": np.array([True, False]), "label": 3, "clip_id": "a/b"}
    record = features.serialize_example(example)
    expected = features.deserialize_example_np(record)
    keys = ("frames", "log_mel", "mask", "label")
    decoded = RecordDecoder(features, keys)(record)
    assert list(decoded) == list(keys)
    for key in ("frames", "log_mel", "mask"):
        np.testing.assert_array_equal(decoded[key], expected[key])
        assert decoded[key].dtype == expected[key].dtype
    assert decoded["label"] == 3 and decoded["label"].dtype == np.int32


def test_worker_processes_read_the_same_batches_as_the_main_process(config):
    import dataclasses

    source = open_source(config, "train")
    keys = ("frames", "label")
    alone = _batches(train_iterator(source, config, 2, keys), 5)
    workers = train_iterator(source, dataclasses.replace(config, worker_count=1), 2, keys)
    for a, b in zip(alone, _batches(workers, 5)):
        _assert_same(a, b)
    workers.close()


def test_device_prefetch_checkpoints_the_batches_handed_out_not_those_read_ahead(config):
    source = open_source(config, "train")
    mesh = make_mesh()
    keys = ("frames", "label")

    def fresh():
        return DevicePrefetch(train_iterator(source, config, 2, keys), mesh, depth=3)

    reference = _batches(fresh(), 7)
    prefetch = fresh()
    _batches(prefetch, 4)  # 6 read (3 ahead), 4 handed out
    state = prefetch.get_state()
    resumed = fresh()
    resumed.set_state(state)
    for expected, got in zip(reference[4:], _batches(resumed, 3)):
        _assert_same(expected, got)
        assert got["frames"].sharding.spec == PartitionSpec("data")  # global, split over the mesh
