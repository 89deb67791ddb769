"""Hu et al. 2019: CNN-CTSLSTM (a frame CNN, then an LSTM across temporal segments) on CK+, 10 subject-independent folds.

Published: the two models' late fusion on ck_plus: see the paper. Half of one protocol, fused
by `fer-jax fuse` with its partner; the steps are in experiments/_common.hu2019.
"""

from _common import hu2019


def get_config():
    return hu2019("cnn_ctslstm", "ck_plus")
