"""Metrics to JSON lines (for scripts) and TensorBoard event files (for people)."""

from __future__ import annotations

import json
import math
import pathlib
import sys

import numpy as np


def _import_tensorboardx():
    """tensorboardX imports torch whenever it is installed (2.5 s at every training start) only to
    accept torch tensors, which we never pass; hide torch while it loads unless already loaded."""
    if "torch" in sys.modules:
        import tensorboardX
        return tensorboardX
    sys.modules["torch"] = None  # makes `import torch` raise ImportError
    try:
        import tensorboardX
    finally:
        del sys.modules["torch"]
    return tensorboardX


def _is_finite_number(v) -> bool:
    """Python and NumPy numbers and 0-d arrays (what jax.device_get returns); not bools or lists."""
    if isinstance(v, bool) or not isinstance(v, (int, float, np.number, np.ndarray)):
        return False
    return np.ndim(v) == 0 and np.issubdtype(np.asarray(v).dtype, np.number) and math.isfinite(float(v))


class MetricWriter:
    def __init__(self, workdir: str | pathlib.Path, enabled: bool = True):
        self.enabled = enabled  # only process 0 writes in multi-process runs
        if not enabled:
            return
        workdir = pathlib.Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        self._jsonl = open(workdir / "metrics.jsonl", "a")
        self._tb = _import_tensorboardx().SummaryWriter(str(workdir / "tensorboard"))

    def write(self, step: int, split: str, metrics: dict) -> None:
        if not self.enabled:
            return
        scalars = {k: float(v) for k, v in metrics.items() if _is_finite_number(v)}
        self._jsonl.write(json.dumps({"step": step, "split": split, **scalars}) + "\n")
        self._jsonl.flush()
        for name, value in scalars.items():
            self._tb.add_scalar(f"{split}/{name}", value, step)

    def close(self) -> None:
        if self.enabled:
            self._jsonl.close()
            self._tb.close()
