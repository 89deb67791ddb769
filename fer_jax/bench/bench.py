"""`fer-jax bench`: throughput of the train step and, separately, of the input pipeline alone.

Both halves run the code training runs: the model, optimizer, augmentation and donated step of
`fer_jax.train` (built by `loop.build_state`), and grain reading array_record records into uint8
batches (`fer_jax.data`). The train step is timed on one batch kept on the devices, so it
measures compute alone; the input pipeline is timed with nothing else running, including the copy
of each batch onto the devices. The step is input-bound when the pipeline delivers fewer clips per
second than the step consumes.

Beside MFU, the memory side of the roofline: the bytes the compiled step reads and writes (XLA's
cost analysis, see `flops.xla_bytes_accessed`) over the step time, as a fraction of the device's
peak bandwidth (`peaks.total_bandwidth`). With `against="torch"` the PyTorch peer of the same
network (`fer_jax.bench.peers`) is then timed the same way, eager and compiled, on the same
machine, and `ratio_vs_torch` is fer-jax's clips/s over the better of the two.
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
from flax import nnx

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
    peak_tbps: float | None = None  # memory bandwidth per device, TB/s; default as for peak_tflops
    against: str = ""  # "torch": also time the PyTorch peer (fer_jax.bench.peers) and report the ratio
    augment: bool = True  # the step's augmentation, as training runs it; the torch peers have none
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
        augment=AugmentConfig(enabled=config.augment),
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

    mesh = make_mesh(batch_sizes=(config.batch,))
    if config.batch % mesh.size:
        raise ConfigError(f"bench: --batch {config.batch} is not divisible by the {mesh.size} devices")
    if config.against:
        _check_peer(config)  # before minutes of JAX timing, not after
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
                                  "augment": config.augment,
                                  "records": "synthetic" if not dataset else f"{dataset}[{config.split}]"}
        report.update(_time_input(source, experiment, keys, mesh, config.input_batches or max(config.steps, 10)))
        one_batch = train_iterator(source, dataclasses.replace(experiment.data, worker_count=0), 1, keys)
        batch = to_global(next(one_batch), mesh)

        # FLOPs from the traced step (nothing runs); then the timed steps.
        step_flops = flops.count_flops(steps.train.jitted, steps.state, batch, 0)
        forward_flops = flops.count_flops(steps.evaluate, steps.state, batch)
        report.update(_time_train(steps, batch, config.steps))
        input_specs = {k: (tuple(v.shape[1:]), np.dtype(v.dtype)) for k, v in batch.items()}

    devices = mesh.devices.reshape(-1)
    peak, peak_source = peaks.total_peak(list(devices), config.precision, config.peak_tflops)
    compiled = next(iter(steps.train.compiled.values()))
    xla = flops.xla_flops(compiled)
    bytes_per_device = flops.xla_bytes_accessed(compiled)
    bandwidth, bandwidth_source = peaks.total_bandwidth(list(devices), config.peak_tbps)
    # Every device runs the program on its share of the batch, each within the step time.
    achieved_bandwidth = (None if bytes_per_device is None
                          else bytes_per_device * len(devices) / (report["step_ms_median"] / 1e3))
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
        bytes_accessed_per_step=None if bytes_per_device is None else bytes_per_device * len(devices),
        achieved_bandwidth_gbps=None if achieved_bandwidth is None else achieved_bandwidth / 1e9,
        peak_bandwidth_gbps=bandwidth / 1e9,
        peak_bandwidth_source=bandwidth_source,
        bandwidth_fraction=None if achieved_bandwidth is None else achieved_bandwidth / bandwidth,
        parameters=parameter_count(steps),
        input_bound=report["input_clips_per_second"] < report["clips_per_second"],
        input_headroom=report["input_clips_per_second"] / report["clips_per_second"],
        memory=steps.memory,
        device_kind=devices[0].device_kind,
        platform=devices[0].platform,
        device_count=len(devices),
        process_count=jax.process_count(),
        versions=versions(),
    )
    if config.against:
        report.update(against_peer(config, report, input_specs))
    return report


def parameter_count(steps) -> int:
    model, _ = nnx.merge(steps.graphdef, steps.state)
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


def _check_peer(config: BenchConfig) -> None:
    """The peer exists and takes the model's arguments (ConfigError otherwise)."""
    if config.against != "torch":
        raise ConfigError(f"bench: --against {config.against!r}: the only peer framework is 'torch'")
    from fer_jax.bench import peers

    backend = jax.default_backend()
    if jax.process_count() > 1 or (backend != "cpu" and jax.device_count() > 1):
        raise ConfigError(f"bench --against torch compares one device with one device; this run has "
                          f"{jax.device_count()} {backend} devices (e.g. set CUDA_VISIBLE_DEVICES=0)")
    torch = peers.import_torch()
    if (backend == "gpu") != torch.cuda.is_available():
        raise ConfigError(f"bench --against torch: JAX runs on {backend} but torch {torch.__version__} "
                          f"{'has' if torch.cuda.is_available() else 'has no'} CUDA; compare on the same device")
    peers.build_peer(config.model, config.shape.num_classes, _model_kwargs(config))


def against_peer(config: BenchConfig, report: dict, input_specs: dict) -> dict:
    """Time the PyTorch peer of the benched model with the same arguments, batch, shapes, precision
    and step count; -> its torch_* entries and ratio_vs_torch (ours over its better variant)."""
    from fer_jax.bench import peers

    peer = peers.run_peer(config.model, _model_kwargs(config), input_specs, num_classes=config.shape.num_classes,
                          batch=config.batch, steps=config.steps, precision=config.precision,
                          learning_rate=TrainConfig().learning_rate, seed=config.seed)
    if peer["torch_parameters"] != report["parameters"]:
        raise ConfigError(f"bench: the torch peer of {config.model} has {peer['torch_parameters']:,} parameters, "
                          f"fer-jax's model {report['parameters']:,}: they are not the same network")
    peer["ratio_vs_torch"] = report["clips_per_second"] / peer["torch_best_clips_per_second"]
    return peer


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
        ("parameters", f"{report['parameters']:,}"),
    ]
    if report["bytes_accessed_per_step"] is not None:
        rows += [
            ("bytes accessed per step", f"{report['bytes_accessed_per_step'] / 1e6:.4g} MB "
                                        "(XLA cost analysis; scan bodies once)"),
            ("achieved bandwidth", f"{report['achieved_bandwidth_gbps']:.4g} GB/s = "
                                   f"{100 * report['bandwidth_fraction']:.2f} % of "
                                   f"{report['peak_bandwidth_gbps']:.4g} GB/s ({report['peak_bandwidth_source']})"),
        ]
    if "ratio_vs_torch" in report:
        rows += _torch_rows(report)
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _torch_rows(report: dict) -> list[tuple[str, str]]:
    rows = [("PyTorch peer", f"torch {report['torch_version']} on {report['torch_device']} "
                             f"({report['torch_threads']} threads), {report['torch_memory_format']}, "
                             f"{report['torch_adam']} Adam"
                             + (f", autocast {report['torch_autocast']}" if report["torch_autocast"] else ""))]
    for variant in ("eager", "compiled"):
        if f"torch_{variant}_error" in report:
            rows.append((f"PyTorch {variant}", f"failed: {report[f'torch_{variant}_error']}"))
        elif f"torch_{variant}_clips_per_second" in report:
            rows.append((f"PyTorch {variant}: median", f"{report[f'torch_{variant}_step_ms_median']:.1f} ms "
                                                      f"({report[f'torch_{variant}_clips_per_second']:.3g} clips/s)"))
    rows.append(("ratio vs PyTorch", f"{report['ratio_vs_torch']:.2f} x (fer-jax clips/s over the better PyTorch variant)"))
    if report["augment"]:
        rows.append(("", "fer-jax's step includes its augmentation, the peer's none; --no-augment to match"))
    return rows
