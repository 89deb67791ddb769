"""Continuous valence on SEND (Stanford Emotional Narratives Dataset), train / validation.

Published: the SEND paper (Ong et al., IEEE Trans. Affective Computing 2021) reports CCC of its
baselines on validation and test: see the paper. Per-modality projections of the face frames and
the log-mel spectrogram at the 2 Hz rating rate, an LSTM with local attention over a 10-step window,
a tanh valence per step; trained with 1 - CCC and scored by the mean per-video CCC (`fer-jax cv`
and `fer-jax eval` report CCC). Records: `fer-jax build send/gray64_2hz`. Adam 1e-4, 80 epochs.
"""

from _common import SEND_2HZ, experiment


def get_config():
    return experiment(
        "send_valence", "send/gray64_2hz", "send_valence_lstm", shape=SEND_2HZ, num_classes=1,
        model_kwargs={"modalities": ["video", "audio"], "frames_per_step": 1, "mel_frames_per_step": 50,
                      "frame_backbone_kwargs": {"width": 1.0}, "projection_dim": 64, "lstm_hidden": 128, "window": 10},
        batch_size=8,
    )
