"""fer-jax export: the serialized model, loaded with nothing but JAX, equals the in-process model."""

import json

import jax
import numpy as np
import pytest

from fer_jax.cli import main
from fer_jax.errors import CheckpointError
from fer_jax.infer.export import load_exported
from fer_jax.infer.loader import load_model
from helpers.tolerance import rounding_tolerance

# float32 probabilities from the same program compiled separately, at other batch sizes (so other
# vectorisation, so other rounding): the tiny run's 3 convs (the widest over 3x3x3x8 = 216 terms),
# 2 ConvLSTM steps, the dense layer and the softmax, 7 layers. 2.4e-5.
TOL = rounding_tolerance(terms=3 * 3 * 3 * 8, layers=7)


def test_exported_model_equals_in_process_model_at_any_batch_size(tiny_run, tmp_path, capsys):
    artifact = tmp_path / "tiny.jaxexport"
    assert main(["export", "--checkpoint", tiny_run, "--out", str(artifact)]) == 0, capsys.readouterr().err
    meta = json.loads((tmp_path / "tiny.jaxexport.json").read_text())
    model = load_model(tiny_run)
    assert meta["clip"]["size"] == 16 and meta["clip"]["num_frames"] == 8 and meta["clip"]["need_audio"] is False
    assert meta["class_names"] == ["right", "down", "still"] and meta["inputs"]["frames"]["dtype"] == "uint8"
    assert meta["inputs"]["frames"]["shape"] == ["b", 8, 16, 16, 1]

    # Nothing of fer-jax: the bytes, jax.export, and record-shaped uint8 arrays.
    exported = jax.export.deserialize(bytearray(artifact.read_bytes()))
    rng = np.random.default_rng(0)
    clips = rng.integers(0, 256, (5, 8, 16, 16, 1), dtype=np.uint8)
    expected = model.predict([{"frames": c} for c in clips])
    assert np.ptp(expected, axis=0).max() > 1e-3  # different clips, different answers: not a constant
    for batch in (1, 3):  # one artifact for every batch size (each size compiles: keep them few)
        got = np.asarray(exported.call({"frames": clips[:batch]}))
        assert got.shape == (batch, 3)
        np.testing.assert_allclose(got, expected[:batch], atol=TOL, rtol=0)
    np.testing.assert_allclose(load_exported(artifact).predict([{"frames": c} for c in clips[:3]]), expected[:3],
                               atol=TOL)


def test_missing_or_damaged_artifact_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="missing"):
        load_exported(tmp_path / "nothing.jaxexport")
    bad = tmp_path / "bad.jaxexport"
    bad.write_bytes(b"\x00garbage" * 10)
    (tmp_path / "bad.jaxexport.json").write_text(json.dumps({"format": "fer-jax exported model 1"}))
    with pytest.raises(CheckpointError, match="not a readable jax.export artifact"):
        load_exported(bad)
