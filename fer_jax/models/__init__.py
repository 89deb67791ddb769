"""Flax NNX models. Importing a model module registers it, so every one is imported here."""

from fer_jax.models import cnn3d_convlstm  # noqa: F401  (registers "cnn3d_convlstm")
from fer_jax.models.cnn3d_convlstm import Cnn3dConvLstm
from fer_jax.models.convlstm import ConvLSTM2D
from fer_jax.models.registry import MODELS, build_model, register

__all__ = ["MODELS", "Cnn3dConvLstm", "ConvLSTM2D", "build_model", "register"]
