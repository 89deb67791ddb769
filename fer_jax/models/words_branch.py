"""The words of a clip as one fusion branch: per-step word features (B, T, 385) -> (B, width).

The per-step features are those of `fer_jax.preprocess.words` (the lexicon valence of each step's
words, then the MiniLM embedding of the utterance so far). A classifier sees a whole clip, so the
branch averages them over the steps where something has been said (a non-zero embedding) and
projects the mean (dense + ReLU); a clip without speech gives the projection of zeros. Any fusion
layer of `fer_jax.models.fusion` that takes this many branches can then fuse it with the others.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from fer_jax.errors import ConfigError
from fer_jax.models.minilm import EMBEDDING_DIM

WORD_FEATURES = 1 + EMBEDDING_DIM  # fer_jax.preprocess.words.WORD_FEATURES (tests/test_words.py checks)
INPUT_KEY = "word_features"


class WordsBranch(nnx.Module):
    """word_features (B, T, WORD_FEATURES) -> (B, width) float32."""

    def __init__(self, width: int = 64, *, dtype=jnp.float32, rngs: nnx.Rngs):
        self.out_dim = width
        self.dtype = dtype
        self.project = nnx.Linear(WORD_FEATURES, width, dtype=dtype, rngs=rngs)

    def __call__(self, word_features: jax.Array) -> jax.Array:
        if word_features.ndim != 3 or word_features.shape[-1] != WORD_FEATURES:
            raise ConfigError(f"{INPUT_KEY} {word_features.shape} must be (B, T, {WORD_FEATURES}).")
        x = word_features.astype(jnp.float32)
        spoken = (jnp.abs(x[..., 1:]).sum(-1) > 0).astype(jnp.float32)  # (B, T)
        mean = jnp.einsum("bt,btf->bf", spoken, x) / jnp.maximum(spoken.sum(1, keepdims=True), 1.0)
        return nnx.relu(self.project(mean.astype(self.dtype))).astype(jnp.float32)
