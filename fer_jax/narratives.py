"""`fer-jax demo --narratives`: long synthetic stories whose valence drifts, carried in part by each of
the face, the voice and the words; the SEND valence model trained on every modality set.

A story is a run of sentences. Three independent random walks over the sentences, f (face), a (voice)
and w (words), each in [-1, 1], make its valence: the rating of a sentence is (f + a + w) / 3, and
the rating dial follows it every 0.5 s with some lag (as SEND's observers' dials do). So each
channel carries a third of the valence, and only the three together carry all of it:
  face   the demo's real faces (scikit-image's, animated by data_builders.demo_av.synth) showing
         happiness (f > 0) or sadness (f < 0) at an intensity |f|, one 48x48 gray face crop a step
  voice  espeak-ng speaking each sentence with pitch and rate raised for a > 0, lowered for a < 0;
         the model hears the 64-band log-mel (fer_jax.preprocess.audio), standardised per band
  words  each sentence's adjectives are VADER-lexicon words whose valence is near w (neutral words
         near 0), in carrier sentences the lexicon rates 0; the model reads the per-step word
         features (fer_jax.preprocess.words) of the words as espeak timed them (a transcript the
         corpus ships: Whisper is not run, to keep the demo within minutes)
Each story has its own storyteller (face identity); the validation stories' storytellers never
appear in training. Each modality set trains `send_valence_lstm` with the project's model builder
and compiled train step (fer_jax.train) and is scored by the final model's mean per-story CCC on
validation (fer_jax.eval.ccc); nothing is selected on validation.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import time

import numpy as np

from fer_jax.config import AugmentConfig, DataConfig, ExperimentConfig, ModelConfig, TrainConfig
from fer_jax.preprocess.words import STEP_SECONDS, WORD_FEATURES

MEL_FRAMES_PER_STEP = 50  # 100 frames/s
SAMPLE_RATE = 16000
SIZE = 48  # face crops of SIZE x SIZE gray (FER2013's size): small enough to train in about two minutes
FACE_BOX = 100  # pixels of the 160-pixel rendered frame around the face (its tile is ~95-125)
BLOCKS = ((8,), (16,), (32,))  # the per-frame CNN's filters
# The model sees each face minus the storyteller's neutral one (what the expression moved, not who it
# is: 48 storytellers are too few to learn expressions apart from identities), in gray levels / 64.
FACE_CONTRAST = 64.0
# Prosody: espeak's pitch (0..100, 50 the voice's own) and words per minute at a voice valence a in [-1, 1].
PITCH_SPAN, RATE, RATE_SPAN = 40, 170, 50
MODALITY_SETS = (("words",), ("audio",), ("video",), ("video", "audio", "words"))
CARRIERS = ("Then it was {} and {}.", "That week was {} and {}.", "Everyone told me it was {}.",
            "I remember it was {}, so {}.")
NEUTRAL_WORDS = ("ordinary", "usual", "long", "quiet", "normal", "early", "late", "brief")


@dataclasses.dataclass
class NarrativeConfig:
    train_stories: int = 36
    val_stories: int = 12
    sentences: int = 12  # per story, about 30 s
    identities: int = 48  # storytellers, one a story; the last quarter tell the validation stories
    epochs: int = 30
    batch_size: int = 6
    learning_rate: float = 1e-3
    seed: int = 0


@dataclasses.dataclass
class Story:
    frames: np.ndarray  # (S, SIZE, SIZE, 1) float32: the face minus the storyteller's neutral face
    log_mel: np.ndarray  # (S * 50, 64) float32
    word_features: np.ndarray  # (S, 385) float32
    valence: np.ndarray  # (S,) float32
    components: np.ndarray  # (S, 3) float32: f, a, w of the sentence each step belongs to


def random_walk(n: int, rng: np.random.Generator, keep: float = 0.75, step: float = 0.5) -> np.ndarray:
    """(n,) values in [-1, 1] that drift: each keeps `keep` of the last and adds N(0, step)."""
    values, level = [], float(rng.uniform(-1, 1))
    for _ in range(n):
        level = float(np.clip(keep * level + step * rng.normal(), -1, 1))
        values.append(level)
    return np.array(values, np.float32)


def lexicon_words() -> tuple[list[str], np.ndarray]:
    """Plain lexicon words (letters only, 4-9 long) and their VADER valence scaled to [-1, 1]."""
    from fer_jax.preprocess.words import valence_lexicon  # the lexicon the word features read

    lexicon = valence_lexicon()
    words = sorted(k for k, v in lexicon.items() if k.isalpha() and 4 <= len(k) <= 9 and abs(v) >= 0.5)
    return words, np.array([lexicon[k] / 4.0 for k in words], np.float32)


def sentence(w: float, rng: np.random.Generator, words: list[str], values: np.ndarray) -> str:
    """A carrier sentence whose slots hold lexicon words of valence near w (neutral ones near 0)."""
    carrier = CARRIERS[rng.integers(len(CARRIERS))]
    slots = carrier.count("{}")
    if abs(w) < 0.15:
        chosen = rng.choice(NEUTRAL_WORDS, slots, replace=False)
    else:
        near = np.flatnonzero(np.abs(values - w) < 0.15)
        near = near if near.size >= slots else np.argsort(np.abs(values - w))[:slots]
        chosen = [words[i] for i in rng.choice(near, slots, replace=False)]
    return carrier.format(*chosen)


def face_bank(identity, rng: np.random.Generator) -> dict[int, np.ndarray]:
    """{+1: happiness, -1: sadness} face crops (T, SIZE, SIZE) uint8 gray from neutral to apex.

    Both clips come from one seed, so they share the scene and differ only where the face moves:
    the crop is a FACE_BOX square around the centre of those pixels (the face), as an aligned crop."""
    import cv2

    from data_builders.demo_av import synth

    seed = int(rng.integers(2**31))
    clips = {sign: synth.render_clip(identity, synth.CLASSES.index(name), np.random.default_rng(seed))
             for sign, name in ((1, "happiness"), (-1, "sadness"))}
    gray = {sign: np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in c.frames]) for sign, c in clips.items()}
    moved = np.abs(gray[1][-1].astype(np.int16) - gray[-1][-1]) > 24  # the apexes differ on the face only
    ys, xs = np.nonzero(moved)
    frame = gray[1].shape[1]
    top, left = (int(np.clip(np.mean(v) - FACE_BOX / 2, 0, frame - FACE_BOX)) for v in (ys, xs))
    return {sign: np.stack([cv2.resize(g[top : top + FACE_BOX, left : left + FACE_BOX], (SIZE, SIZE),
                                       interpolation=cv2.INTER_AREA) for g in frames])
            for sign, frames in gray.items()}


def make_story(bank: dict, config: NarrativeConfig, rng: np.random.Generator, lexicon) -> tuple[Story, list]:
    """One story, its word features still zeros, and the words espeak spoke with their times."""
    from fer_jax.espeak import speak
    from fer_jax.preprocess.audio import log_mel
    from fer_jax.preprocess.transcribe import Word

    f, a, w = (random_walk(config.sentences, rng) for _ in range(3))
    pieces, words, spans, offset = [], [], [], 0.0
    for j in range(config.sentences):
        speech = speak(sentence(float(w[j]), rng, *lexicon), pitch=int(50 + PITCH_SPAN * a[j]),
                       words_per_minute=int(RATE + RATE_SPAN * a[j]), sample_rate=SAMPLE_RATE)
        gap = np.zeros(int(rng.uniform(0.3, 0.8) * SAMPLE_RATE), np.float32)
        words += [Word(x.text, x.start + offset, x.end + offset) for x in speech.words]
        pieces += [speech.wave, gap]
        offset += (len(speech.wave) + len(gap)) / SAMPLE_RATE
        spans.append(offset)
    steps = int(offset / STEP_SECONDS)
    times = STEP_SECONDS * np.arange(1, steps + 1)
    sentence_of = np.minimum(np.searchsorted(np.array(spans), times - STEP_SECONDS / 2), config.sentences - 1)
    components = np.stack([f[sentence_of], a[sentence_of], w[sentence_of]], axis=1)
    valence, level = [], float(components[0].mean())
    for target in components.mean(axis=1):  # the dial follows the story with some lag
        level = 0.5 * level + 0.5 * float(target)
        valence.append(level)
    neutral = bank[1][0].astype(np.float32)  # both clips start from the storyteller's neutral face
    frames = []
    for k in range(steps):
        face = float(np.clip(components[k, 0] + rng.normal(0, 0.05), -1, 1))
        clip = bank[1 if face >= 0 else -1]
        frames.append((clip[int(round(abs(face) * (len(clip) - 1)))] - neutral) / FACE_CONTRAST)
    mel = log_mel(np.concatenate(pieces), SAMPLE_RATE)[: steps * MEL_FRAMES_PER_STEP]
    story = Story(np.stack(frames)[..., None].astype(np.float32), mel, np.zeros((steps, WORD_FEATURES), np.float32),
                  np.array(valence, np.float32), components.astype(np.float32))
    return story, words


def with_word_features(stories: list[Story], transcripts: list, encode=None) -> list[Story]:
    """The stories with the word features of their transcripts, every distinct text encoded once in
    one pass (sorted by length: little padding), not story by story."""
    from fer_jax.models.minilm import sentence_encoder
    from fer_jax.preprocess.words import step_word_features

    texts: set[str] = set()

    def record(batch):  # a first pass learns which texts the features need
        texts.update(batch)
        return np.zeros((len(batch), WORD_FEATURES - 1), np.float32)  # (the embedding's width)

    grids = [STEP_SECONDS * np.arange(1, len(s.valence) + 1) for s in stories]
    for words, times in zip(transcripts, grids):
        step_word_features(words, times, encode=record)
    ordered = sorted(texts, key=len)
    table = dict(zip(ordered, (encode or sentence_encoder())(ordered)))
    return [dataclasses.replace(s, word_features=step_word_features(
                words, times, encode=lambda batch: np.stack([table[t] for t in batch])))
            for s, words, times in zip(stories, transcripts, grids)]


def standardised_log_mel(train: list[Story], val: list[Story]) -> tuple[list[Story], list[Story]]:
    """Log-mel scaled to zero mean and unit variance per band with the training stories' statistics
    (raw log-mel spans about -14 in silence to +2: too wide for the small model to learn from quickly)."""
    bands = np.concatenate([s.log_mel for s in train])
    mean, std = bands.mean(axis=0), bands.std(axis=0) + 1e-3

    def scaled(stories):
        return [dataclasses.replace(s, log_mel=((s.log_mel - mean) / std).astype(np.float32)) for s in stories]

    return scaled(train), scaled(val)


def make_stories(config: NarrativeConfig, encode=None) -> tuple[list[Story], list[Story]]:
    """(train, validation) stories; validation storytellers never appear in training."""
    from data_builders.demo_av import synth

    rng = np.random.default_rng(config.seed)
    identities = synth.load_identities()[0][: config.identities]
    banks = [face_bank(identity, rng) for identity in identities]
    held_out = max(1, len(banks) // 4)
    lexicon = lexicon_words()
    tellers = [i % (len(banks) - held_out) for i in range(config.train_stories)]
    tellers += [len(banks) - held_out + i % held_out for i in range(config.val_stories)]
    stories, transcripts = zip(*(make_story(banks[i], config, rng, lexicon) for i in tellers))
    stories = with_word_features(list(stories), list(transcripts), encode)
    return standardised_log_mel(stories[: config.train_stories], stories[config.train_stories :])


def batch_of(stories: list[Story], steps: int) -> dict[str, np.ndarray]:
    """Stories padded to `steps` (one length for every batch: one compiled step): frames, log_mel,
    word_features, valence, valence_mask."""

    def padded(values, length):
        out = np.zeros((len(values), length, *values[0].shape[1:]), values[0].dtype)
        for i, v in enumerate(values):
            out[i, : len(v)] = v
        return out

    return {
        "frames": padded([s.frames for s in stories], steps),
        "log_mel": padded([s.log_mel for s in stories], steps * MEL_FRAMES_PER_STEP),
        "word_features": padded([s.word_features for s in stories], steps),
        "valence": padded([s.valence for s in stories], steps),
        "valence_mask": padded([np.ones(len(s.valence), bool) for s in stories], steps),
    }


def narrative_experiment(modalities, config: NarrativeConfig) -> ExperimentConfig:
    """The run that trains send_valence_lstm on `modalities`: a small model for a 2-core CPU."""
    kwargs = {"modalities": list(modalities), "frame_backbone_kwargs": {"blocks": BLOCKS},
              "projection_dim": 32, "lstm_hidden": 64, "window": 6, "dropout": 0.1}
    return ExperimentConfig(
        name="narratives_" + "_".join(modalities),
        data=DataConfig(dataset="", num_classes=1, global_batch_size=config.batch_size),
        model=ModelConfig("send_valence_lstm", kwargs),
        augment=AugmentConfig(enabled=False),
        train=TrainConfig(learning_rate=config.learning_rate, num_epochs=config.epochs, seed=config.seed),
    )


def train_and_score(modalities, train: list[Story], val: list[Story], config: NarrativeConfig) -> dict:
    """Trains send_valence_lstm on `modalities` with the project's step; the final model's validation
    mean per-story CCC (nothing is selected on validation), and the CCC after every epoch."""
    import jax

    from fer_jax.eval.ccc import mean_ccc_per_video
    from fer_jax.sharding import make_mesh, to_global, to_host
    from fer_jax.train.loop import build_state

    # The stories are arrays in memory, not records: fer_jax.train.loop's input pipeline does not
    # apply, its model, optimizer and compiled step do.
    mesh = make_mesh(jax.devices()[:1])
    steps = build_state(narrative_experiment(modalities, config), mesh)
    keys = set(steps.input_keys) | set(steps.task.target_keys)
    length = max(len(s.valence) for s in train + val)  # one padded length: one compiled step

    def on_device(batch):
        return to_global({k: v for k, v in batch.items() if k in keys}, mesh)

    val_batch = batch_of(val, length)
    val_inputs = on_device(val_batch)
    rng = np.random.default_rng(config.seed)
    state, step, history = steps.state, 0, []
    start = time.perf_counter()
    for _ in range(config.epochs):
        order = rng.permutation(len(train))
        for i in range(0, len(order) - config.batch_size + 1, config.batch_size):
            state, _ = steps.train(state, on_device(batch_of([train[j] for j in order[i : i + config.batch_size]], length)), step)
            step += 1
        predictions = to_host(steps.evaluate(state, val_inputs))
        history.append(round(mean_ccc_per_video(predictions, val_batch["valence"], val_batch["valence_mask"]), 4))
    return {"modalities": list(modalities), "val_ccc": history[-1], "val_ccc_by_epoch": history,
            "steps": step, "train_seconds": round(time.perf_counter() - start, 1)}


def run_narratives(workdir: str, config: NarrativeConfig | None = None) -> dict:
    """Makes the stories, trains every modality set, writes WORKDIR/narratives.json and returns it."""
    config = config or NarrativeConfig()
    start = time.perf_counter()
    train, val = make_stories(config)
    made = time.perf_counter() - start
    runs = [train_and_score(m, train, val, config) for m in MODALITY_SETS]
    results = {
        "config": dataclasses.asdict(config),
        "stories": {"train": len(train), "validation": len(val),
                    "steps": int(sum(len(s.valence) for s in train + val))},
        "make_seconds": round(made, 1),
        "runs": runs,
        "total_seconds": round(time.perf_counter() - start, 1),
    }
    out = pathlib.Path(workdir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "narratives.json").write_text(json.dumps(results, indent=1))
    return results


def format_narratives(results: dict) -> str:
    lines = [f"{'modalities':<24} validation CCC (mean per story)"]
    lines += [f"{' + '.join(r['modalities']):<24} {r['val_ccc']:.3f}" for r in results["runs"]]
    stories = results["stories"]
    lines.append(f"\n{stories['train']} train / {stories['validation']} validation stories, {stories['steps']} steps; "
                 f"made in {results['make_seconds']:.0f} s, {results['total_seconds']:.0f} s in all")
    return "\n".join(lines)
