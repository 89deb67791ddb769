"""demo_av: a small audio-visual emotion corpus made from real face photographs, for the demo.

The raw corpus (MP4 clips with an audio track, see `synth.py`) is generated into the download
folder the first time, or read from `--manual-dir` if a previously generated copy is given. From
there on it goes through exactly the preprocessing real corpora use.
"""

from __future__ import annotations

import json
import pathlib


from data_builders import base, common
from data_builders.demo_av import synth
from fer_jax.preprocess.clip import ClipConfig


class Builder(base.ClipCorpusBuilder):
    """Synthetic expressions (7 classes) on real faces, subject-disjoint train/validation."""

    CLASS_NAMES = synth.CLASSES
    HOMEPAGE = "https://scikit-image.org/docs/stable/api/skimage.data.html"
    BUILDER_CONFIGS = [
        base.ClipCorpusConfig(
            name="gray64_t8",
            description="64x64 grayscale aligned faces, 8 frames (first and last kept), 2 s log-mel at 16 kHz.",
            clip=ClipConfig(num_frames=8, size=64, grayscale=True, audio_seconds=2.0),
        )
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Nothing to download: the raw clips are generated from scikit-image's face photographs. "
        "Optionally pass --manual-dir pointing at a folder with a previously generated manifest.json."
    )

    def manual_folder(self, dl_manager) -> pathlib.Path:
        """The raw corpus: --manual-dir if it holds a generated one, else generated now."""
        manual = pathlib.Path(str(dl_manager._manual_dir)) if dl_manager._manual_dir else None
        if manual and (manual / "manifest.json").is_file():
            return manual
        raw = pathlib.Path(str(dl_manager.download_dir)) / "demo_av_raw"
        synth.write_demo_corpus(raw)
        return raw

    def find_clips(self, manual_dir, report):
        manifest = json.loads((manual_dir / "manifest.json").read_text())
        items = {"train": [], "validation": []}
        for entry in manifest["clips"]:
            items[entry["split"]].append(
                common.ClipItem(
                    key=entry["path"], path=str(manual_dir / entry["path"]), label=entry["label"],
                    subject=entry["subject"],
                )
            )
        return items
