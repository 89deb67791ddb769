"""TFDS builders, one folder per corpus: `data_builders/<name>/<name>_dataset_builder.py`."""

from __future__ import annotations

import importlib
import os
import pathlib

from fer_jax.errors import ConfigError

DEFAULT_DATA_DIR = os.environ.get("FER_JAX_DATA_DIR", os.path.expanduser("~/tensorflow_datasets"))


def available() -> list[str]:
    here = pathlib.Path(__file__).parent
    return sorted(p.parent.name for p in here.glob("*/*_dataset_builder.py"))


def builder(name: str, data_dir: str | None = None):
    """The builder for `name` or `name/config`, reading and writing under `data_dir`."""
    corpus, _, config = name.partition("/")
    if corpus not in available():
        raise ConfigError(f"unknown corpus {corpus!r}; builders: {', '.join(available())}")
    module = importlib.import_module(f"data_builders.{corpus}.{corpus}_dataset_builder")
    return module.Builder(data_dir=data_dir or DEFAULT_DATA_DIR, config=config or None, file_format="array_record")


def is_built(name: str, data_dir: str | None = None) -> bool:
    return builder(name, data_dir).is_prepared()


def build(
    name: str,
    data_dir: str | None = None,
    manual_dir: str | None = None,
    runner: str = "direct",
    beam_options: str | None = None,
) -> dict:
    """Build the records of `name` (skipped when already built); return its build report.

    The preprocessing is a Beam pipeline (data_builders/base.py): `runner` is direct, dataflow,
    flink or spark, `beam_options` more Beam flags, e.g. "--project=p --region=r
    --temp_location=gs://b/tmp" or "--direct_num_workers=4". On the DirectRunner without options
    it takes one worker process per 16 clips, up to one per core.
    """
    import tensorflow_datasets as tfds

    from data_builders import beam_pipeline

    b = builder(name, data_dir)
    if manual_dir is not None and not _is_folder(manual_dir):
        raise ConfigError(f"--manual-dir {manual_dir}: no such folder. {b.MANUAL_DOWNLOAD_INSTRUCTIONS}")
    if b.is_prepared():
        return {"already_built": True, "data_dir": b.data_dir, **_read_report(b.data_dir)}
    options = None if runner == "direct" and not beam_options else beam_pipeline.pipeline_options(runner, beam_options)
    b.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir, beam_options=options))
    return {"already_built": False, "data_dir": b.data_dir, **b.report.to_dict()}


def _is_folder(path: str) -> bool:
    from etils import epath  # gs://... too, for a corpus in a bucket

    return epath.Path(path).is_dir()


def _read_report(data_dir: str) -> dict:
    import json

    from etils import epath

    path = epath.Path(data_dir) / "build_report.json"
    return json.loads(path.read_text()) if path.is_file() else {}
