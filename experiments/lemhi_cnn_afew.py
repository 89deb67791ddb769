"""Hu et al. 2019: LEMHI-CNN (a CNN on the landmark-enhanced motion history image) on AFEW, train / validation.

Published: the two models' late fusion on afew: see the paper. Half of one protocol, fused
by `fer-jax fuse` with its partner; the steps are in experiments/_common.hu2019.
"""

from _common import hu2019


def get_config():
    return hu2019("lemhi_cnn", "afew")
