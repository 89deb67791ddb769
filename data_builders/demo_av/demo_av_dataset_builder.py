"""demo_av: a small audio-visual emotion corpus made from real face photographs, for the demo and the zoo.

The raw corpus (MP4 clips with an audio track, see `synth`) is generated into the download folder
the first time, or read from `--manual-dir` if a previously generated copy is given. From there on
it goes through exactly the preprocessing real corpora use.

Two raw corpora, one per kind of config: the main one (`gray64_t8`, `fer-jax demo`; `lemhi64`),
where face and voice each tell all seven classes apart, and the confusable variant
(`confusable_*`), where each alone leaves two pairs of classes alike (synth.settings), for showing
what fusing them is worth (`fer-jax zoo`).
"""

from __future__ import annotations

import json
import pathlib


from data_builders import base, common
from data_builders.demo_av import synth
from fer_jax.errors import ConfigError
from fer_jax.preprocess.clip import ClipConfig

_AUDIO_SECONDS = 2.0
# The confusable configs keep the longest clip's sound (24 frames, 0.96 s), not 2 s, of which more
# than half would be padding: a waveform picture would have the voice in its first half, a few
# pixels wide at the model's input, and the spectrogram CNNs would spend half their time on silence.
_LONGEST_CLIP_SECONDS = synth.MAX_FRAMES / synth.FPS
_CONFUSABLE = (
    "Confusable variant: faces show fear and surprise alike and anger and disgust alike, voices sound anger "
    "and happiness alike and sadness and neutral alike."
)


class Builder(base.ClipCorpusBuilder):
    """Synthetic expressions (7 classes) on real faces, subject-disjoint train/validation."""

    CLASS_NAMES = synth.CLASSES
    HOMEPAGE = "https://scikit-image.org/docs/stable/api/skimage.data.html"
    BUILDER_CONFIGS = [
        base.ClipCorpusConfig(
            name="gray64_t8",
            description="64x64 grayscale aligned faces, 8 frames (first and last kept), 2 s log-mel at 16 kHz.",
            clip=ClipConfig(num_frames=8, size=64, grayscale=True, audio_seconds=_AUDIO_SECONDS),
        ),
        base.ClipCorpusConfig(
            name="lemhi64",
            description="Every frame (up to 24, the longest clip) as 64x64 grayscale faces with a frame mask, and "
            "their LEMHI (LEMHI-CNN + CNN-CTSLSTM; 64 px where the corpora's `lemhi` configs have 112).",
            clip=ClipConfig(size=64, grayscale=True, need_audio=False, variable_length=True,
                            max_frames=synth.MAX_FRAMES, lemhi=True),
        ),
        base.ClipCorpusConfig(
            name="confusable_rgb64_t8_av",
            description="8 RGB 64x64 faces and the log-mel with deltas of the longest clip's 0.96 s (MSFF, "
            "audio-video attention + FBP; 64 px where their corpora's configs have 224). " + _CONFUSABLE,
            clip=ClipConfig(num_frames=8, size=64, grayscale=False, audio_seconds=_LONGEST_CLIP_SECONDS,
                            audio_features=("log_mel_deltas",)),
            confusable=True,
        ),
        base.face_waveform_config(_LONGEST_CLIP_SECONDS, name="confusable_" + base.FACE_WAVEFORM, confusable=True),
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Nothing to download: the raw clips are generated from scikit-image's face photographs. "
        "Optionally pass --manual-dir pointing at a folder with a previously generated manifest.json "
        "(of the confusable variant for the confusable_* configs)."
    )

    @property
    def confusable(self) -> bool:
        return getattr(self.builder_config, "confusable", False)

    def manual_folder(self, dl_manager) -> pathlib.Path:
        """The raw corpus: --manual-dir if it holds a generated one, else generated now."""
        manual = pathlib.Path(str(dl_manager._manual_dir)) if dl_manager._manual_dir else None
        if manual and (manual / "manifest.json").is_file():
            return manual
        raw_name = "demo_av_confusable_raw" if self.confusable else "demo_av_raw"
        raw = pathlib.Path(str(dl_manager.download_dir)) / raw_name
        synth.write_demo_corpus(raw, confusable=self.confusable)
        return raw

    def find_clips(self, manual_dir, report):
        manifest = json.loads((manual_dir / "manifest.json").read_text())
        if manifest.get("confusable", False) != self.confusable:
            def kind(confusable):
                return "the confusable variant" if confusable else "the main corpus"
            raise ConfigError(
                f"{manual_dir / 'manifest.json'}: {kind(not self.confusable)} of the demo, but config "
                f"{self.builder_config.name} reads {kind(self.confusable)}"
            )
        items = {"train": [], "validation": []}
        for entry in manifest["clips"]:
            items[entry["split"]].append(
                common.ClipItem(
                    key=entry["path"], path=str(manual_dir / entry["path"]), label=entry["label"],
                    subject=entry["subject"],
                )
            )
        return items
