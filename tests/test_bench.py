"""`fer-jax bench`: the analytic FLOP counter against independent counts, and the bench itself
running for every model family at tiny sizes with a complete, finite report."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from fer_jax.bench import flops
from fer_jax.bench.bench import BenchConfig, run_bench
from fer_jax.bench.synthetic import RecordShape
from fer_jax.models.recurrent import BLSTM


def _rngs():
    # rbg keys: threefry initialisers compile slowly on small CPUs; the draws are not under test.
    return nnx.Rngs(jax.random.key(0, impl="rbg"))


def _xla(fn, *args):
    return flops.xla_flops(jax.jit(fn).lower(*args).compile())


def test_conv3d_flops_equal_the_shape_formula_and_xla():
    b, t, h, w, cin, cout, k = 2, 6, 10, 9, 3, 5, (3, 2, 3)
    conv = nnx.Conv(cin, cout, k, padding="VALID", use_bias=False, rngs=_rngs())
    x = jnp.ones((b, t, h, w, cin))
    # Independent count: output positions x kernel taps x input channels, one multiply + one add each.
    out_positions = b * (t - k[0] + 1) * (h - k[1] + 1) * (w - k[2] + 1)
    expected = 2 * out_positions * cout * math.prod(k) * cin
    assert flops.count_flops(lambda x: conv(x), x) == expected
    assert _xla(lambda x: conv(x), x) == pytest.approx(expected, rel=1e-6)


def test_dense_flops_forward_and_backward():
    b, d_in, d_out = 4, 32, 16
    w, x = jnp.ones((d_in, d_out)), jnp.ones((b, d_in))
    assert flops.count_flops(lambda w, x: x @ w, w, x) == 2 * b * d_in * d_out
    assert _xla(lambda w, x: x @ w, w, x) == pytest.approx(2 * b * d_in * d_out, rel=1e-6)
    # Gradient w.r.t. the weights only: the forward matmul plus one for dW (no dx is needed).
    grad = jax.grad(lambda w, x: (x @ w).sum())
    assert flops.count_flops(grad, w, x) == 2 * (2 * b * d_in * d_out)


@pytest.fixture(scope="module")
def blstm_case():
    b, t, d, h = 2, 6, 64, 32
    x = jnp.asarray(np.random.default_rng(0).normal(size=(b, t, d)), jnp.float32)
    # Per direction and step: x @ W_ih^T (D -> 4H) and h @ W_hh^T (H -> 4H), 2 FLOPs per MAC.
    expected = 2 * (2 * b * t * d * 4 * h + 2 * b * t * h * 4 * h)
    models = {unroll: BLSTM(d, h, unroll=unroll, rngs=_rngs()) for unroll in (1, t)}
    return x, expected, models


def test_lstm_flops_count_every_scan_step(blstm_case):
    x, expected, models = blstm_case
    for model in models.values():
        assert flops.count_flops(lambda x, m=model: m(x)[0], x) == expected


def test_lstm_flops_agree_with_xla_on_the_unrolled_variant(blstm_case):
    x, expected, models = blstm_case
    t = x.shape[1]
    b, _, _ = x.shape
    h = models[t].hidden
    unrolled = _xla(lambda x: models[t](x)[0], x)
    # Unrolled, XLA sees every step; it also counts the gate arithmetic (a few %), and folds away
    # the first step's recurrent matmuls (the state starts at zero), which we count.
    first_step_recurrent = 2 * (2 * b * h * 4 * h)
    assert expected - first_step_recurrent <= unrolled <= 1.1 * expected
    # With a rolled scan it counts the body once, missing most recurrent matmuls: the reason MFU
    # uses our count, not XLA's.
    recurrent = 2 * (2 * b * t * h * 4 * h)
    assert _xla(lambda x: models[1](x)[0], x) < expected - recurrent / 2


TINY = RecordShape(frames=4, size=16, channels=1, audio_frames=16, mel_bins=8, num_classes=3)
TINY_C3D = {"conv_blocks": [[4], [8]], "pool_windows": [[1, 2, 2], [2, 2, 2]], "fc_features": [16]}
# msff_c3d runs through the command line below, on the tiny built corpus.
FAMILIES = {
    "cnn3d_convlstm": ({"conv_features": [4, 8, 8], "convlstm_filters": 4,
                        "pool_windows": [[1, 2, 2], [2, 2, 2], [1, 2, 2]]}, TINY),
    "msff_cnn_blstm": ({"backbone": "resnet18", "backbone_options": {"width": 0.0625}, "lstm_hidden": 8},
                       RecordShape(frames=4, size=32, channels=3, num_classes=3)),
    "av_attention_fbp": ({"frame_backbone_kwargs": {"blocks": [[4], [8]]}, "audio_blocks": [[4], [8]],
                          "attention_rank": 4, "fusion_kwargs": {"out_dim": 8, "factor": 2}}, TINY),
}
KEYS = ("clips_per_second", "step_ms_median", "compile_seconds", "flops_per_clip", "mfu",
        "input_clips_per_second")
# Compile-time savers only (what is timed is not under test): rbg keys for the initialisers, and
# XLA's backend optimisation off for the step.
FAST_COMPILE = {"xla_backend_optimization_level": 0}


def check_report(report):
    for key in KEYS:
        assert np.isfinite(report[key]) and report[key] > 0, (key, report[key])
    # Memory side of the roofline: bytes over the median step time, over the peak.
    step_seconds = report["step_ms_median"] / 1e3
    assert report["achieved_bandwidth_gbps"] == pytest.approx(report["bytes_accessed_per_step"] / step_seconds / 1e9)
    assert report["bandwidth_fraction"] == pytest.approx(report["achieved_bandwidth_gbps"] / report["peak_bandwidth_gbps"])
    # The Adam update alone reads and writes each float32 parameter and its two moments.
    assert report["bytes_accessed_per_step"] >= 2 * 3 * 4 * report["parameters"]
    assert report["device_count"] >= 1 and report["device_kind"]
    assert report["mfu"] == pytest.approx(report["achieved_tflops"] / report["peak_tflops"])
    assert report["input_bound"] == (report["input_clips_per_second"] < report["clips_per_second"])
    assert report["memory"]["temp_size_in_bytes"] > 0  # the AOT executable's memory analysis
    # The counted step (forward + backward) costs between 2x and 4x the forward pass.
    assert 2 <= report["flops_per_clip"] / report["forward_flops_per_clip"] <= 4


@pytest.mark.parametrize("model", sorted(FAMILIES))
def test_bench_runs_for_every_model_family(model):
    kwargs, shape = FAMILIES[model]
    # The tests' process has 4 CPU devices (conftest). A batch of 6 runs on the 3 of them it
    # divides, as the `fer-jax` command's one device per core would (fer_jax/sharding.make_mesh).
    batch, devices = (6, 3) if model == "cnn3d_convlstm" else (4, 4)
    assert jax.device_count() == 4
    with jax.default_prng_impl("rbg"):
        report = run_bench(BenchConfig(model=model, batch=batch, steps=2, shape=shape, model_kwargs=kwargs,
                                       input_batches=2, peak_tflops=1.0, peak_tbps=0.5, compiler_options=FAST_COMPILE))
    check_report(report)
    assert report["device_count"] == devices
    assert report["peak_tflops"] == pytest.approx(devices)  # the override, per device
    assert report["peak_bandwidth_gbps"] == pytest.approx(500 * devices)
    assert report["records"] == "synthetic"


def test_bench_cli_writes_json_from_a_built_corpus(tiny_dataset, tmp_path, capsys):
    from fer_jax.cli import main

    data_dir, name = tiny_dataset
    out = tmp_path / "bench.json"
    argv = ["bench", "--model", "msff_c3d", "--batch", "8", "--steps", "2", "--frames", "8", "--size", "16",
            "--num-classes", "3", "--data-dir", data_dir, "--dataset", name, "--model-kwargs", json.dumps(TINY_C3D),
            "--json", str(out)]
    with jax.default_prng_impl("rbg"):
        assert main(argv) == 0
    report = json.loads(out.read_text())
    check_report(report)
    assert report["records"] == f"{name}[train]"
    assert report["peak_source"].startswith("measured")  # CPU: no data-sheet peak
    assert report["peak_bandwidth_source"].startswith("measured")
    assert "input-bound" in capsys.readouterr().out


def test_bytes_accessed_count_operands_read_and_outputs_written():
    m, k, n = 256, 128, 64
    a, b = jnp.ones((m, k)), jnp.ones((k, n))
    compiled = jax.jit(lambda a, b: a @ b).lower(a, b).compile()
    assert flops.xla_bytes_accessed(compiled) == 4 * (m * k + k * n + m * n)
    x = jnp.ones((1 << 16,))
    compiled = jax.jit(lambda x: x + 1.0).lower(x).compile()
    assert flops.xla_bytes_accessed(compiled) == 2 * x.nbytes  # one read, one write


def test_data_sheet_bandwidths_by_device_kind():
    from fer_jax.bench import peaks

    expected = {"NVIDIA H100 80GB HBM3": 3.35, "NVIDIA H200": 4.8, "NVIDIA H100 PCIe": 2.0,
                "NVIDIA A100-SXM4-80GB": 2.039, "NVIDIA A100-SXM4-40GB": 1.555, "NVIDIA GH200 480GB": 4.0}
    for kind, tbps in expected.items():
        assert peaks.known_bandwidth(kind) == pytest.approx(tbps * 1e12), kind
    assert peaks.known_bandwidth("cpu") is None


def test_measured_cpu_bandwidth_counts_a_read_and_a_write(monkeypatch):
    import itertools
    import types

    from fer_jax.bench import peaks

    # A memory speed (100 MB/s on a loaded shared machine .. 10 TB/s): catches a unit slip.
    assert 1e8 <= peaks.measured_copy_bandwidth(mib=64, repeats=2) <= 1e13
    # With a clock that makes every pass take 0.5 s: 64 MiB read + 64 MiB written per pass.
    ticks = itertools.count(step=0.5)
    monkeypatch.setattr(peaks, "time", types.SimpleNamespace(perf_counter=lambda: next(ticks)))
    assert peaks.measured_copy_bandwidth(mib=64, repeats=2) == 2 * 64 * 2**20 / 0.5


def test_bench_against_torch_reports_the_ratio_to_the_better_peer(capsys, tmp_path):
    """`--against torch` end to end: the same model and batch timed in PyTorch, eager and compiled."""
    pytest.importorskip("torch")
    from fer_jax.cli import main

    kwargs, shape = FAMILIES["cnn3d_convlstm"]
    out = tmp_path / "bench.json"
    argv = ["bench", "--model", "cnn3d_convlstm", "--batch", "4", "--steps", "2", "--frames", str(shape.frames),
            "--size", str(shape.size), "--num-classes", str(shape.num_classes), "--model-kwargs", json.dumps(kwargs),
            "--peak-tflops", "1", "--peak-tbps", "1", "--against", "torch", "--json", str(out)]
    with jax.default_prng_impl("rbg"):
        assert main(argv) == 0
    report = json.loads(out.read_text())
    check_report(report)
    assert not [k for k in report if k.endswith("_error")]
    eager, compiled = report["torch_eager_clips_per_second"], report["torch_compiled_clips_per_second"]
    assert eager > 0 and compiled > 0
    assert report["ratio_vs_torch"] == pytest.approx(report["clips_per_second"] / max(eager, compiled))
    assert report["torch_parameters"] == report["parameters"]  # the same network, counted on both sides
    assert "ratio vs PyTorch" in capsys.readouterr().out


def test_no_augment_times_the_step_without_augmentation():
    from fer_jax.bench.bench import experiment_config

    for augment in (True, False):
        config = BenchConfig(model="cnn3d_convlstm", shape=TINY, augment=augment)
        assert experiment_config(config, "d", "/tmp").augment.enabled is augment


def test_bench_against_torch_refuses_a_model_without_a_peer_before_timing():
    from fer_jax.errors import ConfigError

    with pytest.raises(ConfigError, match="no torch peer"):
        run_bench(BenchConfig(model="mini_xception", batch=4, shape=TINY, against="torch"))
