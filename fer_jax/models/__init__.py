"""Flax NNX models. Importing a model module registers it, so every one is imported here."""

from fer_jax.models import cnn3d_convlstm, cnn3d_convlstm_afew, mini_xception  # noqa: F401  (register them)
from fer_jax.models.cnn3d_convlstm import Cnn3dConvLstm
from fer_jax.models.cnn3d_convlstm_afew import Cnn3dConvLstmAfew
from fer_jax.models.mini_xception import MiniXception
from fer_jax.models.convlstm import ConvLSTM2D
from fer_jax.models.registry import MODELS, build_model, register

__all__ = ["MODELS", "Cnn3dConvLstm", "Cnn3dConvLstmAfew", "ConvLSTM2D", "MiniXception", "build_model", "register"]
