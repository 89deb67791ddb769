"""Peak FLOP/s and memory bandwidth per device: the denominators of MFU and of the bandwidth fraction.

Known accelerators come from their vendors' data sheets (dense, no sparsity). "f32" means what JAX
runs a float32 matmul with by default on that device: TF32 tensor cores on NVIDIA Ampere and later,
bfloat16 passes on TPUs. A peak can be overridden with `--peak-tflops` or $FER_JAX_PEAK_TFLOPS.
CPUs have no table entry: their peak is measured (a large float32 matmul), and said so.

Memory bandwidth likewise: the data sheet's HBM bandwidth for accelerators, and for CPUs a
STREAM-like measurement (an elementwise pass over arrays far larger than the caches), overridable
with `--peak-tbps` or $FER_JAX_PEAK_TBPS.
"""

from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp

from fer_jax.errors import ConfigError

# (substring of jax's device_kind, lower-cased) -> {precision: peak TFLOP/s per device}.
# Checked in order, so the more specific names come first.
KNOWN_PEAKS_TFLOPS: tuple[tuple[str, dict[str, float]], ...] = (
    ("h200", {"bf16": 989.5, "f32": 494.7}),
    ("h100 pcie", {"bf16": 756.0, "f32": 378.0}),
    ("h100", {"bf16": 989.5, "f32": 494.7}),  # SXM
    ("gh200", {"bf16": 989.5, "f32": 494.7}),
    ("a100", {"bf16": 312.0, "f32": 156.0}),
    ("l40s", {"bf16": 362.0, "f32": 183.0}),
    ("l4", {"bf16": 121.0, "f32": 60.0}),
    ("a10g", {"bf16": 70.0, "f32": 35.0}),
    ("v100", {"bf16": 125.0, "f32": 15.7}),  # no bf16 on Volta: the fp16 tensor-core figure
    ("tpu v5p", {"bf16": 459.0, "f32": 459.0}),
    ("tpu v5 lite", {"bf16": 197.0, "f32": 197.0}),
    ("tpu v4", {"bf16": 275.0, "f32": 275.0}),
)

ENV_OVERRIDE = "FER_JAX_PEAK_TFLOPS"

# (substring of jax's device_kind, lower-cased) -> peak memory bandwidth in TB/s (10^12 bytes/s),
# from the vendors' data sheets; checked in order, the more specific names first. jax's kinds:
# "NVIDIA H100 80GB HBM3" (SXM), "NVIDIA H100 PCIe", "NVIDIA A100-SXM4-80GB", "NVIDIA A100 80GB PCIe".
KNOWN_BANDWIDTH_TBPS: tuple[tuple[str, float], ...] = (
    ("gh200", 4.0),  # before "h200", which it contains; the 96 GB HBM3 part (144 GB HBM3e: 4.9)
    ("h200", 4.8),
    ("h100 pcie", 2.0),
    ("h100 nvl", 3.9),
    ("h100", 3.35),  # SXM
    ("a100-sxm4-80gb", 2.039),
    ("a100 80gb pcie", 1.935),
    ("a100", 1.555),  # 40 GB
    ("l40s", 0.864),
    ("l4", 0.3),
    ("a10g", 0.6),
    ("v100", 0.9),
    ("tpu v5p", 2.765),
    ("tpu v5 lite", 0.819),
    ("tpu v4", 1.228),
)
BANDWIDTH_ENV_OVERRIDE = "FER_JAX_PEAK_TBPS"


def known_peak(device_kind: str, precision: str) -> float | None:
    """Peak FLOP/s of one device from the table, or None."""
    kind = device_kind.lower()
    for name, peaks in KNOWN_PEAKS_TFLOPS:
        if name in kind:
            return peaks[precision] * 1e12
    return None


def measured_matmul_peak(precision: str, size: int = 1024, repeats: int = 5) -> float:
    """FLOP/s of the best of `repeats` (size x size) matmuls on the first device: a practical
    ceiling where no data sheet applies (CPUs)."""
    dtype = jnp.bfloat16 if precision == "bf16" else jnp.float32
    return 2 * size**3 / _best_seconds(lambda x: x @ x, jnp.ones((size, size), dtype), repeats)


# A measured peak is the best run over at least this long: on a shared CPU a few runs can all
# land in a slow spell (a best of 5 once put this project's 2-core machine at 0.13 TFLOP/s against
# its usual 0.20-0.22, and a model at 98 % MFU).
MEASURE_MIN_SECONDS = 1.0


def _best_seconds(fn, x, repeats: int, min_seconds: float = MEASURE_MIN_SECONDS) -> float:
    """The shortest run of jit(fn)(x), over at least `repeats` runs and `min_seconds` of them,
    after one run that compiles it."""
    jitted = jax.jit(fn)
    jitted(x).block_until_ready()
    best, runs, start = float("inf"), 0, time.perf_counter()
    while runs < repeats or time.perf_counter() - start < min_seconds:
        tic = time.perf_counter()
        jitted(x).block_until_ready()
        best = min(best, time.perf_counter() - tic)
        runs += 1
    return best


def _given(override: float | None, env: str, unit: str) -> float | None:
    """A peak given as an argument, else by $env, else None; checked to be a positive number."""
    if override is None and os.environ.get(env):
        try:
            override = float(os.environ[env])
        except ValueError:
            raise ConfigError(f"${env}={os.environ[env]!r}: expected {unit} as a number") from None
    if override is not None and not override > 0:
        raise ConfigError(f"peak {unit} must be positive, got {override}")
    return override


def total_peak(devices, precision: str, override_tflops: float | None = None) -> tuple[float, str]:
    """(peak FLOP/s of all `devices` together, where the figure comes from).

    A measured CPU peak is already that of the whole host: JAX's CPU devices share its cores."""
    peak, source = device_peak(devices[0], precision, override_tflops)
    if source.startswith("measured"):
        return peak, source
    return peak * len(devices), f"{len(devices)} x {source}"


def device_peak(device, precision: str, override_tflops: float | None = None) -> tuple[float, str]:
    """(peak FLOP/s of one device, where the figure comes from)."""
    override_tflops = _given(override_tflops, ENV_OVERRIDE, "TFLOP/s")
    if override_tflops is not None:
        return override_tflops * 1e12, f"given ({override_tflops} TFLOP/s per device)"
    peak = known_peak(device.device_kind, precision)
    if peak is not None:
        return peak, f"data sheet ({device.device_kind}, {precision}, dense)"
    return measured_matmul_peak(precision), f"measured: best 1024x1024 {precision} matmul on {device.device_kind}"


def known_bandwidth(device_kind: str) -> float | None:
    """Peak memory bandwidth of one device from the table (bytes/s), or None."""
    kind = device_kind.lower()
    for name, tbps in KNOWN_BANDWIDTH_TBPS:
        if name in kind:
            return tbps * 1e12
    return None


def measured_copy_bandwidth(mib: int = 256, repeats: int = 5) -> float:
    """Bytes/s of the best of `repeats` passes y = x + 1 over `mib` MiB of float32 on the first
    device, counting the read of x and the write of y (STREAM's convention; a write-allocate read
    of y, where the CPU does one, is not counted): what a memory-bound XLA kernel can reach."""
    x = jnp.zeros((mib * 2**20 // 4,), jnp.float32)
    return 2 * x.nbytes / _best_seconds(lambda x: x + 1.0, x, repeats)


def total_bandwidth(devices, override_tbps: float | None = None) -> tuple[float, str]:
    """(peak memory bandwidth of all `devices` together in bytes/s, where the figure comes from);
    as for FLOPs, a measured CPU figure is already the whole host's."""
    override_tbps = _given(override_tbps, BANDWIDTH_ENV_OVERRIDE, "TB/s")
    n = len(devices)
    if override_tbps is not None:
        return override_tbps * 1e12 * n, f"{n} x given ({override_tbps} TB/s per device)"
    kind = devices[0].device_kind
    peak = known_bandwidth(kind)
    if peak is not None:
        return peak * n, f"{n} x data sheet ({kind})"
    return measured_copy_bandwidth(), f"measured: best x + 1 over 256 MiB float32 on {kind} (read + write)"
