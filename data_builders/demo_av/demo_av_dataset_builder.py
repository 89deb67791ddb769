"""demo_av: a small audio-visual emotion corpus made from real face photographs, for the demo.

The raw corpus (MP4 clips with an audio track, see `synth.py`) is generated into the download
folder the first time, or read from `--manual-dir` if a previously generated copy is given. From
there on it goes through exactly the preprocessing real corpora use.
"""

from __future__ import annotations

import json
import pathlib

import tensorflow_datasets as tfds

from data_builders import common, one_pool
from data_builders.demo_av import synth
from fer_jax.preprocess.clip import ClipConfig


class DemoAvConfig(tfds.core.BuilderConfig):
    def __init__(self, *, clip: ClipConfig, **kwargs):
        super().__init__(**kwargs)
        self.clip = clip


class Builder(common.WritesBuildReport, tfds.core.GeneratorBasedBuilder):
    """Synthetic expressions (7 classes) on real faces, subject-disjoint train/validation."""

    VERSION = common.RECORDS_VERSION
    RELEASE_NOTES = common.RECORDS_RELEASE_NOTES
    BUILDER_CONFIGS = [
        DemoAvConfig(
            name="gray64_t8",
            description="64x64 grayscale aligned faces, 8 frames (first and last kept), 2 s log-mel at 16 kHz.",
            clip=ClipConfig(num_frames=8, size=64, grayscale=True, audio_seconds=2.0),
        )
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Nothing to download: the raw clips are generated from scikit-image's face photographs. "
        "Optionally pass --manual-dir pointing at a folder with a previously generated manifest.json."
    )

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=common.clip_features(self.builder_config.clip, synth.CLASSES),
            supervised_keys=None,
            homepage="https://scikit-image.org/docs/stable/api/skimage.data.html",
        )

    def _raw_dir(self, dl_manager) -> pathlib.Path:
        manual = pathlib.Path(str(dl_manager._manual_dir)) if dl_manager._manual_dir else None
        if manual and (manual / "manifest.json").is_file():
            return manual
        raw = pathlib.Path(str(dl_manager.download_dir)) / "demo_av_raw"
        synth.write_demo_corpus(raw)
        return raw

    def _split_generators(self, dl_manager):
        raw = self._raw_dir(dl_manager)
        manifest = json.loads((raw / "manifest.json").read_text())
        self.report = one_pool.CorpusReport()
        items = {"train": [], "validation": []}
        for entry in manifest["clips"]:
            items[entry["split"]].append(
                common.ClipItem(
                    key=entry["path"], path=str(raw / entry["path"]), label=entry["label"], subject=entry["subject"]
                )
            )
        # One worker pool for both splits: a spawned worker takes seconds to import and load dlib.
        streams = one_pool.split_generators(items, self.builder_config.clip, self.report)
        return {split: self._generate_examples(stream) for split, stream in streams.items()}

    def _generate_examples(self, stream):
        yield from stream
