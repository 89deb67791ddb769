"""Metrics to JSON lines (for scripts) and TensorBoard event files (for people)."""

from __future__ import annotations

import json
import math
import pathlib

import tensorboardX


class MetricWriter:
    def __init__(self, workdir: str | pathlib.Path, enabled: bool = True):
        self.enabled = enabled  # only process 0 writes in multi-process runs
        if not enabled:
            return
        workdir = pathlib.Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        self._jsonl = open(workdir / "metrics.jsonl", "a")
        self._tb = tensorboardX.SummaryWriter(str(workdir / "tensorboard"))

    def write(self, step: int, split: str, metrics: dict) -> None:
        if not self.enabled:
            return
        scalars = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and math.isfinite(v)}
        self._jsonl.write(json.dumps({"step": step, "split": split, **scalars}) + "\n")
        self._jsonl.flush()
        for name, value in scalars.items():
            self._tb.add_scalar(f"{split}/{name}", value, step)

    def close(self) -> None:
        if self.enabled:
            self._jsonl.close()
            self._tb.close()
