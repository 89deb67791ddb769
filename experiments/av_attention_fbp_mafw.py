"""Audio-video attention + FBP (experiments/av_attention_fbp_afew.py) on MAFW's 11 single-label
classes, the owners' 5 folds (`fer-jax build mafw/rgb224_t16_av`; data_builders/mafw).

Published: none for this model on MAFW (Zhou et al. report AFEW); compare with the leading
audio-visual systems' WAR/UAR in docs/corpora/mafw.md. The AFEW model and recipe; MAFW's clips
without sound (21 of 10,045 by HiCMAE's count) are skipped as no_audio in these records. `fer-jax
cv` trains on four folds and tests on the fifth, five times.
"""

from av_attention_fbp_afew import MODEL

from _common import RGB224_T16, experiment, folds


def get_config():
    return experiment("av_attention_fbp_mafw", "mafw/rgb224_t16_av", "av_attention_fbp", shape=RGB224_T16,
                      num_classes=11, model_kwargs=MODEL, folds=folds(5))
