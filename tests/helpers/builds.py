"""What the builder tests share: command-line builds of a dummy corpus (`fer-jax build`, `tfds build`)
started in the background, and readers of their reports and records.

A dummy build spends most of its time starting Python (TensorFlow, Beam, OpenCV, dlib, the landmark
model), so a test module starts its builds early and beside each other, and asks for a result when
it needs it.
"""

from __future__ import annotations

import importlib.util
import json
import pathlib
import subprocess
import sys

import tensorflow_datasets as tfds

ROOT = pathlib.Path(__file__).resolve().parents[2]

# Beam's DirectRunner with two worker processes: clips are preprocessed (and bad files found) in
# processes other than the one that lists them and writes the report.
MULTI_PROCESSING = "direct_running_mode=multi_processing,direct_num_workers=2"


def fer_jax_command() -> list[str]:
    # The CLI module of this checkout, not the environment's `fer-jax` console script: that one
    # calls whatever entry point the last `pip install` of some checkout wrote into it.
    return [sys.executable, "-m", "fer_jax.cli"]


# `tfds build` through its build command, with the same flags and code (the `tfds` entry point
# imports all its commands, and build_croissant needs mlcroissant, which this environment may lack).
_TFDS_BUILD = (
    "from absl import app; from tensorflow_datasets.scripts.cli import build, cli_utils; "
    "app.run(lambda args: args.execute(), flags_parser=cli_utils.make_flags_parser(build.Args, 'tfds build'))"
)


def tfds_build_command() -> list[str]:
    script = pathlib.Path(sys.executable).with_name("tfds")
    if script.is_file() and all(importlib.util.find_spec(m) for m in ("apache_beam", "mlcroissant")):
        return [str(script), "build"]
    return [sys.executable, "-c", _TFDS_BUILD]


class BackgroundBuild:
    """A build command started now and awaited later. Output goes to files, not pipes, so a chatty
    build cannot block."""

    def __init__(self, command: list[str], log_dir: pathlib.Path):
        self.command = command
        log_dir.mkdir(parents=True, exist_ok=True)
        self._out, self._err = (open(log_dir / name, "w+") for name in ("stdout.txt", "stderr.txt"))
        self._process = subprocess.Popen(command, cwd=ROOT, stdout=self._out, stderr=self._err, text=True)
        self._done: subprocess.CompletedProcess | None = None

    def result(self, timeout: float = 600) -> subprocess.CompletedProcess:
        if self._done is None:
            returncode = self._process.wait(timeout)
            outputs = []
            for f in (self._out, self._err):
                f.seek(0)
                outputs.append(f.read())
                f.close()
            self._done = subprocess.CompletedProcess(self.command, returncode, *outputs)
        return self._done

    def stop(self):
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        for f in (self._out, self._err):
            f.close()


def fer_jax_build(name: str, manual_dir: pathlib.Path, data_dir: pathlib.Path, *flags: str) -> BackgroundBuild:
    """Start `fer-jax build NAME --manual-dir ... --data-dir ... [flags, e.g. --runner direct]`."""
    command = fer_jax_command() + ["build", name, "--manual-dir", str(manual_dir), "--data-dir", str(data_dir), *flags]
    return BackgroundBuild(command, data_dir / "logs")


def tfds_build(corpus: str, config: str, manual_dir: pathlib.Path, data_dir: pathlib.Path, *flags: str) -> BackgroundBuild:
    """Start `tfds build data_builders/<corpus> --config ... --manual_dir ... --data_dir ... [flags]`
    (the builders write array_record files unless told otherwise)."""
    command = tfds_build_command() + [f"data_builders/{corpus}", "--config", config]
    command += ["--manual_dir", str(manual_dir), "--data_dir", str(data_dir), *flags]
    return BackgroundBuild(command, data_dir / "logs")


def build_report(name: str, data_dir: pathlib.Path) -> dict:
    """build_report.json of a build of NAME (corpus/config) into data_dir ({} if there is none)."""
    corpus, config = name.split("/")
    reports = list((pathlib.Path(data_dir) / corpus / config).glob("*/build_report.json"))
    return json.loads(reports[0].read_text()) if reports else {}


class Builds:
    """`fer-jax build NAME` and `tfds build` of the same config from the same dummy corpus, started
    in the background on entering, each into its own data dir."""

    def __init__(self, name: str, manual_dir: pathlib.Path, tmp: pathlib.Path):
        self.name = name
        self.corpus, self.config = name.split("/")
        self.fer_jax_dir, self.tfds_dir = tmp / "fer_jax", tmp / "tfds"
        self._manual_dir = manual_dir
        self._running: dict[str, BackgroundBuild] = {}

    def __enter__(self) -> "Builds":
        self._running["fer_jax"] = fer_jax_build(self.name, self._manual_dir, self.fer_jax_dir)
        self._running["tfds"] = tfds_build(self.corpus, self.config, self._manual_dir, self.tfds_dir)
        return self

    def __exit__(self, *exc):
        for build in self._running.values():
            build.stop()

    def fer_jax(self) -> tuple[int, dict]:
        """(exit status, build_report.json) of `fer-jax build`, once it has finished."""
        return self._running["fer_jax"].result().returncode, build_report(self.name, self.fer_jax_dir)

    def tfds(self) -> tuple[int, dict]:
        """(exit status, build_report.json) of `tfds build`, once it has finished."""
        return self._running["tfds"].result().returncode, build_report(self.name, self.tfds_dir)

    def log(self, which: str) -> str:
        done = self._running[which].result()
        return (done.stdout + done.stderr)[-4000:]


def tfds_builder_test_case(builder, example_dir: pathlib.Path, config: str, splits: dict):
    """TFDS's own builder checks (`tfds.testing.DatasetBuilderTestCase`) of one config. They read
    through as_dataset, which ArrayRecord files do not support, so this case builds TFRecords."""

    class BuilderTestCase(tfds.testing.DatasetBuilderTestCase):
        DATASET_CLASS = builder
        EXAMPLE_DIR = example_dir  # what TFDS calls the dummy data folder
        BUILDER_CONFIG_NAMES_TO_TEST = [config]
        SPLITS = splits
        SKIP_CHECKSUMS = True

        def _make_builder(self, config=None):
            return self.dataset_class(data_dir=self.tmp_dir, config=config, version=self.VERSION,
                                      file_format="tfrecord")

    return BuilderTestCase


def background_builds(tmp_path_factory, name: str, manual_dir: pathlib.Path, tfds_config: str,
                      fer_jax_flags=(), tfds_flags=()):
    """For a module fixture: starts `fer-jax build NAME` and `tfds build CORPUS --config tfds_config`
    from the same dummy corpus in the background, yields {"fer_jax": ..., "tfds": ...}, stops both."""
    corpus = name.split("/")[0]
    started = {
        "fer_jax": fer_jax_build(name, manual_dir, tmp_path_factory.mktemp("fer_jax_build"), *fer_jax_flags),
        "tfds": tfds_build(corpus, tfds_config, manual_dir, tmp_path_factory.mktemp("tfds_build"), *tfds_flags),
    }
    yield started
    for build in started.values():
        build.stop()


def build_in_process(tmp_path_factory, name: str, manual_dir: pathlib.Path) -> tuple[pathlib.Path, int]:
    """(data dir, exit status) of `fer-jax build NAME --manual-dir manual_dir`, run in this process."""
    from fer_jax import cli

    data_dir = tmp_path_factory.mktemp("tfds")
    return data_dir, cli.main(["build", name, "--manual-dir", str(manual_dir), "--data-dir", str(data_dir)])


def finished_build(build: BackgroundBuild, name: str) -> tuple[pathlib.Path, subprocess.CompletedProcess, dict]:
    """(data dir, finished process, build_report.json) of a background `fer-jax build NAME`."""
    done = build.result()
    data_dir = pathlib.Path(done.args[done.args.index("--data-dir") + 1])
    return data_dir, done, build_report(name, data_dir)


def relative(path: str) -> str:
    """A path from a build report, relative to the repository."""
    return pathlib.Path(path).resolve().relative_to(ROOT).as_posix()


def text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def records(name: str, data_dir, split: str) -> list[dict]:
    return list(tfds.data_source(name, split=split, data_dir=str(data_dir), download=False))


def subjects_of(name: str, data_dir, split: str) -> set[str]:
    return {text(r["subject"]) for r in records(name, data_dir, split)}


def train_two_steps(name: str, data_dir, train_split: str, val_split: str, num_classes: int, workdir,
                    model: str = "cnn3d_convlstm") -> dict:
    """Two steps of the trainer on the records with a tiny 3D-CNN + ConvLSTM (as tests/test_train.py's;
    `model` "cnn3d_convlstm_score" for a score per clip)."""
    import jax

    from fer_jax.config import AugmentConfig, DataConfig, ExperimentConfig, ModelConfig, TrainConfig
    from fer_jax.train.loop import train

    config = ExperimentConfig(
        name=name.replace("/", "_"),
        workdir=str(workdir),
        data=DataConfig(dataset=name, data_dir=str(data_dir), train_split=train_split, val_split=val_split,
                        num_classes=num_classes, frames=8, size=64, global_batch_size=4, eval_batch_size=4),
        model=ModelConfig(model, {"frames": 8, "size": 64, "conv_features": [4, 8, 8], "convlstm_filters": 4}),
        augment=AugmentConfig(),
        train=TrainConfig(learning_rate=3e-3, max_steps=2, log_every_steps=1),
    )
    with jax.default_prng_impl("rbg"):  # rbg keys compile to less code; the records are under test
        results, _ = train(config)
    return results
