"""`fer-jax bench`: throughput of the train step and, separately, of the input pipeline alone.

Both halves run the code training runs: the model, optimizer, augmentation and donated step of
`fer_jax.train` (built by `loop.build_state`), and grain reading array_record records into uint8
batches (`fer_jax.data`). The train step is timed on one batch kept on the devices, so it
measures compute alone; the input pipeline is timed with nothing else running, including the copy
of each batch onto the devices. The step is input-bound when the pipeline delivers fewer clips per
second than the step consumes.
"""

from __future__ import annotations

import dataclasses
import inspect
import platform
import statistics
import tempfile
import time
from typing import Any

import jax
import numpy as np

from fer_jax.bench import flops, peaks, synthetic
from fer_jax.config import AugmentConfig, DataConfig, ExperimentConfig, ModelConfig, TrainConfig
from fer_jax.errors import ConfigError

# Constructor arguments the bench fills in from the record shape when a model takes them.
_SHAPE_KWARGS = {"frames": "frames", "size": "size", "in_channels": "channels", "n_freq": "mel_bins"}


@dataclasses.dataclass
class BenchConfig:
    model: str
    batch: int = 32
    steps: int = 10  # timed train steps (after one compile + one warm-up step)
    precision: str = "f32"
    shape: synthetic.RecordShape = dataclasses.field(default_factory=synthetic.RecordShape)
    model_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    data_dir: str = ""  # a built corpus to read; empty: a synthetic one in a temp dir
    dataset: str = ""
    split: str = "train"
    workers: int = 0  # grain worker processes, as data.worker_count
    input_batches: int = 0  # batches timed for the input pipeline; 0: max(steps, 10)
    peak_tflops: float | None = None  # per device; default: the table in peaks.py, or measured on CPU
    seed: int = 0
    compiler_options: dict[str, Any] | None = None  # XLA options for the train step's compile


def _model_kwargs(config: BenchConfig) -> dict:
    from fer_jax.models import MODELS

    if config.model not in MODELS:
        raise ConfigError(f"bench: unknown model {config.model!r}; known: {', '.join(sorted(MODELS))}")
    factory = MODELS[config.model]
    accepted = inspect.signature(factory.__init__ if isinstance(factory, type) else factory).parameters
    kwargs = dict(config.model_kwargs)
    for arg, field in _SHAPE_KWARGS.items():
        if arg in accepted and arg not in kwargs:
            kwargs[arg] = getattr(config.shape, field)
    return kwargs


def experiment_config(config: BenchConfig, dataset: str, data_dir: str) -> ExperimentConfig:
    if config.batch < 1 or config.steps < 1:
        raise ConfigError(f"bench: --batch and --steps must be >= 1, got {config.batch} and {config.steps}")
    shape = config.shape
    return ExperimentConfig(
        name=f"bench_{config.model}",
        workdir=tempfile.gettempdir(),
        data=DataConfig(dataset=dataset, data_dir=data_dir, train_split=config.split, num_classes=shape.num_classes,
                        frames=shape.frames, size=shape.size, channels=shape.channels,
                        global_batch_size=config.batch, worker_count=config.workers, shuffle_seed=config.seed),
        model=ModelConfig(name=config.model, kwargs=_model_kwargs(config)),
        augment=AugmentConfig(),
        train=TrainConfig(seed=config.seed, precision=config.precision),
    )


INPUT_MIN_SECONDS = 2.0  # the input pipeline is timed for at least this long (and num_batches)


def _time_input(source, experiment: ExperimentConfig, keys, mesh, num_batches: int) -> dict:
    """Sustained clips/s of reading, batching and copying onto the devices. The read-ahead buffer
    (prefetch_batches per reading process) is filled first, so what is timed is the rate the
    readers keep up, not batches that were ready before the clock started."""
    from fer_jax.data.train_batches import train_iterator
    from fer_jax.sharding import to_global

    data = experiment.data
    ahead = data.prefetch_batches * max(data.worker_count, 1)
    epochs = 10**9 // max(len(source), 1)  # more than any timing loop reaches; batches are made on demand
    tic = time.perf_counter()
    iterator = train_iterator(source, data, epochs, keys)
    jax.block_until_ready(to_global(next(iterator), mesh))  # opens files, starts workers
    first = time.perf_counter() - tic
    for _ in range(ahead):
        jax.block_until_ready(to_global(next(iterator), mesh))
    count, tic = 0, time.perf_counter()
    while count < num_batches or time.perf_counter() - tic < INPUT_MIN_SECONDS:
        jax.block_until_ready(to_global(next(iterator), mesh))
        count += 1
    seconds = time.perf_counter() - tic
    if hasattr(iterator, "close"):
        iterator.close()  # stops worker processes now rather than at exit
    return {"input_first_batch_seconds": first,
            "input_batches_timed": count,
            "input_batch_ms_mean": 1e3 * seconds / count,
            "input_clips_per_second": count * data.global_batch_size / seconds}


def _time_train(steps, batch, num_steps: int) -> dict:
    state = steps.state
    tic = time.perf_counter()
    state, _ = steps.train(state, batch, 0)  # compiles ahead of time, then runs
    jax.block_until_ready(state)
    first = time.perf_counter() - tic
    state, _ = steps.train(state, batch, 1)  # warm-up: first-run allocations
    jax.block_until_ready(state)
    times = []
    for i in range(num_steps):
        tic = time.perf_counter()
        state, metrics = steps.train(state, batch, 2 + i)
        jax.block_until_ready((state, metrics))
        times.append(time.perf_counter() - tic)
    loss = float(jax.device_get(metrics["loss"]))
    if not np.isfinite(loss):
        raise ConfigError(f"bench: the train step's loss is {loss}; these settings do not train")
    steps.state = state
    median = statistics.median(times)
    return {"compile_seconds": steps.compile_seconds, "first_step_seconds": first,
            "step_ms_median": 1e3 * median, "step_ms_min": 1e3 * min(times), "step_ms_max": 1e3 * max(times),
            "clips_per_second": len(batch[next(iter(batch))]) / median, "loss": loss}


def versions() -> dict:
    import flax
    import grain
    import jaxlib

    return {"jax": jax.__version__, "jaxlib": jaxlib.__version__, "flax": flax.__version__,
            "grain": getattr(grain, "__version__", "?"), "python": platform.python_version()}


def run_bench(config: BenchConfig) -> dict:
    """Compile and time the train step and the input pipeline; returns the report as a dict."""
    from fer_jax.data.sources import open_split
    from fer_jax.data.train_batches import train_iterator
    from fer_jax.sharding import make_mesh, to_global
    from fer_jax.train.loop import build_state

    mesh = make_mesh()
    if config.batch % mesh.size:
        raise ConfigError(f"bench: --batch {config.batch} is not divisible by the {mesh.size} devices")
    with tempfile.TemporaryDirectory(prefix="fer_jax_bench_") as tmp:
        dataset, data_dir = config.dataset, config.data_dir
        experiment = experiment_config(config, dataset or synthetic.NAME, data_dir or tmp)
        steps = build_state(experiment, mesh)
        steps.train.compiler_options = config.compiler_options
        keys = steps.input_keys + steps.task.target_keys
        if not dataset:
            # Enough records for a few distinct batches; the pipeline repeats them like epochs.
            num_records = max(2 * config.batch, 32)
            synthetic.write_corpus(tmp, keys, config.shape, num_records, config.seed)
        split = open_split(experiment.data, config.split, steps.record_keys)
        source, keys = split.source, split.keys
        if len(source) < config.batch:
            raise ConfigError(f"bench: {dataset}[{config.split}] has {len(source)} records, fewer than one batch")

        report: dict[str, Any] = {"model": config.model, "batch": config.batch, "precision": config.precision,
                                  "records": "synthetic" if not dataset else f"{dataset}[{config.split}]"}
        report.update(_time_input(source, experiment, keys, mesh, config.input_batches or max(config.steps, 10)))
        one_batch = train_iterator(source, dataclasses.replace(experiment.data, worker_count=0), 1, keys)
        batch = to_global(next(one_batch), mesh)

        # FLOPs from the traced step (nothing runs); then the timed steps.
        step_flops = flops.count_flops(steps.train.jitted, steps.state, batch, 0)
        forward_flops = flops.count_flops(steps.evaluate, steps.state, batch)
        report.update(_time_train(steps, batch, config.steps))

    devices = mesh.devices.reshape(-1)
    peak, peak_source = peaks.total_peak(list(devices), config.precision, config.peak_tflops)
    compiled = next(iter(steps.train.compiled.values()))
    xla = flops.xla_flops(compiled)
    flops_per_clip = step_flops / config.batch
    achieved = flops_per_clip * report["clips_per_second"]
    report.update(
        flops_per_clip=flops_per_clip,
        forward_flops_per_clip=forward_flops / config.batch,
        # XLA's figure for the per-device program, scaled to the global batch; it counts a scan
        # body once and includes elementwise work, so it is a cross-check, not the MFU numerator.
        xla_flops_per_clip=None if xla is None else xla * len(devices) / config.batch,
        achieved_tflops=achieved / 1e12,
        peak_tflops=peak / 1e12,
        peak_source=peak_source,
        mfu=achieved / peak,
        input_bound=report["input_clips_per_second"] < report["clips_per_second"],
        input_headroom=report["input_clips_per_second"] / report["clips_per_second"],
        memory=steps.memory,
        device_kind=devices[0].device_kind,
        platform=devices[0].platform,
        device_count=len(devices),
        process_count=jax.process_count(),
        versions=versions(),
    )
    return report


def format_report(report: dict) -> str:
    mem = report.get("memory") or {}
    rows = [
        ("model / batch / precision", f"{report['model']} / {report['batch']} / {report['precision']}"),
        ("devices", f"{report['device_count']} x {report['device_kind']} ({report['process_count']} process(es))"),
        ("train step: compile", f"{report['compile_seconds']:.1f} s"),
        ("train step: median", f"{report['step_ms_median']:.1f} ms ({report['clips_per_second']:.3g} clips/s)"),
        ("analytic FLOPs per clip", f"{report['flops_per_clip']:.4g} (forward {report['forward_flops_per_clip']:.4g})"),
        ("XLA cost analysis per clip", "n/a" if report["xla_flops_per_clip"] is None
         else f"{report['xla_flops_per_clip']:.4g} (scan bodies once, elementwise included)"),
        ("achieved", f"{report['achieved_tflops']:.4g} TFLOP/s"),
        ("MFU", f"{100 * report['mfu']:.2f} % of {report['peak_tflops']:.4g} TFLOP/s ({report['peak_source']})"),
        ("input pipeline alone", f"{report['input_clips_per_second']:.3g} clips/s ({report['records']})"),
        ("input-bound", f"{'yes' if report['input_bound'] else 'no'} "
                        f"(input delivers {report['input_headroom']:.2f} x what the step consumes)"),
        ("step memory (temp / args)", f"{mem.get('temp_size_in_bytes', 0) / 2**20:.1f} / "
                                      f"{mem.get('argument_size_in_bytes', 0) / 2**20:.1f} MiB"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
