"""Latency per window of exported ONNX models on one CPU core (onnxruntime, batch size 1).

    python benchmarks/onnx_latency.py MODEL.onnx [MODEL.int8.onnx ...] [--runs 200]

Each model runs on random record-shaped inputs (uint8 frames) with one intra-op thread; reports
the median and the 90th percentile of --runs timed calls after 10 untimed ones, as JSON lines.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from fer_jax.infer.onnx_model import load_onnx


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("models", nargs="+")
    p.add_argument("--runs", type=int, default=200)
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    for path in args.models:
        model = load_onnx(path, threads=1)
        feed = {k: rng.integers(0, 256, spec["shape"], dtype=spec["dtype"]) if spec["dtype"] == "uint8"
                else rng.random(spec["shape"], dtype=np.float32) for k, spec in model.meta["inputs"].items()}
        for _ in range(10):
            model.session.run(None, feed)
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            model.session.run(None, feed)
            times.append(time.perf_counter() - start)
        batch = model.batch_size
        print(json.dumps({"model": path, "batch": batch, "ms_per_window_p50": round(1e3 * np.median(times) / batch, 3),
                          "ms_per_window_p90": round(1e3 * np.percentile(times, 90) / batch, 3),
                          "bytes": os.path.getsize(path), "load_average": [round(x, 2) for x in os.getloadavg()]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
