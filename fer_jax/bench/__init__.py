"""`fer-jax bench`: train-step and input-pipeline throughput, analytic FLOPs and MFU."""

from fer_jax.bench.bench import BenchConfig, format_report, run_bench

__all__ = ["BenchConfig", "format_report", "run_bench"]
