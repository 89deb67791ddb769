"""Audio-visual image fusion (`av_image_inception`: the aligned face beside a picture of the
waveform, one Inception CNN) on RAVDESS speech, 6 actor-disjoint folds of 4 actors
(`fer-jax build ravdess/face_waveform`; data_builders/ravdess).

Published: none; no paper we implement reports this model on RAVDESS. `fer-jax cv` trains on five
folds and tests on the sixth, six times.
"""

from _common import av_image, folds


def get_config():
    return av_image("ravdess", num_classes=8, corpus_folds=folds(6))
