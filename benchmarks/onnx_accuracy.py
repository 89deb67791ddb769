"""Accuracy of exported ONNX models on a run's validation split, beside the run's own (JAX) model.

    python benchmarks/onnx_accuracy.py RUN MODEL.onnx [MODEL.int8.onnx ...]

Every example of the split is predicted by the checkpoint (`fer_jax.infer.loader`) and by each ONNX
file (onnxruntime); reports accuracy and the agreement of each ONNX model's top class with JAX's.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from fer_jax.infer.loader import load_model
from fer_jax.infer.onnx_model import load_onnx


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run")
    p.add_argument("models", nargs="+")
    p.add_argument("--split", default=None, help="default the run's validation split")
    args = p.parse_args(argv)
    model = load_model(args.run)
    split = model.run.open_split(args.split)
    examples = [split.source[i] for i in range(len(split))]
    labels = np.array([int(e["label"]) for e in examples])
    inputs = [{k: np.asarray(e[k]) for k in model.keys} for e in examples]
    reference = model.predict(inputs).argmax(axis=1)
    report = {"split": split.name, "examples": len(examples),
              "jax_accuracy": round(float((reference == labels).mean()), 4)}
    for path in args.models:
        top = load_onnx(path).predict(inputs).argmax(axis=1)
        report[path] = {"accuracy": round(float((top == labels).mean()), 4),
                        "agreement_with_jax": round(float((top == reference).mean()), 4)}
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
