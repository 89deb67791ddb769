"""Audio-visual image fusion (`av_image_inception`) on BP4D+, BigSmall's 3 subject-disjoint folds
(`fer-jax build bp4d_plus/face_waveform`; data_builders/bp4d_plus). BP4D+ has no audio: the picture
beside the face draws the task's blood-pressure wave, so this is the model's image fusion applied
to a physiological signal, not to sound.

Published: none; no paper we implement reports this model on BP4D+, and no stored source reports
classifying BP4D+'s ten tasks from faces. `fer-jax cv` trains on two folds and tests on the third.
"""

from _common import av_image, folds


def get_config():
    return av_image("bp4d_plus", num_classes=10, corpus_folds=folds(3))
