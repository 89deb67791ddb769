"""Peak FLOP/s per device, the denominator of MFU.

Known accelerators come from their vendors' data sheets (dense, no sparsity). "f32" means what JAX
runs a float32 matmul with by default on that device: TF32 tensor cores on NVIDIA Ampere and later,
bfloat16 passes on TPUs. A peak can be overridden with `--peak-tflops` or $FER_JAX_PEAK_TFLOPS.
CPUs have no table entry: their peak is measured (a large float32 matmul), and said so.
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
    a = jnp.ones((size, size), dtype)
    matmul = jax.jit(lambda x: x @ x)
    matmul(a).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        tic = time.perf_counter()
        matmul(a).block_until_ready()
        best = min(best, time.perf_counter() - tic)
    return 2 * size**3 / best


def total_peak(devices, precision: str, override_tflops: float | None = None) -> tuple[float, str]:
    """(peak FLOP/s of all `devices` together, where the figure comes from).

    A measured CPU peak is already that of the whole host: JAX's CPU devices share its cores."""
    peak, source = device_peak(devices[0], precision, override_tflops)
    if source.startswith("measured"):
        return peak, source
    return peak * len(devices), f"{len(devices)} x {source}"


def device_peak(device, precision: str, override_tflops: float | None = None) -> tuple[float, str]:
    """(peak FLOP/s of one device, where the figure comes from)."""
    if override_tflops is None and os.environ.get(ENV_OVERRIDE):
        try:
            override_tflops = float(os.environ[ENV_OVERRIDE])
        except ValueError:
            raise ConfigError(f"${ENV_OVERRIDE}={os.environ[ENV_OVERRIDE]!r}: expected TFLOP/s as a number") from None
    if override_tflops is not None:
        if not override_tflops > 0:
            raise ConfigError(f"peak TFLOP/s must be positive, got {override_tflops}")
        return override_tflops * 1e12, f"given ({override_tflops} TFLOP/s per device)"
    peak = known_peak(device.device_kind, precision)
    if peak is not None:
        return peak, f"data sheet ({device.device_kind}, {precision}, dense)"
    return measured_matmul_peak(precision), f"measured: best 1024x1024 {precision} matmul on {device.device_kind}"
