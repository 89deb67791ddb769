"""Timed words -> one word-feature vector per step of a clip's time grid (SEND's 0.5 s steps).

Step k covers the half-open interval (t_k - step, t_k] of `step_times`, as SEND's frames and
spectrogram rows do. Its feature vector (WORD_FEATURES wide) is:
  [0]     the VADER lexicon valence (compound score in [-1, 1]) of the words spoken in the step
          (any word whose span overlaps it), read together so "not good" is negative; 0 without words.
  [1:]    the MiniLM sentence embedding (unit 384-vector) of the current utterance so far: its words
          that started by t_k. An utterance ends at a word ending in . ! ? or at a pause of at least
          UTTERANCE_PAUSE; between utterances the last one's embedding stays (what was said last),
          and before the first word the embedding is zeros.
A clip without words gets all zeros, without loading any model.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy as np

from fer_jax.errors import ConfigError
from fer_jax.models.minilm import EMBEDDING_DIM
from fer_jax.preprocess.transcribe import Word

WORD_FEATURES = 1 + EMBEDDING_DIM
STEP_SECONDS = 0.5  # SEND's rating period
UTTERANCE_PAUSE = 1.0  # seconds of silence that end an utterance without punctuation
_SENTENCE_END = (".", "!", "?")


@functools.lru_cache(maxsize=1)
def _vader():
    try:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
    except ImportError:
        raise ConfigError("word valence needs the VADER lexicon: pip install -e '.[words]'") from None
    return SentimentIntensityAnalyzer()


def valence_lexicon() -> dict[str, float]:
    """VADER's lexicon: word -> its mean valence rating in [-4, 4]."""
    return _vader().lexicon


def lexicon_valence(text: str) -> float:
    """VADER's compound valence of `text` in [-1, 1] (0 for no words or none in its lexicon)."""
    return float(_vader().polarity_scores(text)["compound"]) if text.strip() else 0.0


def utterances(words: Sequence[Word]) -> list[int]:
    """The utterance index of each word (see the module docstring for where one ends)."""
    index, out = 0, []
    for i, word in enumerate(words):
        if i and (words[i - 1].text.endswith(_SENTENCE_END) or word.start - words[i - 1].end >= UTTERANCE_PAUSE):
            index += 1
        out.append(index)
    return out


def _default_encoder(texts: list[str]) -> np.ndarray:
    from fer_jax.models.minilm import sentence_encoder

    return sentence_encoder()(texts)


def step_word_features(words: Sequence[Word], step_times: np.ndarray, step: float = STEP_SECONDS,
                       encode: Callable[[list[str]], np.ndarray] | None = None) -> np.ndarray:
    """(S, WORD_FEATURES) float32 for steps ending at `step_times` (S,) seconds; `encode` maps texts to
    (N, EMBEDDING_DIM) embeddings (default the Flax MiniLM)."""
    step_times = np.asarray(step_times, np.float64)
    features = np.zeros((len(step_times), WORD_FEATURES), np.float32)
    words = sorted((w for w in words if w.text.strip()), key=lambda w: (w.start, w.end))
    if not words:
        return features
    starts = np.array([w.start for w in words])
    ends = np.maximum([w.end for w in words], starts + 1e-6)  # a zero-length word still lies somewhere
    for k, t in enumerate(step_times):
        inside = np.flatnonzero((starts <= t) & (ends > t - step))  # overlaps (t - step, t]
        features[k, 0] = lexicon_valence(" ".join(words[i].text for i in inside))
    # The utterance so far at step k: the words of the latest started word's utterance up to it.
    utterance = utterances(words)
    latest = np.searchsorted(starts, step_times, side="right") - 1  # index of the last word started by t_k
    prefixes = {}
    for k, last in enumerate(latest):
        if last >= 0:
            first = utterance.index(utterance[last])
            prefixes.setdefault((first, last), []).append(k)
    keys = sorted(prefixes)
    texts = [" ".join(w.text for w in words[first : last + 1]) for first, last in keys]
    embeddings = (encode or _default_encoder)(texts)
    if embeddings.shape != (len(texts), EMBEDDING_DIM):
        raise ConfigError(f"sentence encoder gave {embeddings.shape}, expected ({len(texts)}, {EMBEDDING_DIM})")
    for key, embedding in zip(keys, embeddings):
        features[prefixes[key], 1:] = embedding
    return features
