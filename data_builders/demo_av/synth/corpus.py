"""The corpus: one clip per identity, class and repeat, written by Beam workers, and its manifest."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
import zlib
from pathlib import Path

import apache_beam as beam
import cv2
import numpy as np
from apache_beam.options.pipeline_options import PipelineOptions

from data_builders.demo_av.synth.faces import Identity, load_identities
from data_builders.demo_av.synth.render import render_clip, write_clip_mp4
from data_builders.demo_av.synth.settings import CLASSES, MANIFEST
from fer_jax.errors import ConfigError


def clip_rng(seed: int, subject: str, label: int, k: int) -> np.random.Generator:
    """A clip's own generator: depends only on what names the clip, so worker order does not matter."""
    return np.random.default_rng([seed, zlib.crc32(subject.encode()), label, k])


def split_subjects(subjects: list[str], val_fraction: float, seed: int) -> dict[str, str]:
    """subject -> "train" | "validation": a seeded shuffle, the first ~val_fraction to validation."""
    order = sorted(subjects)
    np.random.default_rng(seed).shuffle(order)
    num_val = min(len(order) - 1, max(1, round(val_fraction * len(order)))) if val_fraction > 0 else 0
    return {s: ("validation" if i < num_val else "train") for i, s in enumerate(order)}


@dataclasses.dataclass(frozen=True)
class _Job:
    identity: Identity
    label: int
    k: int
    seed: int
    out_dir: str
    split: str
    confusable: bool

    @property
    def relative_path(self) -> str:
        return f"{self.split}/{self.identity.subject}/{CLASSES[self.label]}_{self.k}.mp4"


def _write_job(job: _Job) -> dict:
    rng = clip_rng(job.seed, job.identity.subject, job.label, job.k)
    clip = render_clip(job.identity, job.label, rng, confusable=job.confusable)
    write_clip_mp4(os.path.join(job.out_dir, job.relative_path), clip)
    return {
        "path": job.relative_path,
        "label": job.label,
        "label_name": CLASSES[job.label],
        "subject": job.identity.subject,
        "split": job.split,
    }


# Settings added after corpora were written: a manifest without them was made with these values.
_SETTINGS_BEFORE_THEY_EXISTED = {"confusable": False}


def _existing_manifest(out_dir: Path, settings: dict) -> dict | None:
    """The manifest already in `out_dir` when all its files exist (None when there is none to reuse).

    A corpus made with other settings is not overwritten: its clips would mix with the new ones.
    """
    try:
        manifest = json.loads((out_dir / MANIFEST).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    manifest = {**_SETTINGS_BEFORE_THEY_EXISTED, **manifest}
    differing = sorted(key for key, value in settings.items() if manifest.get(key) != value)
    if differing:
        raise ConfigError(
            f"{out_dir / MANIFEST}: a demo corpus made with other settings ({', '.join(differing)}) is already "
            "there; choose another output folder or delete this one"
        )
    return manifest if all((out_dir / clip["path"]).is_file() for clip in manifest["clips"]) else None


def write_demo_corpus(
    out_dir: str | os.PathLike,
    *,
    clips_per_subject_and_class: int = 1,
    val_fraction: float = 0.2,
    seed: int = 0,
    num_workers: int | None = None,
    identities: list[Identity] | None = None,
    confusable: bool = False,
) -> list[dict]:
    """Write the demo corpus under `out_dir` and return its clips' manifest entries.

    Files go to `out_dir/<split>/<subject>/<class>_<k>.mp4`; `out_dir/manifest.json` lists them
    ({"path", "label", "label_name", "subject", "split"}) with the settings, the subjects and the
    number of dropped identities. Splits are subject-disjoint. A complete corpus made with the same
    settings is returned as it is. `identities` defaults to every scikit-image face dlib finds (tests
    pass a few). `confusable`: the variant whose faces and voices each leave two pairs of classes alike
    (settings.FACE_CONFUSIONS, VOICE_CONFUSIONS). Workers are spawned, so a script calling this needs an `if __name__ == "__main__":` guard.
    """
    if clips_per_subject_and_class < 1 or not 0 <= val_fraction < 1:
        raise ConfigError(
            f"demo corpus: need clips_per_subject_and_class >= 1 and 0 <= val_fraction < 1, "
            f"got {clips_per_subject_and_class} and {val_fraction}"
        )
    if identities is not None and len({i.subject for i in identities}) != len(identities):
        raise ConfigError("demo corpus: two identities share a subject id; their clips would overwrite each other")
    out_dir = Path(out_dir)
    settings = {
        "seed": seed,
        "clips_per_subject_and_class": clips_per_subject_and_class,
        "val_fraction": val_fraction,
        "identities": "scikit-image" if identities is None else sorted(i.subject for i in identities),
        "confusable": confusable,
    }
    if (manifest := _existing_manifest(out_dir, settings)) is not None:
        return manifest["clips"]  # checked before loading identities: a rerun costs no face detection
    dropped = 0
    if identities is None:
        identities, dropped = load_identities()
    subjects = sorted(i.subject for i in identities)
    splits = split_subjects(subjects, val_fraction, seed)
    jobs = [
        _Job(identity, label, k, seed, str(out_dir), splits[identity.subject], confusable)
        for identity in identities
        for label in range(len(CLASSES))
        for k in range(clips_per_subject_and_class)
    ]
    clips = _run_jobs(jobs, num_workers or os.cpu_count() or 1)
    clips.sort(key=lambda c: c["path"])
    manifest = {**settings, "subjects": subjects, "classes": list(CLASSES), "dropped_identities": dropped}
    manifest["clips"] = clips
    out_dir.mkdir(parents=True, exist_ok=True)
    partial = out_dir / (MANIFEST + ".partial")
    partial.write_text(json.dumps(manifest, indent=1))
    partial.replace(out_dir / MANIFEST)  # the manifest appears only once every clip is on disk
    return clips


class _WriteClips(beam.DoFn):
    def setup(self):
        cv2.setNumThreads(1)  # one core per worker: the workers fill the cores

    def process(self, job: _Job):
        yield _write_job(job)


def _write_entries(entries: list[dict], path: str) -> None:
    Path(path).write_text(json.dumps(entries))


def _run_jobs(jobs: list[_Job], num_workers: int) -> list[dict]:
    """Write every job's clip on the runner the builders use (Beam's DirectRunner, multi_processing
    with `num_workers` worker processes); return their manifest entries.

    The workers are fresh processes with one BLAS thread each: they already fill the cores, and
    OpenBLAS threads fighting over them were 10x slower on the small solves here. Fresh processes
    (not forks) also keep clear of any threads the caller runs (JAX's, say).
    """
    options = PipelineOptions(
        runner="DirectRunner", direct_running_mode="multi_processing", direct_num_workers=num_workers
    )
    with tempfile.TemporaryDirectory() as tmp, _single_threaded_libraries():
        entries = os.path.join(tmp, "entries.json")
        with beam.Pipeline(options=options) as pipeline:
            _ = (
                pipeline
                | "jobs" >> beam.Create(jobs)
                | "write clips" >> beam.ParDo(_WriteClips())
                | "gather" >> beam.combiners.ToList()
                | "manifest entries" >> beam.Map(_write_entries, entries)
            )
        return json.loads(Path(entries).read_text())


_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


@contextlib.contextmanager
def _single_threaded_libraries():
    """Child processes started inside see one-thread settings for the numeric libraries."""
    saved = {name: os.environ.get(name) for name in _THREAD_VARIABLES}
    os.environ.update({name: "1" for name in _THREAD_VARIABLES})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
