"""Audio-video attention + FBP (experiments/av_attention_fbp_afew.py) on DFEW, the owners' 5 folds
(`fer-jax build dfew/rgb224_t16_av`; data_builders/dfew).

Published: none for this model on DFEW (Zhou et al. report AFEW); compare with the leading systems'
WAR/UAR in docs/corpora/dfew.md. The AFEW model and recipe on DFEW's film clips with their sound
(clips without a sound track are skipped as no_audio in these records). `fer-jax cv` trains on four
folds and tests on the fifth, five times.
"""

from av_attention_fbp_afew import MODEL

from _common import RGB224_T16, experiment, folds


def get_config():
    return experiment("av_attention_fbp_dfew", "dfew/rgb224_t16_av", "av_attention_fbp", shape=RGB224_T16,
                      num_classes=7, model_kwargs=MODEL, folds=folds(5))
