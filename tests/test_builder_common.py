"""data_builders.common and data_builders.base: record features follow the ClipConfig, builders
attach extra fields, and the build report counts skips and throughput. A tiny corpus of
image-sequence, in-memory and broken clips is built by a `ClipCorpusBuilder` (TFDS running its Beam
pipeline on the DirectRunner) into array_record files and read back."""

import cv2
import numpy as np
import pytest
import skimage.data
import tensorflow_datasets as tfds

from data_builders import common
from fer_jax.errors import FerJaxError
from fer_jax.preprocess import clip
from helpers.tiny_faces import CLASSES, CONFIG, TinyFaces

def _face_frames(num):
    image = skimage.data.astronaut()
    return np.stack([image[22 + 2 * i : 182 + 2 * i, 124 + 2 * i : 284 + 2 * i] for i in range(num)])


def _items(folder):
    """A 4-frame folder clip, an 8-frame in-memory clip, a faceless folder and a missing one."""
    faces = folder / "s1" / "seq"
    faces.mkdir(parents=True)
    for i, frame in enumerate(_face_frames(4)):
        cv2.imwrite(str(faces / f"{i}.png"), frame[..., ::-1])
    blank = folder / "s2" / "blank"
    blank.mkdir(parents=True)
    for i in range(3):
        cv2.imwrite(str(blank / f"{i}.png"), np.full((80, 80, 3), 90, np.uint8))
    def extra(apex, valence):
        return {"apex": apex, "valence": np.asarray(valence, np.float32)}

    return [
        common.ClipItem("seq", str(faces), 0, "s1", extra=extra(2, [0.1, 0.3, 0.2])),
        common.ClipItem("mem", "train.csv:row 7", 1, "s3", frames=_face_frames(8), extra=extra(5, [])),
        common.ClipItem("blank", str(blank), 0, "s2", extra=extra(0, [0.0])),
        common.ClipItem("gone", str(folder / "gone.mp4"), 1, "s4", extra=extra(0, [0.0])),
    ]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    TinyFaces.ITEMS = {"train": _items(tmp_path_factory.mktemp("raw"))}
    builder = TinyFaces(data_dir=str(tmp_path_factory.mktemp("tfds")))
    builder.download_and_prepare()
    return builder


def test_records_hold_every_enabled_output_and_the_extras(built):
    source = built.as_data_source()["train"]
    records = {r["clip_id"].decode() if isinstance(r["clip_id"], bytes) else r["clip_id"]: r for r in source}
    assert sorted(records) == ["mem", "seq"]
    seq, mem = records["seq"], records["mem"]
    assert seq["frames"].shape == (6, 32, 32, 1) and seq["frames"].dtype == np.uint8
    assert seq["frame_mask"].dtype == bool and seq["frame_mask"].tolist() == [True] * 4 + [False] * 2
    assert seq["frame_indices"].tolist() == [0, 1, 2, 3, -1, -1]
    assert mem["frame_indices"].tolist() == [0, 1, 3, 4, 6, 7]  # 8 frames evenly subsampled to 6
    assert seq["lemhi"].shape == (32, 32, 1) and seq["lemhi"].dtype == np.uint8
    assert seq["landmarks"].dtype == np.float32 and np.isfinite(seq["landmarks"]).all()
    assert (seq["label"], mem["label"]) == (0, 1) and seq["subject"] in (b"s1", "s1")
    assert (seq["apex"], mem["apex"]) == (2, 5)
    np.testing.assert_array_equal(seq["valence"], np.array([0.1, 0.3, 0.2], np.float32))
    assert mem["valence"].shape == (0,)
    # The stored clip is what process_clip gives for that folder.
    direct = clip.process_clip(str(TinyFaces.ITEMS["train"][0].path), CONFIG)
    np.testing.assert_array_equal(seq["frames"], direct["frames"])
    np.testing.assert_array_equal(seq["lemhi"], direct["lemhi"])


def test_report_counts_skips_and_throughput(built):
    report = built.report.to_dict()
    assert report["kept"] == {"train": 2}
    assert report["skipped_by_reason"] == {"no_face": 1, "missing": 1}
    assert {s["path"].rsplit("/", 1)[-1] for s in report["skipped_files"]} == {"blank", "gone.mp4"}
    assert report["source_frames"] == {"train": 4 + 8}  # kept clips' frames
    assert report["runner"] == "DirectRunner" and report["workers"] == 1  # 4 clips: no worker processes
    # 12 frames over the wall time of the one process (TFDS's writing included): positive and finite;
    # the rate inside the preprocessing is higher.
    assert 0 < report["frames_per_second_per_core"] == pytest.approx(12 / report["wall_seconds"], rel=0.01)
    assert report["frames_per_clip_second"] > report["frames_per_second_per_core"]
    assert json_report(built) == report  # build_report.json beside the records says the same


def json_report(builder) -> dict:
    import json
    import pathlib

    return json.loads((pathlib.Path(builder.data_dir) / "build_report.json").read_text())


def test_a_split_whose_every_clip_is_skipped_stops_the_build(tmp_path):
    """TFDS cannot write an empty split: the build stops, naming the split and the reasons."""
    good, *_, gone = _items(tmp_path / "raw")
    lost = common.ClipItem("lost", str(tmp_path / "lost.mp4"), 0, "s5")
    TinyFaces.ITEMS = {"train": [good], "validation": [gone, lost]}
    builder = TinyFaces(data_dir=str(tmp_path / "tfds"))
    with pytest.raises(FerJaxError, match=r"split validation: every clip was skipped \(\{'missing': 2\}\)"):
        builder.download_and_prepare()
    TinyFaces.ITEMS = {"train": [good, good]}
    with pytest.raises(ValueError, match="'seq' appears twice in split train"):
        TinyFaces(data_dir=str(tmp_path / "tfds2")).download_and_prepare()


def test_default_features_are_the_original_layout():
    """The layout of version 1.0.0, but with fixed-shape arrays stored as raw bytes (1.1.0)."""
    features = common.clip_features(clip.ClipConfig(), ["a", "b"])
    original = tfds.features.FeaturesDict(
        {
            "frames": tfds.features.Tensor(shape=(8, 64, 64, 1), dtype=np.uint8, encoding="bytes"),
            "landmarks": tfds.features.Tensor(shape=(8, 68, 2), dtype=np.float32, encoding="bytes"),
            "label": tfds.features.ClassLabel(names=["a", "b"]),
            "subject": tfds.features.Text(),
            "clip_id": tfds.features.Text(),
            "log_mel": tfds.features.Tensor(shape=(200, 64), dtype=np.float32, encoding="bytes"),
            "audio_frames": tfds.features.Scalar(dtype=np.int32),
        }
    )
    assert features.to_json_content() == original.to_json_content()
    assert "label" not in common.clip_features(clip.ClipConfig(), None)  # corpora without classes


def test_audio_features_encode_as_declared(tmp_path):
    from test_preprocess_video import _write  # an H.264/AAC MP4 of the astronaut over two tones

    config = clip.ClipConfig(num_frames=3, audio_features=clip.AUDIO_FEATURES, store_frame_indices=True)
    item = common.ClipItem("a", str(_write(tmp_path / "a.mp4")), None, "s9")
    _, example, error, source_frames = common.preprocess_item(item, config)
    assert error is None and source_frames == 20 and "label" not in example
    features = common.clip_features(config, None)
    assert set(example) == set(features)
    encoded = features.encode_example(example)  # raises on any shape or dtype mismatch
    assert set(encoded) == set(example)
    assert example["log_mel_deltas"].shape == (200, 64, 3) and example["waveform_image"].shape == (256, 256, 1)


def test_extras_may_not_reuse_record_fields():
    with pytest.raises(ValueError, match="frame_mask"):
        common.ClipItem("k", "p", 0, "s", extra={"frame_mask": 1})
    with pytest.raises(ValueError, match="label"):
        common.ClipItem("k", "p", 0, "s", extra={"label": 1})
    with pytest.raises(ValueError, match="lemhi"):
        common.clip_features(clip.ClipConfig(), CLASSES, extra_features={"lemhi": tfds.features.Scalar(dtype=np.int32)})
    item = common.ClipItem("k", ["b.png", "a.png"], 0, "s")
    assert item.path == ("b.png", "a.png") and hash(item)  # lists become tuples: items stay hashable
