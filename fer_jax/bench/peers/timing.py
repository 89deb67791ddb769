"""Time a PyTorch peer's train step with the protocol of fer-jax's bench (fer_jax.bench.bench).

One step = uint8 frames to float32 in [0, 1], forward, softmax cross-entropy (mean over the batch),
backward, Adam step (lr as TrainConfig's). Each variant starts from a freshly built model; its first
step is timed apart (for `torch.compile` it includes compilation), then warm-up, then `steps`
timed steps whose median gives clips/s. One batch is kept on the device and reused, as the JAX
side does, so the input pipeline is not part of it. PyTorch keeps its default thread count (all
cores), as XLA does.

What a PyTorch user would do for speed, and does here:
  - `channels_last_3d` / `channels_last` storage for the convolutions (each peer's `memory_format`);
  - Adam with `fused=True` where the device has the fused kernel (CPU and CUDA in torch >= 2.4),
    else `foreach=True`;
  - "compiled": `torch.compile` of forward + loss (AOTAutograd compiles the backward too); on CUDA
    in "reduce-overhead" mode, which replays the step as a CUDA graph;
  - bf16: `torch.autocast(dtype=torch.bfloat16)` (parameters and Adam state stay float32, as ours);
    f32 on CUDA allows TF32 matmuls and convolutions, as XLA does by default for float32 there;
  - `cudnn.benchmark` on CUDA (shapes are fixed).
"""

from __future__ import annotations

import contextlib
import statistics
import time
from typing import Any

import numpy as np

from fer_jax.errors import ConfigError

# After the first step: one warm-up step, as the JAX side; CUDA graphs ("reduce-overhead") warm up
# and record over their first calls, so they get two more before the clock starts.
WARMUP_STEPS = 1
CUDA_GRAPH_EXTRA_WARMUP = 2


def make_batch(torch, input_specs: dict[str, tuple[tuple[int, ...], Any]], num_classes: int, batch: int,
               device, seed: int) -> dict:
    """Random inputs of the record shapes (uint8 frames, float32 features) and labels, on `device`."""
    rng = np.random.default_rng(seed)
    out = {}
    for key, (shape, dtype) in input_specs.items():
        if dtype == np.uint8:
            value = rng.integers(0, 256, (batch, *shape), dtype=np.uint8)
        else:
            value = rng.normal(size=(batch, *shape)).astype(np.float32)
        out[key] = torch.from_numpy(value).to(device)
    out["label"] = torch.from_numpy(rng.integers(0, num_classes, batch)).to(device)
    return out


def convert_memory_format(torch, model) -> None:
    """Conv weights to the storage their inputs use: 5D channels_last_3d, 4D channels_last."""
    if model.memory_format == torch.contiguous_format:
        return
    for param in model.parameters():
        if param.ndim == 5:
            param.data = param.data.contiguous(memory_format=torch.channels_last_3d)
        elif param.ndim == 4:
            param.data = param.data.contiguous(memory_format=torch.channels_last)


def make_optimizer(torch, model, learning_rate: float):
    """(Adam, "fused" | "foreach")."""
    try:
        return torch.optim.Adam(model.parameters(), lr=learning_rate, fused=True), "fused"
    except RuntimeError:  # no fused kernel for this device
        return torch.optim.Adam(model.parameters(), lr=learning_rate, foreach=True), "foreach"


def _sync(torch, device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_variant(torch, build, batch: dict, *, compiled: bool, precision: str, steps: int,
                 learning_rate: float, device) -> dict:
    """Build the peer with `build()`, run its train step, and time it; returns clips/s and friends."""
    import torch.nn.functional as F

    model = build().to(device)
    convert_memory_format(torch, model)
    model.train()
    optimizer, adam = make_optimizer(torch, model, learning_rate)
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16"
                else contextlib.nullcontext())
    inputs_keys = [k for k in batch if k != "label"]

    def loss_fn(batch):
        inputs = {k: batch[k].float() / 255.0 if batch[k].dtype == torch.uint8 else batch[k] for k in inputs_keys}
        with autocast:
            logits = model(inputs)
        return F.cross_entropy(logits.float(), batch["label"])

    cuda_graphs = compiled and device.type == "cuda"
    if compiled:
        loss_fn = torch.compile(loss_fn, mode="reduce-overhead" if cuda_graphs else "default")

    def step():
        if cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()
        loss = loss_fn(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss

    tic = time.perf_counter()
    step()
    _sync(torch, device)
    first = time.perf_counter() - tic
    for _ in range(WARMUP_STEPS + (CUDA_GRAPH_EXTRA_WARMUP if cuda_graphs else 0)):
        step()
    _sync(torch, device)
    times = []
    for _ in range(steps):
        tic = time.perf_counter()
        loss = step()
        _sync(torch, device)
        times.append(time.perf_counter() - tic)
    loss = float(loss.detach())
    if not np.isfinite(loss):
        raise ConfigError(f"bench: the torch peer's loss is {loss}; these settings do not train")
    median = statistics.median(times)
    return {"first_step_seconds": first, "step_ms_median": 1e3 * median, "step_ms_min": 1e3 * min(times),
            "clips_per_second": len(batch["label"]) / median, "loss": loss, "adam": adam,
            "parameters": sum(p.numel() for p in model.parameters())}


def device_and_settings(torch, precision: str):
    """The device the peer runs on (CUDA when torch has it, else CPU) with its speed settings."""
    if precision not in ("f32", "bf16"):
        raise ConfigError(f"bench: precision {precision!r} has no torch peer setting; use f32 or bf16")
    if torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        return torch.device("cuda")
    return torch.device("cpu")
