"""fer-jax export --format onnx: onnxruntime gives the JAX model's outputs; the int8 variant runs;
predict runs the ONNX file through onnxruntime, with JAX not even importable."""

import json
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest

import predict_videos
from fer_jax.cli import main
from fer_jax.infer.loader import load_model
from fer_jax.infer.onnx_export import exportable_forward
from fer_jax.infer.onnx_model import load_onnx
from helpers.tolerance import rounding_tolerance

# float32 probabilities from two correct evaluations that sum in other orders (the 3D convolutions
# folded to 2D ones, onnxruntime's kernels): the tiny run's widest sum is 3x3x3x8 = 216 terms over
# 7 layers (3 convs, 2 ConvLSTM steps, dense, softmax); the mini-Xception's 3x3x128 = 1152 over
# about 20 (convolutions, separable convolutions, batch norms, the head).
TOL = {"tiny": rounding_tolerance(terms=3 * 3 * 3 * 8, layers=7),
       "fer2013": rounding_tolerance(terms=3 * 3 * 128, layers=20)}


def _clips(model, count: int, seed: int = 0) -> np.ndarray:
    shape, dtype = model.input_spec()["frames"]
    return np.random.default_rng(seed).integers(0, 256, (count, *shape), dtype=np.uint8)


@pytest.fixture(scope="module")
def runs(tiny_run, fer2013_run):
    return {"tiny": str(tiny_run), "fer2013": str(fer2013_run)}


@pytest.mark.parametrize("name", ["tiny", "fer2013"])
def test_onnxruntime_equals_jax(runs, name, tmp_path, capsys):
    out = tmp_path / f"{name}.onnx"
    code = main(["export", "--checkpoint", runs[name], "--out", str(out), "--format", "onnx", "--batch-size", "2",
                 "--int8"])
    assert code == 0, capsys.readouterr().err
    model = load_model(runs[name])
    clips = _clips(model, 4)
    expected = model.predict([{"frames": c} for c in clips])
    assert np.ptp(expected, axis=0).max() > 1e-3  # different clips, different answers: not a constant

    # The exportable re-run of the forward pass, in JAX, is the model's forward pass.
    fn, _ = exportable_forward(model, 2)
    np.testing.assert_allclose(np.asarray(fn(clips[:2])), expected[:2], atol=TOL[name], rtol=0)

    graph_ops = {node.op_type for node in onnx.load(str(out)).graph.node}
    assert "Conv" in graph_ops and not any("3D" in op for op in graph_ops)
    onnx_model = load_onnx(out)
    assert onnx_model.batch_size == 2 and onnx_model.class_names == model.class_names
    got = onnx_model.predict([{"frames": c} for c in clips[:3]])  # 3: two batches, the last padded
    np.testing.assert_allclose(got, expected[:3], atol=TOL[name], rtol=0)
    print(f"{name}: onnxruntime vs JAX max |difference| {np.abs(got - expected[:3]).max():.2e} (tol {TOL[name]:.1e})")

    int8 = tmp_path / f"{name}.int8.onnx"
    int8_ops = {node.op_type for node in onnx.load(str(int8)).graph.node}
    assert int8_ops & {"ConvInteger", "MatMulInteger", "DynamicQuantizeLinear"}, int8_ops  # really quantised
    quantised = load_onnx(int8).predict([{"frames": c} for c in clips])
    assert quantised.shape == expected.shape
    np.testing.assert_allclose(quantised.sum(axis=1), 1.0, atol=1e-5)
    assert json.loads((tmp_path / f"{name}.int8.onnx.json").read_text())["quantization"].startswith("int8")


def test_predict_runs_an_onnx_model_without_jax(tiny_run, tmp_path):
    """The timeline from the ONNX file equals the checkpoint's; then again in a process where JAX,
    Flax and the training stack cannot be imported."""
    out = tmp_path / "tiny.onnx"
    assert main(["export", "--checkpoint", str(tiny_run), "--out", str(out), "--format", "onnx",
                 "--batch-size", "4"]) == 0
    video = predict_videos.astronaut_video(tmp_path / "clip.mp4", seconds=2, fps=10)
    assert main(["predict", video, "--checkpoint", str(tiny_run), "--out", str(tmp_path / "jax.json")]) == 0
    assert main(["predict", video, "--checkpoint", str(out), "--out", str(tmp_path / "onnx.json")]) == 0
    expected = json.loads((tmp_path / "jax.json").read_text())
    got = json.loads((tmp_path / "onnx.json").read_text())
    assert got["model"] == expected["model"] and len(got["windows"]) == len(expected["windows"]) > 0
    for g, e in zip(got["windows"], expected["windows"]):
        for name, p in e["probabilities"].items():
            assert g["probabilities"][name] == pytest.approx(p, abs=TOL["tiny"] + 1e-6)  # (JSON rounds to 1e-6)

    child = (
        "import sys, json\n"
        "for m in ('jax', 'jaxlib', 'flax', 'optax', 'orbax', 'tensorflow', 'tensorflow_datasets', 'grain'):\n"
        "    sys.modules[m] = None  # importing any of them now fails\n"
        "from fer_jax.infer.cli import cmd_predict\n"
        "from fer_jax.infer.cli import add_commands\n"
        "import argparse\n"
        "p = argparse.ArgumentParser(); add_commands(p.add_subparsers())\n"
        "args = p.parse_args(['predict', sys.argv[1], '--checkpoint', sys.argv[2], '--out', sys.argv[3]])\n"
        "sys.exit(cmd_predict(args))\n")
    done = subprocess.run([sys.executable, "-c", child, video, str(out), str(tmp_path / "nojax.json")],
                          capture_output=True, text=True, env=os.environ.copy(), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((tmp_path / "nojax.json").read_text())["windows"] == got["windows"]
