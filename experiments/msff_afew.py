"""MSFF on AFEW, train / validation (Lu et al., "Multiple Spatio-temporal Feature Learning for
Video-based Emotion Recognition in the Wild", ICMI 2018, EmotiW).

Published: AFEW validation accuracy of each branch and of the fusion: see the paper (tables of
branch and fusion results). Three branches fused at score level (`fusion="score"`, the paper's
score-matrix fusion; "concat", "attention" or "fbp" are one line away): a per-frame ResNet-18 with
a BLSTM over the 16 frames, C3D over the clip, and a VGG-style CNN with a BLSTM over the log-mel
spectrogram with its deltas. Records: `fer-jax build afew/rgb224_t16_av` (16 RGB 224x224 faces).
C3D was defined on 112x112 crops: its first pooling here is 4x4 in space (2x2 in C3D), which
gives the same 4x4x512 map at fc6 from 224x224 faces. Adam 1e-4, 80 epochs, best validation epoch.
The width knobs (`width`, `conv_blocks`, `fc_features`, `lstm_hidden`) only shrink the model for tests.
"""

from _common import RGB224_T16, experiment

C3D_POOLS_224 = ((1, 4, 4), (2, 2, 2), (2, 2, 2), (2, 2, 2), (2, 2, 2))


def get_config():
    return experiment(
        "msff_afew", "afew/rgb224_t16_av", "msff", shape=RGB224_T16, num_classes=7,
        model_kwargs={
            "fusion": "score",
            "cnn_blstm": {"backbone": "resnet18", "backbone_options": {"width": 1.0}, "lstm_hidden": 128},
            "c3d": {"frames": 16, "size": 224, "pool_windows": C3D_POOLS_224,
                    "conv_blocks": ((64,), (128,), (256, 256), (512, 512), (512, 512)), "fc_features": (4096, 4096)},
            "audio": {"feature": "log_mel_deltas", "conv_blocks": ((64, 64), (128, 128), (256, 256), (512, 512)),
                      "lstm_hidden": 128},
        },
    )
