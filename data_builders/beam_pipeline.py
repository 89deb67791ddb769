"""The preprocessing of a build as an Apache Beam pipeline: list clips -> preprocess each -> example or skip.

`PreprocessClips` is what `ClipCorpusBuilder._generate_examples` returns: one stage that preprocesses
the clips of every split and gives TFDS a PCollection per split, which TFDS runs on whichever Beam
runner the build names: the DirectRunner on this machine (in its
multi_processing mode, one worker process per core), Dataflow, Flink or Spark beyond it. Skipped
clips leave through a side output that is written to a JSON file beside the records (the build
report reads it back); the numbers (kept, skipped, source frames, seconds spent) are Beam counters.

Everything here is pickled and sent to the workers, so it lives in importable modules
(`data_builders.*`, `fer_jax.*`), never in a builder module that `tfds build` loads from a path;
dlib's detector and landmark model are made inside each worker (`fer_jax.preprocess` loads them on
first use), never pickled.
"""

from __future__ import annotations

import json
import os
import time

import apache_beam as beam
from apache_beam.options import pipeline_options as po
from etils import epath

from data_builders import common

COUNTER_NAMESPACE = "fer_jax_build"
SKIPPED_TAG = "skipped"
# A worker's start-up (spawn, Beam's own imports, OpenCV/dlib/PyAV, the landmark model) costs about
# as much CPU as preprocessing 15-30 small clips: a pool gets one worker per CLIPS_PER_WORKER clips
# (up to one per core), so a dummy corpus of a dozen clips runs in this process.
CLIPS_PER_WORKER = 16
RUNNERS = {"direct": "DirectRunner", "dataflow": "DataflowRunner", "flink": "FlinkRunner", "spark": "SparkRunner"}


def counter_name(split: str, what: str) -> str:
    return f"{split}/{what}"


class _PreprocessClip(beam.DoFn):
    """(split, ClipItem) -> (key, example) on the split's output, or a skip entry on SKIPPED_TAG."""

    def __init__(self, splits: list[str], clip, postprocess=None):
        self._splits = splits
        self._clip = clip
        self._postprocess = postprocess  # example -> example; a module-level function (pickled by name)

    def setup(self):
        # One core per worker: OpenCV's own thread pool would fight the other workers.
        import cv2

        cv2.setNumThreads(1)
        self._counters = {
            (split, what): beam.metrics.Metrics.counter(COUNTER_NAMESPACE, counter_name(split, what))
            for split in self._splits
            for what in ("kept", "skipped", "source_frames", "clip_milliseconds")
        }

    def process(self, split_item: tuple[str, common.ClipItem]):
        split, item = split_item
        start = time.perf_counter()
        key, example, skip, frames = common.preprocess_item(item, self._clip)
        self._counters[split, "clip_milliseconds"].inc(round(1000 * (time.perf_counter() - start)))
        if skip is not None:
            self._counters[split, "skipped"].inc()
            yield beam.pvalue.TaggedOutput(SKIPPED_TAG, {"split": split, **skip})
            return
        self._counters[split, "kept"].inc()
        self._counters[split, "source_frames"].inc(frames)
        yield beam.pvalue.TaggedOutput(split, (key, self._postprocess(example) if self._postprocess else example))


def _write_json(entries: list, path: str) -> None:
    entries = sorted(entries, key=lambda e: (e["split"], e["path"], e["reason"]))
    epath.Path(path).write_text(json.dumps(entries))


class PreprocessClips(beam.PTransform):
    """The clips of every split, preprocessed in one stage (so the workers share one pool of clips
    instead of meeting at a barrier after each split): {split: PCollection of (key, example)} for
    the clips kept; the skipped clips' entries are written as one JSON list to `skipped_path`
    (read back by `read_skipped`)."""

    def __init__(self, items: dict[str, list[common.ClipItem]], clip, skipped_path: str, postprocess=None):
        super().__init__(label="preprocess")
        self._items, self._clip = items, clip
        self._skipped_path, self._postprocess = skipped_path, postprocess

    def expand(self, pipeline):
        splits = list(self._items)
        # Create reshuffles its elements, so the clips spread over the workers instead of staying
        # fused with the single element that starts the pipeline.
        results = (
            pipeline
            | "list clips" >> beam.Create([(split, item) for split in splits for item in self._items[split]])
            | "preprocess" >> beam.ParDo(_PreprocessClip(splits, self._clip, self._postprocess)).with_outputs(
                SKIPPED_TAG, *splits
            )
        )
        _ = (
            results[SKIPPED_TAG]
            | "gather skips" >> beam.combiners.ToList()
            | "write skips" >> beam.Map(_write_json, self._skipped_path)
        )
        return {split: results[split] for split in splits}


def read_skipped(path: str) -> list[dict]:
    return json.loads(epath.Path(path).read_text())


def counters(pipeline_result) -> dict[str, int]:
    """{counter name: value} of a finished pipeline; committed values where the runner has them."""
    query = pipeline_result.metrics().query(beam.metrics.MetricsFilter().with_namespace(COUNTER_NAMESPACE))
    out = {}
    for result in query["counters"]:
        try:
            value = result.committed
        except Exception:  # some runners only report attempted values
            value = None
        out[result.key.metric.name] = value if value is not None else result.attempted
    return out


def pipeline_options(runner: str = "direct", beam_options: str | None = None) -> po.PipelineOptions:
    """PipelineOptions for `fer-jax build --runner RUNNER --beam-options=FLAGS`: FLAGS as Beam's own
    command line ("--flag=value --other=value") or as `tfds build --beam_pipeline_options` takes
    them ("flag=value,other=value")."""
    from fer_jax.errors import ConfigError

    if runner not in RUNNERS:
        raise ConfigError(f"--runner {runner!r}: expected one of {', '.join(RUNNERS)}")
    flags = [f"--runner={RUNNERS[runner]}"]
    for token in (beam_options or "").split():
        flags += [token] if token.startswith("--") else [f"--{part}" for part in token.split(",") if part]
    return po.PipelineOptions(flags)


def default_workers(num_clips: int) -> int:
    return max(1, min(os.cpu_count() or 1, num_clips // CLIPS_PER_WORKER))


def set_direct_workers(options: po.PipelineOptions, num_clips: int) -> None:
    """On the DirectRunner, unless the options say otherwise: in this process for a small corpus,
    else multi_processing with one worker per CLIPS_PER_WORKER clips, at most one per core."""
    runner = options.view_as(po.StandardOptions).runner
    if runner not in (None, "DirectRunner", "BundleBasedDirectRunner", "direct"):
        return
    direct = options.view_as(po.DirectOptions)
    explicit = options.get_all_options(drop_default=True)
    if "direct_running_mode" in explicit or "direct_num_workers" in explicit:
        return
    workers = default_workers(num_clips)
    direct.direct_running_mode = "in_memory" if workers == 1 else "multi_processing"
    direct.direct_num_workers = workers


def local_workers(options: po.PipelineOptions | None) -> int | None:
    """How many processes a DirectRunner build runs on (None for a remote runner)."""
    if options is None:
        return 1
    runner = options.view_as(po.StandardOptions).runner
    if runner not in (None, "DirectRunner", "BundleBasedDirectRunner", "direct"):
        return None
    direct = options.view_as(po.DirectOptions)
    if direct.direct_running_mode in ("multi_processing", "multi_threading"):
        return direct.direct_num_workers or os.cpu_count() or 1
    return 1
