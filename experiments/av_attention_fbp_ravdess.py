"""Audio-video attention + FBP (experiments/av_attention_fbp_afew.py) on RAVDESS speech, 6
actor-disjoint folds of 4 actors (`fer-jax build ravdess/rgb224_t16_av`; data_builders/ravdess).

Published: none of the four papers reports RAVDESS; this is the AFEW model on a lab corpus with 8
emotions. `fer-jax cv` trains on five folds and tests on the sixth, six times.
"""

from av_attention_fbp_afew import MODEL

from _common import RGB224_T16, experiment, folds


def get_config():
    return experiment("av_attention_fbp_ravdess", "ravdess/rgb224_t16_av", "av_attention_fbp", shape=RGB224_T16,
                      num_classes=8, model_kwargs=MODEL, folds=folds(6))
