"""Audio-video attention + FBP (experiments/av_attention_fbp_afew.py) on CREMA-D, 5 actor-disjoint
folds balanced by sex (`fer-jax build crema_d/rgb224_t16_av`; data_builders/crema_d).

Published: none of the four papers reports CREMA-D; this is the AFEW model on a lab corpus with 6
emotions. `fer-jax cv` trains on four folds and tests on the fifth, five times.
"""

from av_attention_fbp_afew import MODEL

from _common import RGB224_T16, experiment, folds


def get_config():
    return experiment("av_attention_fbp_crema_d", "crema_d/rgb224_t16_av", "av_attention_fbp", shape=RGB224_T16,
                      num_classes=6, model_kwargs=MODEL, folds=folds(5))
