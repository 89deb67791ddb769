"""`fer-jax demo --narratives` end to end at a tiny size: stories spoken and drawn, every modality
set trained a step, a validation CCC for each; and the stories' recipe (what each channel carries)."""

import json

import numpy as np
import pytest

pytest.importorskip("vaderSentiment")

from fer_jax import cli, narratives  # noqa: E402
from fer_jax.preprocess.words import lexicon_valence  # noqa: E402

TINY = ["train_stories=2", "val_stories=1", "sentences=3", "identities=2", "epochs=1", "batch_size=2"]


@pytest.fixture(scope="module")
def tiny_stories():
    config = narratives.NarrativeConfig(train_stories=2, val_stories=1, sentences=3, identities=2)
    return narratives.make_stories(config)


def test_each_story_carries_its_valence_in_face_voice_and_words(tiny_stories):
    train, val = tiny_stories
    assert (len(train), len(val)) == (2, 1)
    for story in train + val:
        steps = len(story.valence)
        assert story.frames.shape == (steps, narratives.SIZE, narratives.SIZE, 1) and story.frames.dtype == np.float32
        assert story.log_mel.shape == (steps * narratives.MEL_FRAMES_PER_STEP, 64)
        assert story.word_features.shape == (steps, narratives.WORD_FEATURES)
        # The dial: each step moves half way from the last rating to the mean of the three channels.
        target = story.components.mean(axis=1)
        np.testing.assert_allclose(story.valence[1:], 0.5 * story.valence[:-1] + 0.5 * target[1:], atol=1e-6)
        assert np.all(np.abs(story.components) <= 1)
        spoken = np.abs(story.word_features[:, 1:]).sum(axis=1) > 0
        assert spoken.mean() > 0.5  # the words so far are embedded wherever something has been said
    # Standardised with the training stories' statistics: zero mean per band over them (float32 sums).
    bands = np.concatenate([s.log_mel for s in train])
    np.testing.assert_allclose(bands.mean(axis=0), 0, atol=1e-4)


def test_sentences_take_lexicon_words_of_the_words_valence():
    words, values = narratives.lexicon_words()
    rng = np.random.default_rng(0)
    for w in (-0.8, -0.4, 0.4, 0.8):
        scores = [lexicon_valence(narratives.sentence(w, rng, words, values)) for _ in range(10)]
        assert np.sign(np.mean(scores)) == np.sign(w) and np.all(np.sign(scores) == np.sign(w))
    assert lexicon_valence(narratives.sentence(0.0, rng, words, values)) == 0.0


def test_demo_narratives_trains_every_modality_set_and_reports_its_ccc(tmp_path, capsys):
    args = ["demo", "--narratives", "--workdir", str(tmp_path)] + [a for s in TINY for a in ("--set", s)]
    assert cli.main(args) == 0
    results = json.loads((tmp_path / "narratives.json").read_text())
    runs = {tuple(r["modalities"]): r for r in results["runs"]}
    assert set(runs) == {("words",), ("audio",), ("video",), ("video", "audio", "words")}
    for run in runs.values():
        assert run["steps"] == 1 and np.isfinite(run["val_ccc"]) and -1 <= run["val_ccc"] <= 1
    printed = capsys.readouterr().out
    assert "video + audio + words" in printed and "validation CCC" in printed
