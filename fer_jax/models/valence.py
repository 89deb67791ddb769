"""Continuous valence on the Stanford Emotional Narratives Dataset (SEND): an LSTM with local attention.

SEND rates valence in [-1, 1] every 0.5 s (2 Hz). "send_valence_lstm" works at that rate: each
modality is reduced to one feature vector per rating step and projected (dense + ReLU), the
projections are joined (then dropout), an LSTM runs over the steps, and each step attends to its
W most recent hidden states (local attention) before a dense layer and tanh give that step's
valence.

Modalities (`modalities`, any non-empty subset, in this order):
  "video"     "frames" (B, T * r, H, W, C): r = frames_per_step face frames per step through a
              small per-frame CNN, averaged per step.
  "audio"     "log_mel" (B, T_a, n_mels): the m = mel_frames_per_step spectrogram frames of each
              step (50 at 100 frames/s) summarised by their mean and standard deviation per band;
              T_a may exceed T * m by up to m frames (the centred final frame, a partial step),
              which are dropped.
  "words"     "word_features" (B, T, 1 + 384): per step, the lexicon valence of the words spoken in
              it and the MiniLM embedding of the utterance so far (fer_jax.preprocess.words; the
              send/gray64_2hz_words records); zeros where nothing has been said.
  "features"  "features" (B, T, F): per-step features computed elsewhere (e.g. SEND's own).
T, the number of steps, comes from the first modality in the list above that is used.

Local attention (Luong's "general" score, restricted to a causal window), for hidden states h_t:
    e_{t,j} = h_t^T W_a h_j / sqrt(H)      for j = t - W + 1 .. t, j >= 0
    c_t = sum_j softmax_j(e_{t,j}) h_j;    s_t = tanh(W_c [c_t; h_t] + b_c)
    valence_t = tanh(w^T dropout(s_t) + b)
Everything is causal: the valence at step t depends on inputs up to step t only, so padding a
sequence at the end never changes its earlier predictions (mask the loss, `fer_jax.eval.ccc`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from fer_jax.errors import ConfigError
from fer_jax.models.backbones import apply_per_frame, build_backbone
from fer_jax.models.words_branch import WORD_FEATURES
from fer_jax.models.recurrent import LSTMCell
from fer_jax.models.registry import choose_subset, register

MODALITIES = ("video", "audio", "words", "features")
_INPUT_KEY = {"video": "frames", "audio": "log_mel", "words": "word_features", "features": "features"}
FRAME_BLOCKS = ((32, 32), (64, 64), (128, 128))


class LocalAttention(nnx.Module):
    """Causal local attention over the last `window` hidden states: (B, T, H) -> (B, T, H), s_t above."""

    def __init__(self, hidden: int, *, window: int = 10, dtype=jnp.float32, rngs: nnx.Rngs):
        if window < 1:
            raise ConfigError(f"LocalAttention: window must be >= 1, got {window}.")
        self.window = window
        self.hidden = hidden
        self.score = nnx.Linear(hidden, hidden, use_bias=False, dtype=dtype, rngs=rngs)  # W_a
        self.combine = nnx.Linear(2 * hidden, hidden, dtype=dtype, rngs=rngs)  # W_c, b_c

    def __call__(self, h: jax.Array) -> jax.Array:
        b, t, d = h.shape
        w = self.window
        h = h.astype(jnp.float32)
        # windows[:, t, k] = h_{t - w + 1 + k}: w shifted copies of h, front-padded with zeros.
        padded = jnp.pad(h, ((0, 0), (w - 1, 0), (0, 0)))
        windows = jnp.stack([padded[:, k : k + t] for k in range(w)], axis=2)  # (B, T, W, H)
        in_range = jnp.arange(t)[:, None] - (w - 1) + jnp.arange(w)[None, :] >= 0  # (T, W): j >= 0
        query = self.score(h).astype(jnp.float32)
        logits = jnp.einsum("bth,btwh->btw", query, windows) / jnp.sqrt(float(d))
        weights = jax.nn.softmax(jnp.where(in_range, logits, -jnp.inf), axis=-1)  # j = t always in range
        context = jnp.einsum("btw,btwh->bth", weights, windows)
        return jnp.tanh(self.combine(jnp.concatenate([context, h], axis=-1))).astype(jnp.float32)


@register("send_valence_lstm")
class SendValenceLstm(nnx.Module):
    """Per-modality projections -> LSTM -> local attention -> tanh valence per 2 Hz step.

    Reads the input keys of its `modalities` (see the module docstring; `input_keys` on an instance
    lists exactly those). Returns valence (B, T) float32 in [-1, 1]. `num_classes` must be 1: one
    continuous output per step.
    """

    task = "regression"
    input_keys = ("frames", "log_mel")  # for the default modalities; instances list their own

    def __init__(
        self,
        num_classes: int = 1,
        *,
        modalities: Sequence[str] = ("video", "audio"),
        in_channels: int = 1,
        frames_per_step: int = 1,
        frame_backbone_kwargs: Mapping | None = None,
        n_mels: int = 64,
        mel_frames_per_step: int = 50,
        features_dim: int | None = None,
        projection_dim: int = 64,
        lstm_hidden: int = 128,
        window: int = 10,
        dropout: float = 0.2,
        dtype: jnp.dtype = jnp.float32,
        rngs: nnx.Rngs,
    ):
        if num_classes != 1:
            raise ConfigError(
                f"send_valence_lstm predicts one valence per step; num_classes must be 1, got {num_classes}."
            )
        modalities = choose_subset("send_valence_lstm", "modalities", modalities, MODALITIES)
        if "features" in modalities and not features_dim:
            raise ConfigError("send_valence_lstm: the 'features' modality needs features_dim (F of (B, T, F)).")
        if frames_per_step < 1 or mel_frames_per_step < 1:
            raise ConfigError("send_valence_lstm: frames_per_step and mel_frames_per_step must be >= 1.")
        self.modalities = modalities  # canonical order
        self.input_keys = tuple(_INPUT_KEY[m] for m in self.modalities)
        self.in_channels = in_channels
        self.frames_per_step = frames_per_step
        self.n_mels = n_mels
        self.mel_frames_per_step = mel_frames_per_step
        self.features_dim = features_dim
        self.dtype = dtype

        widths = {}
        if "video" in self.modalities:
            kwargs = {"blocks": FRAME_BLOCKS, **dict(frame_backbone_kwargs or {}), "dtype": dtype}
            self.frame_cnn = build_backbone("vgg", in_channels, rngs=rngs, **kwargs)
            widths["video"] = self.frame_cnn.out_features
        widths["audio"] = 2 * n_mels  # per-band mean and standard deviation
        widths["words"] = WORD_FEATURES
        widths["features"] = features_dim
        self.projections = nnx.Dict(
            {m: nnx.Linear(widths[m], projection_dim, dtype=dtype, rngs=rngs) for m in self.modalities}
        )
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.lstm = LSTMCell(projection_dim * len(self.modalities), lstm_hidden, dtype=dtype, rngs=rngs)
        self.attention = LocalAttention(lstm_hidden, window=window, dtype=dtype, rngs=rngs)
        self.head = nnx.Linear(lstm_hidden, 1, dtype=dtype, rngs=rngs)

    def steps(self, inputs: Mapping[str, jax.Array]) -> int:
        """T, the number of rating steps these inputs describe (checked against every modality)."""
        first = self.modalities[0]
        x = inputs[_INPUT_KEY[first]]
        if first == "video":
            if x.ndim != 5 or x.shape[1] % self.frames_per_step:
                raise ConfigError(
                    f"send_valence_lstm: frames {x.shape} must be (B, T * {self.frames_per_step}, H, W, C)."
                )
            return x.shape[1] // self.frames_per_step
        if first == "audio":
            return x.shape[1] // self.mel_frames_per_step
        return x.shape[1]

    def _check(self, modality: str, x: jax.Array, t: int) -> None:
        """Raises ConfigError unless x is the input `modality` needs for t steps."""
        if modality == "video":
            if x.ndim != 5 or x.shape[1] != t * self.frames_per_step or x.shape[-1] != self.in_channels:
                raise ConfigError(
                    f"send_valence_lstm: frames {x.shape} must be (B, {t} * {self.frames_per_step}, H, W, "
                    f"{self.in_channels})."
                )
        elif modality == "audio":
            m = self.mel_frames_per_step
            if x.ndim != 3 or x.shape[-1] != self.n_mels or not t * m <= x.shape[1] <= (t + 1) * m:
                raise ConfigError(
                    f"send_valence_lstm: log_mel {x.shape} must be (B, T_a, {self.n_mels}) with "
                    f"{t} * {m} <= T_a <= {t + 1} * {m} for {t} steps of {m} frames."
                )
        else:
            width = WORD_FEATURES if modality == "words" else self.features_dim
            if x.ndim != 3 or x.shape[1:] != (t, width):
                raise ConfigError(f"send_valence_lstm: {_INPUT_KEY[modality]} {x.shape} must be (B, {t}, {width}).")

    def _per_step(self, modality: str, x: jax.Array, t: int) -> jax.Array:
        """One modality's (B, T, width) per-step summary, before its projection."""
        b = x.shape[0]
        if modality == "video":
            per_frame = apply_per_frame(self.frame_cnn, x.astype(self.dtype)).astype(jnp.float32)
            return per_frame.reshape(b, t, self.frames_per_step, -1).mean(axis=2)
        if modality == "audio":
            m = self.mel_frames_per_step
            chunks = x[:, : t * m].astype(jnp.float32).reshape(b, t, m, self.n_mels)
            mean = chunks.mean(axis=2)
            # sqrt of a clamped variance: finite gradient on silent (constant) steps.
            std = jnp.sqrt(jnp.maximum(chunks.var(axis=2), 1e-6))
            return jnp.concatenate([mean, std], axis=-1)
        return x.astype(jnp.float32)

    def __call__(self, inputs: Mapping[str, jax.Array]) -> jax.Array:
        """The modalities' inputs -> valence (B, T) float32 in [-1, 1]."""
        t = self.steps(inputs)
        if t < 1:
            raise ConfigError("send_valence_lstm: the inputs hold no complete rating step.")
        for m in self.modalities:  # every input checked before any work is done
            self._check(m, inputs[_INPUT_KEY[m]], t)
        joined = jnp.concatenate(
            [
                nnx.relu(self.projections[m](self._per_step(m, inputs[_INPUT_KEY[m]], t).astype(self.dtype)))
                for m in self.modalities
            ],
            axis=-1,
        )
        joined = self.dropout(joined)
        gates = self.lstm.input_gates(joined.swapaxes(0, 1))
        hidden, _ = self.lstm.scan(gates, jnp.ones(gates.shape[:2], bool), reverse=False)  # (T, B, H)
        attended = self.attention(hidden.swapaxes(0, 1))
        return jnp.tanh(self.head(self.dropout(attended))[..., 0].astype(jnp.float32))
