"""Flax NNX models. Importing a model module registers it, so every one is imported here."""

from fer_jax.models import (  # noqa: F401
    av_attention,
    av_image,
    cnn3d_convlstm,
    cnn3d_convlstm_afew,
    lemhi,
    mini_xception,
    msff,
    valence,
)
from fer_jax.models.av_attention import AvAttentionFbp
from fer_jax.models.av_image import AvImageInception
from fer_jax.models.backbones import BACKBONES, VGG, ResNet, apply_per_frame, build_backbone
from fer_jax.models.cnn3d_convlstm import Cnn3dConvLstm, Cnn3dConvLstmScore
from fer_jax.models.cnn3d_convlstm_afew import Cnn3dConvLstmAfew
from fer_jax.models.fusion import FUSIONS, build_fusion, register_fusion
from fer_jax.models.lemhi import CnnCtsLstm, LemhiCnn
from fer_jax.models.mini_xception import MiniXception
from fer_jax.models.msff import C3D, AudioVggBlstm, CnnBlstm, Msff
from fer_jax.models.recurrent import BLSTM, LSTMCell
from fer_jax.models.valence import SendValenceLstm
from fer_jax.models.convlstm import ConvLSTM2D
from fer_jax.models.registry import MODELS, build_model, register

__all__ = [
    "BACKBONES", "BLSTM", "C3D", "FUSIONS", "MODELS", "VGG",
    "AudioVggBlstm", "AvAttentionFbp", "AvImageInception", "CnnBlstm", "CnnCtsLstm", "Cnn3dConvLstm", "Cnn3dConvLstmScore",
    "Cnn3dConvLstmAfew", "ConvLSTM2D", "LSTMCell", "LemhiCnn", "MiniXception", "Msff", "ResNet", "SendValenceLstm",
    "apply_per_frame", "build_backbone", "build_fusion", "build_model", "register", "register_fusion",
]
