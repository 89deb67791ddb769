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
