"""`fer-jax zoo`: every method family trained on the demo corpus, with the audio-visual methods'
modality ablations and Hu et al.'s late fusion, in one table.

The video-only methods (3D-CNN + ConvLSTM, Hu et al.'s two models) train on the main demo corpus,
where the face alone tells all seven classes apart. The audio-visual methods train on its
confusable variant (data_builders/demo_av: faces show fear and surprise alike and anger and
disgust alike, voices anger and happiness and sadness and neutral), each as video only, audio
only, and both, so the table shows what fusing them is worth. Methods whose papers train their
networks apart and fuse their scores (Hu et al., MSFF) are trained that way: one entry per network,
fused by `fer-jax fuse`. Widths are narrowed and inputs are 64 px so the whole zoo trains on a
2-core CPU; the layer structure of each method is its paper's. It is a benchmark, run by hand and
recorded in benchmarks/zoo/, not part of the test suite (tests/test_zoo.py trains the three image
entries for two steps).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import pathlib
import time
from collections.abc import Sequence

from fer_jax.config import AugmentConfig, DataConfig, ExperimentConfig, ModelConfig, TrainConfig
from fer_jax.demo import DEMO_DATASET, DEMO_EPOCHS, DEMO_LEARNING_RATE, DEMO_MODEL
from fer_jax.errors import ConfigError

MAIN_LEMHI = "demo_av/lemhi64"
CONFUSABLE_RGB = "demo_av/confusable_rgb64_t8_av"
CONFUSABLE_FACE_WAVEFORM = "demo_av/confusable_face_waveform"
FULL, VIDEO_ONLY, AUDIO_ONLY = "full", "video only", "audio only"
# One network of a method whose paper trains its networks apart and fuses their scores (Hu et al.,
# MSFF): trained and reported on its own, fused by a LateFusion entry.
BRANCH = "branch"


@dataclasses.dataclass(frozen=True)
class Entry:
    """One model of the zoo: `role` FULL is the method with every input its paper uses."""

    name: str
    method: str
    inputs: str
    role: str
    dataset: str
    model: str
    model_kwargs: dict
    learning_rate: float = 2e-3
    lr_schedule: str = "constant"
    num_epochs: int = 20
    batch_size: int = 32
    augment: bool = True

    def config(self, workdir: str, data_dir: str) -> ExperimentConfig:
        frames, size, channels = record_shape(self.dataset)
        return ExperimentConfig(
            name=f"zoo_{self.name}",
            workdir=str(pathlib.Path(workdir) / self.name),
            data=DataConfig(dataset=self.dataset, data_dir=data_dir, num_classes=7, frames=frames, size=size,
                            channels=channels, global_batch_size=self.batch_size, eval_batch_size=64),
            # A deep copy: `--set model.kwargs.a.b=...` edits nested dicts, which entries share.
            model=ModelConfig(name=self.model, kwargs=copy.deepcopy(self.model_kwargs)),
            augment=AugmentConfig(enabled=self.augment),
            train=TrainConfig(learning_rate=self.learning_rate, lr_schedule=self.lr_schedule,
                              num_epochs=self.num_epochs, eval_every_epochs=self.num_epochs, log_every_steps=16),
        )


def record_shape(dataset: str) -> tuple[int, int, int]:
    """(frames, size, channels) of the records `dataset`'s builder config writes."""
    import data_builders

    clip = data_builders.builder(dataset).builder_config.clip
    return clip.clip_frames, clip.size, 1 if clip.grayscale else 3


@dataclasses.dataclass(frozen=True)
class LateFusion:
    """Hu et al.'s last step: `fer-jax fuse` of two trained entries."""

    name: str
    method: str
    inputs: str
    of: tuple[str, ...]
    role: str = FULL


# --- The methods, narrowed for a CPU.
# The frame and image CNNs end in a global average, so they get five blocks or stages, not three:
# then their last map (2x2 of a 64 px face) still says where on the face a feature lies. With
# three (an 8x8 map averaged), LEMHI-CNN, CNN-CTSLSTM, the attention model's frames and the image
# model's face stayed at 0.35-0.48; with five (tuning runs, docs/zoo.md) CNN-CTSLSTM reached 0.98,
# LEMHI-CNN 0.67, the attention model's frames 0.68 and the image model's face 0.62 (the last two
# of 0.71 possible on the confusable corpus).
_FIVE_BLOCK_VGG = {"blocks": ((16,), (32,), (64,), (64,), (64,)), "batch_norm": True}
_MSFF_BRANCHES = {
    "cnn_blstm": {"backbone": "resnet18", "backbone_options": {"width": 0.25}, "lstm_hidden": 32,
                  "standardize_clips": True},
    "c3d": {"frames": 8, "size": 64, "standardize_clips": True, "conv_blocks": ((8,), (16,), (32,), (64,)),
            "pool_windows": ((1, 2, 2), (2, 2, 2), (2, 2, 2), (2, 2, 2)), "fc_features": (128,)},
    "audio": {"feature": "log_mel_deltas", "conv_blocks": ((16,), (32,), (64,)), "lstm_hidden": 32},
}
_AV_ATTENTION = {"in_channels": 3, "standardize_clips": True,
                 "frame_backbone": "vgg", "frame_backbone_kwargs": _FIVE_BLOCK_VGG,
                 "audio_blocks": ((16,), (32,), (64,), (64,)), "attention_rank": 32}
# The last of the three stored faces: demo clips end on the held apex (the real corpora's experiments
# read the middle one, data_builders.base.FACE_WAVEFORM_FRAME, as their clips may end past it).
_AV_IMAGE = {"in_channels": 1, "image_size": 64, "frame_index": -1, "stage_filters": (16, 32, 64, 64, 64),
             "standardize_face": True, "batch_norm": True}
_LONGER = {"num_epochs": 30, "lr_schedule": "cosine"}

ENTRIES: tuple[Entry | LateFusion, ...] = (
    Entry("cnn3d_convlstm", "3D-CNN + ConvLSTM (Saurav et al. 2020)", "video", FULL, DEMO_DATASET, "cnn3d_convlstm",
          DEMO_MODEL, learning_rate=DEMO_LEARNING_RATE, num_epochs=DEMO_EPOCHS),  # `fer-jax demo`'s run
    Entry("lemhi_cnn", "LEMHI-CNN (Hu et al. 2019)", "LEMHI image", BRANCH, MAIN_LEMHI, "lemhi_cnn",
          {"backbone": "vgg", "backbone_kwargs": _FIVE_BLOCK_VGG, "dropout": 0.5}, augment=False),
    Entry("cnn_ctslstm", "CNN-CTSLSTM (Hu et al. 2019)", "video", BRANCH, MAIN_LEMHI, "cnn_ctslstm",
          {"backbone": "vgg", "backbone_kwargs": _FIVE_BLOCK_VGG, "segments": 3, "lstm_hidden": 64, "dropout": 0.5,
           "standardize_clips": True},
          augment=False),
    LateFusion("hu2019_late_fusion", "Hu et al. 2019: late fusion", "LEMHI image + video", ("lemhi_cnn", "cnn_ctslstm")),
    # MSFF trains its three networks apart and fuses their scores (Lu et al. 2018): each network
    # is msff's branch model, fused by `fer-jax fuse`; video only is the two visual networks' fusion.
    Entry("msff_cnn_blstm", "MSFF (Lu et al. 2018): CNN-BLSTM", "video", BRANCH, CONFUSABLE_RGB,
          "msff_cnn_blstm", _MSFF_BRANCHES["cnn_blstm"]),
    Entry("msff_c3d", "MSFF (Lu et al. 2018): C3D", "video", BRANCH, CONFUSABLE_RGB, "msff_c3d",
          _MSFF_BRANCHES["c3d"]),
    Entry("msff_audio", "MSFF (Lu et al. 2018)", "log-mel", AUDIO_ONLY, CONFUSABLE_RGB, "msff_audio_vgg_blstm",
          _MSFF_BRANCHES["audio"]),
    LateFusion("msff_video", "MSFF (Lu et al. 2018)", "video", ("msff_cnn_blstm", "msff_c3d"), role=VIDEO_ONLY),
    LateFusion("msff", "MSFF (Lu et al. 2018)", "video + log-mel", ("msff_cnn_blstm", "msff_c3d", "msff_audio")),
    # The two methods that fuse inside one network, and their ablations: 30 epochs with a cosine
    # decay. Their fused models at 20 epochs and a constant rate scattered across 0.85 from run to
    # run (docs/zoo.md); this recipe put them at 0.90-0.93 in tuning runs.
    Entry("av_attention_video", "Attention + FBP (Zhou et al. 2019)", "video", VIDEO_ONLY, CONFUSABLE_RGB,
          "av_attention_fbp", {**_AV_ATTENTION, "modalities": ["video"], "fusion": "concat"}, **_LONGER),
    Entry("av_attention_audio", "Attention + FBP (Zhou et al. 2019)", "log-mel", AUDIO_ONLY, CONFUSABLE_RGB,
          "av_attention_fbp", {**_AV_ATTENTION, "modalities": ["audio"], "fusion": "concat"}, **_LONGER),
    Entry("av_attention_fbp", "Attention + FBP (Zhou et al. 2019)", "video + log-mel", FULL, CONFUSABLE_RGB,
          "av_attention_fbp", _AV_ATTENTION, **_LONGER),
    Entry("av_image_face", "Face + waveform image", "face", VIDEO_ONLY, CONFUSABLE_FACE_WAVEFORM,
          "av_image_inception", {**_AV_IMAGE, "images": ["face"]}, **_LONGER),
    Entry("av_image_waveform", "Face + waveform image", "waveform image", AUDIO_ONLY, CONFUSABLE_FACE_WAVEFORM,
          "av_image_inception", {**_AV_IMAGE, "images": ["waveform"]}, **_LONGER),
    Entry("av_image", "Face + waveform image", "face + waveform image", FULL, CONFUSABLE_FACE_WAVEFORM,
          "av_image_inception", _AV_IMAGE, **_LONGER),
)
NAMES = tuple(e.name for e in ENTRIES)


def select(only: Sequence[str] = ()) -> list[Entry | LateFusion]:
    """The entries named in `only` (all when empty), with the entries a late fusion needs, in zoo order."""
    unknown = sorted(set(only) - set(NAMES))
    if unknown:
        raise ConfigError(f"zoo: unknown entries {', '.join(unknown)}; the zoo has {', '.join(NAMES)}")
    wanted = set(only or NAMES)
    for entry in ENTRIES:
        if isinstance(entry, LateFusion) and entry.name in wanted:
            wanted.update(entry.of)
    return [e for e in ENTRIES if e.name in wanted]


def run_zoo(workdir: str, data_dir: str | None = None, only: Sequence[str] = (), overrides: Sequence[str] = ()) -> dict:
    """Build the corpora the selected entries read, train each entry, fuse; return the zoo's report."""
    import data_builders
    from fer_jax.bench.bench import parameter_count
    from fer_jax.config import apply_overrides
    from fer_jax.runs.fuse import fuse_runs
    from fer_jax.train.loop import train

    start = time.perf_counter()
    data_dir = data_dir or data_builders.DEFAULT_DATA_DIR
    entries = select(only)
    builds = {}
    for dataset in dict.fromkeys(e.dataset for e in entries if isinstance(e, Entry)):
        began = time.perf_counter()
        report = data_builders.build(dataset, data_dir)
        builds[dataset] = {"seconds": time.perf_counter() - began, "already_built": report["already_built"],
                           "kept": report.get("kept"), "skipped": report.get("skipped", 0)}
    rows = []
    for entry in entries:
        row = {"name": entry.name, "method": entry.method, "inputs": entry.inputs, "role": entry.role}
        if isinstance(entry, LateFusion):
            fused = fuse_runs([str(pathlib.Path(workdir) / name) for name in entry.of],
                              str(pathlib.Path(workdir) / entry.name))["folds"][0]
            by_name = {r["name"]: r for r in rows}
            row.update(dataset=by_name[entry.of[0]]["dataset"], weights=fused["weights"],
                       parameters=sum(by_name[name]["parameters"] for name in entry.of),
                       val_accuracy=fused["fused"]["accuracy"], val_uar=fused["fused"]["uar"],
                       val_confusion=fused["fused"]["confusion"], num_val_clips=fused["num_val_clips"],
                       train_seconds=sum(by_name[name]["train_seconds"] for name in entry.of),
                       models={name: m for name, m in zip(entry.of, fused["models"])})
        else:
            config = apply_overrides(entry.config(workdir, data_dir), overrides)
            results, steps = train(config)
            row.update(dataset=entry.dataset, model=entry.model, parameters=parameter_count(steps),
                       val_accuracy=results["val_accuracy"], val_uar=results["val_uar"],
                       val_confusion=results.get("val_confusion"), train_seconds=results["train_seconds"],
                       epochs=results["epochs"], num_train_clips=results["num_train_clips"],
                       num_val_clips=results["num_val_clips"])
        rows.append(row)
    report = {"rows": rows, "builds": builds, "total_seconds": time.perf_counter() - start}
    (pathlib.Path(workdir) / "zoo.json").write_text(json.dumps(report, indent=2))
    return report


def format_zoo(report: dict) -> str:
    """The zoo's table: method, inputs, role, parameters, validation WAR and UAR, training seconds."""
    lines = [f"{'method':<38} {'inputs':<22} {'role':<10} {'params':>9} {'WAR':>6} {'UAR':>6} {'train s':>8}"]
    for r in report["rows"]:
        lines.append(f"{r['method']:<38} {r['inputs']:<22} {r['role']:<10} {r['parameters']:>9,} "
                     f"{r['val_accuracy']:>6.3f} {r['val_uar']:>6.3f} {r['train_seconds']:>8.1f}")
    lines.append(f"whole zoo: {report['total_seconds']:.0f} s")
    return "\n".join(lines)


def plot_zoo_confusions(report: dict, path: str) -> str | None:
    """One picture: for each audio-visual method trained, its video-only, audio-only and fused
    validation confusion matrices side by side (None when no such method was trained)."""
    from data_builders.demo_av.synth import CLASSES
    from fer_jax.eval.plots import plot_confusion_grid

    by_method: dict[str, dict[str, dict]] = {}
    for row in report["rows"]:
        if row.get("val_confusion") is not None:
            by_method.setdefault(row["method"], {})[row["role"]] = row
    rows = [[(f"{method}: {role} ({runs[role]['val_accuracy']:.2f})", runs[role]["val_confusion"])
             for role in (VIDEO_ONLY, AUDIO_ONLY, FULL)]
            for method, runs in by_method.items() if {VIDEO_ONLY, AUDIO_ONLY, FULL} <= set(runs)]
    return str(plot_confusion_grid(rows, CLASSES, path)) if rows else None
