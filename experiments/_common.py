"""What the paper-protocol configs in this folder share: the record shapes of each builder config,
the augmentation of the 3D-CNN + ConvLSTM paper, and one function that assembles an experiment.

A protocol file is then a docstring (paper, protocol, published figure) and one call:

    def get_config():
        return experiment("cnn3d_convlstm_ck_plus", "ck_plus/gray64_t8", "cnn3d_convlstm", folds=folds(10), ...)

Every config is runnable as `fer-jax train --config experiments/NAME.py` (with folds: the first
run, fold0 held out) and, with folds or repeated runs, `fer-jax cv --config experiments/NAME.py`.
"""

from __future__ import annotations

import copy
from typing import Any

from data_builders import DEFAULT_DATA_DIR
from data_builders.base import FACE_WAVEFORM_FRAME
from fer_jax.config import AugmentConfig, DataConfig, ExperimentConfig, ModelConfig, TrainConfig, leave_one_fold_out

# (frames, size, channels) of the records each builder config writes (check_source_matches checks them).
GRAY64_T8 = (8, 64, 1)
RGB224_T16 = (16, 224, 3)
LEMHI = (32, 112, 1)  # up to 32 frames with a frame_mask, and the 112x112 LEMHI image
SEND_2HZ = (360, 64, 1)  # one frame per 0.5 s rating step, 360 steps
FACE_WAVEFORM = (3, 128, 1)  # data_builders.base.face_waveform_clip: 3 faces beside the waveform picture

NO_AUGMENT = AugmentConfig(enabled=False)
# The 3D-CNN + ConvLSTM paper's x14: each clip as it is or rotated by +-5, +-10 or +-15 degrees (7
# orientations), each flipped or not (x2). The paper writes the 14 copies to disk; here one of them
# is drawn per clip and step: rotate 6 clips in 7, flip half, so each copy has probability 1/14.
X14 = AugmentConfig(rotations_deg=(5.0, 10.0, 15.0), rotate_prob=6 / 7, flip_prob=0.5)
X14_COPIES = 14


def folds(n: int) -> tuple[str, ...]:
    return tuple(f"fold{k}" for k in range(n))


def repeats(train_split: str, val_split: str, n: int) -> tuple[tuple[str, str, str], ...]:
    """n runs on the same split pair; `fer-jax cv` gives the k-th repetition seed + k."""
    return tuple((f"run{k}", train_split, val_split) for k in range(n))


def experiment(
    name: str,
    dataset: str,
    model: str,
    *,
    shape: tuple[int, int, int],
    num_classes: int,
    model_kwargs: dict[str, Any] | None = None,
    train_split: str = "train",
    val_split: str = "validation",
    folds: tuple[str, ...] = (),
    cv_runs: tuple[tuple[str, str, str], ...] = (),
    augment: AugmentConfig = NO_AUGMENT,
    learning_rate: float = 1e-4,
    num_epochs: int = 80,
    eval_every_epochs: int = 1,
    batch_size: int = 32,
) -> ExperimentConfig:
    """An ExperimentConfig reading `dataset` (built by `fer-jax build DATASET`) into workdir/NAME.

    With `folds`, the protocol is leave-one-fold-out over them and `fer-jax train` runs the first
    fold; `cv_runs` names other runs explicitly.
    """
    if folds:
        cv_runs = leave_one_fold_out(folds)
    if cv_runs:
        _, train_split, val_split = cv_runs[0]
    frames, size, channels = shape
    return ExperimentConfig(
        name=name,
        workdir=f"workdir/{name}",
        data=DataConfig(
            dataset=dataset, data_dir=DEFAULT_DATA_DIR, train_split=train_split, val_split=val_split,
            num_classes=num_classes, frames=frames, size=size, channels=channels,
            global_batch_size=batch_size, eval_batch_size=batch_size, cv_runs=cv_runs,
        ),
        # A deep copy: `--set model.kwargs.a.b=...` edits nested dicts, which configs may share.
        model=ModelConfig(name=model, kwargs=copy.deepcopy(dict(model_kwargs or {}))),
        augment=augment,
        train=TrainConfig(learning_rate=learning_rate, num_epochs=num_epochs, eval_every_epochs=eval_every_epochs),
    )


# --- Hu et al. 2019: LEMHI-CNN and CNN-CTSLSTM, trained apart on the same records, then fused late.
# Both read the builders' `lemhi` config: the LEMHI image (LEMHI-CNN) and up to 32 frames (CNN-CTSLSTM).
LEMHI_CORPORA = {
    # corpus: (num_classes, protocol: folds or the official train/validation split)
    "ck_plus": (7, folds(10)),
    "mmi": (6, folds(10)),
    "afew": (7, ()),
}
# VGG-16 with batch norm (our choice): without it, trained from scratch, the 13 convolutions feeding
# CNN-CTSLSTM's LSTM leave it at chance (its loss stays at ln(classes) on the dummy corpora).
_VGG_BN = {"width": 1.0, "batch_norm": True}
LEMHI_MODELS = {
    "lemhi_cnn": {"backbone": "vgg", "backbone_kwargs": _VGG_BN, "dropout": 0.5},
    "cnn_ctslstm": {"backbone": "vgg", "backbone_kwargs": _VGG_BN, "segments": 3, "lstm_hidden": 512, "dropout": 0.5},
}


def hu2019(model: str, corpus: str) -> ExperimentConfig:
    """One of the two models of Hu et al. 2019 ("Video facial emotion recognition based on local
    enhanced motion history image and CNN-CTSLSTM networks") on one corpus's `lemhi` records
    (`fer-jax build CORPUS/lemhi`). The protocol trains both on the same records, then fuses their
    class scores with weights found by random search on the validation split (fer_jax/eval/late_fusion.py):

        fer-jax cv --config experiments/lemhi_cnn_ck_plus.py      (AFEW: fer-jax train)
        fer-jax cv --config experiments/cnn_ctslstm_ck_plus.py
        fer-jax fuse workdir/lemhi_cnn_ck_plus workdir/cnn_ctslstm_ck_plus

    The paper's optimiser settings are not restated here: Adam 1e-4, 100 epochs.
    """
    num_classes, corpus_folds = LEMHI_CORPORA[corpus]
    return experiment(
        f"{model}_{corpus}", f"{corpus}/lemhi", model, shape=LEMHI, num_classes=num_classes,
        model_kwargs=LEMHI_MODELS[model],
        folds=corpus_folds, num_epochs=100,
    )


# --- The audio-visual image fusion model: the face beside the waveform picture, one Inception CNN.
# It reads the middle of the three stored faces; the rest are the model's defaults (3 stages of 32,
# 64 and 128 filters, side by side, dropout 0.5).
AV_IMAGE_MODEL = {"in_channels": 1, "image_size": 128, "frame_index": FACE_WAVEFORM_FRAME}


def av_image(corpus: str, num_classes: int, corpus_folds: tuple[str, ...]) -> ExperimentConfig:
    """av_image_inception on CORPUS's face_waveform records (`fer-jax build CORPUS/face_waveform`),
    leave-one-fold-out over `corpus_folds` (`fer-jax cv`)."""
    return experiment(f"av_image_{corpus}", f"{corpus}/face_waveform", "av_image_inception", shape=FACE_WAVEFORM,
                      num_classes=num_classes, model_kwargs=AV_IMAGE_MODEL, folds=corpus_folds)
