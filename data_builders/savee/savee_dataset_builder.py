"""SAVEE: the Surrey Audio-Visual Expressed Emotion database (Haq & Jackson 2009).

Four male speakers (DC, JE, JK, KL) read 15 TIMIT sentences in each of 6 emotions and 30 in
neutral: 120 audio-visual clips each, 480 in all. The label is the start of the file name:

    AudioVisualClip/<speaker>/<code><n>.avi     code a anger, d disgust, f fear, h happiness,
                                                n neutral, sa sadness, su surprise; n 1-15 (n: 1-30)

The owner's AVIs are not zero-padded (`DC/a1.avi`; the audio files are `a01.wav`), so one or two
digits are accepted and clip numbers compared as integers (`a01.avi` and `a1.avi` are clip 1).

The AVI clips carry their sound, which is what the records' audio features are made from;
`AudioData/<speaker>/*.wav` (the same speech at 44.1 kHz) may sit beside them and is not read.

Splits (both published here, so every user gets the same ones):
  fold0 .. fold3  speaker-independent folds, one speaker each (SPEAKERS order: DC, JE, JK, KL);
                  train on three ("fold1+fold2+fold3"), test on the fourth.
  train / test    the papers' speaker-dependent protocol, a random 80:20 split (they repeat it 5
                  times; this is one repetition, seed 0): within each speaker and emotion, a seeded
                  shuffle of SAVEE's clip list puts 20% in test (3 of 15 clips, 6 of 30 neutral),
                  96 of the 480 in all. It is a fixed table of (speaker, emotion, sentence number)
                  (`RANDOM_TEST`), whatever files are present. Each clip is in one fold and in one of train/test.
"""

from __future__ import annotations

import pathlib
import re

import numpy as np
import tensorflow_datasets as tfds

from data_builders import base, common
from fer_jax.errors import ConfigError, InputError
from fer_jax.preprocess.clip import ClipConfig

SPEAKERS = ("DC", "JE", "JK", "KL")
CODES = ("a", "d", "f", "h", "n", "sa", "su")
CLASSES = ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise")
SENTENCES = {code: 30 if code == "n" else 15 for code in CODES}  # clips per speaker and emotion
CLIP_FOLDER = "AudioVisualClip"
_NAME = re.compile(r"(sa|su|a|d|f|h|n)(\d{1,2})\.avi")
RANDOM_SEED = 0
TEST_FRACTION = 0.2


def clip_id(speaker: str, code: str, number: int) -> str:
    """"<speaker>/<code><n>", as the owner names the AVI (no zero padding): ("DC", "a", 1) -> "DC/a1"."""
    return f"{speaker}/{code}{number}"


def all_clips() -> list[tuple[str, str, int]]:
    """The 480 clips SAVEE has, as (speaker, code, sentence number)."""
    return [(s, c, n) for s in SPEAKERS for c in CODES for n in range(1, SENTENCES[c] + 1)]


def _random_test_clips(seed: int = RANDOM_SEED, fraction: float = TEST_FRACTION) -> frozenset[tuple[str, str, int]]:
    rng = np.random.default_rng(seed)
    test = []
    for speaker in SPEAKERS:
        for code in CODES:
            numbers = range(1, SENTENCES[code] + 1)
            order = rng.permutation(len(numbers))
            test += [(speaker, code, numbers[i]) for i in order[: round(fraction * len(numbers))]]
    return frozenset(test)


# The 96 clips of the "test" split, as (speaker, code, sentence number): keyed by the integer, so
# the table does not depend on how a copy pads its file names. The other 384 are "train".
RANDOM_TEST = _random_test_clips()


def parse_name(path) -> tuple[str, int, int]:
    """(speaker, class index, sentence number) of `AudioVisualClip/<speaker>/<code><n>.avi`, strictly.

    Raises InputError (reason "bad_name") when the folder is not a SAVEE speaker, the name is not
    an emotion code and one or two digits with the .avi extension, or the number is out of range.
    """
    path = pathlib.PurePath(path)
    speaker = path.parent.name
    hint = "expected AudioVisualClip/<DC|JE|JK|KL>/<a|d|f|h|n|sa|su><1-15, n: 1-30>.avi, e.g. DC/sa3.avi"
    if speaker not in SPEAKERS:
        raise InputError(path, "bad_name", f"folder {speaker!r} is not a SAVEE speaker; {hint}")
    match = _NAME.fullmatch(path.name)
    if match is None:
        raise InputError(path, "bad_name", f"{path.name!r} is not a SAVEE clip name; {hint}")
    code, number = match.group(1), int(match.group(2))
    if not 1 <= number <= SENTENCES[code]:
        raise InputError(path, "bad_name", f"sentence {number} out of range: '{code}' has 1-{SENTENCES[code]}")
    return speaker, CODES.index(code), number


def find_clips(root: pathlib.Path, report: common.BuildReport) -> dict[str, list[common.ClipItem]]:
    """{"fold0".."fold3", "train", "test": items} of the clips under `root`/AudioVisualClip.

    Each clip appears twice, under the same key (its clip id): in its speaker's fold and in train or test.
    """
    folder = root / CLIP_FOLDER
    if not folder.is_dir():
        raise ConfigError(f"{root}: no {CLIP_FOLDER} folder. {Builder.MANUAL_DOWNLOAD_INSTRUCTIONS}")
    folds = {f"fold{k}": [] for k in range(len(SPEAKERS))}
    random = {"train": [], "test": []}
    seen = {}
    for path in sorted(p for p in folder.glob("*/*") if p.is_file() and not p.name.startswith(".")):
        try:
            speaker, label, number = parse_name(path)
            clip = (speaker, CODES[label], number)
            if clip in seen:  # e.g. a1.avi and a01.avi: one clip, two files
                raise InputError(path, "duplicate", f"the same clip as {seen[clip].name}; keep one of the two files")
        except InputError as e:
            report.add_skip("unassigned", e)
            continue
        seen[clip] = path
        name = clip_id(*clip)
        split = "test" if clip in RANDOM_TEST else "train"
        folds[f"fold{SPEAKERS.index(speaker)}"].append(
            common.ClipItem(key=name, path=str(path), label=label, subject=speaker))
        random[split].append(common.ClipItem(key=name, path=str(path), label=label, subject=speaker))
    return {**folds, **random}


class Builder(base.ClipCorpusBuilder, skip_registration=True):
    """SAVEE audio-visual clips (7 emotions, 4 speakers): speaker folds and a seeded 80:20 split.

    Not registered with TFDS by name: TFDS ships an audio-only `savee` builder, and two classes
    registered as "savee" collide (which one wins depends on import order). fer-jax builds through
    this class; tfds.data_source("savee/<config>") reads the records from their files, since the
    config names here are not the audio-only builder's.
    """

    CLASS_NAMES = CLASSES
    DROP_SPLITS_WITHOUT_CLIPS = True
    HOMEPAGE = "http://kahlan.eps.surrey.ac.uk/savee/"
    CITATION = (
        "@inproceedings{haq2009speaker, title={Speaker-dependent audio-visual emotion recognition}, "
        "author={Haq, Sanaul and Jackson, Philip J. B.}, booktitle={Proc. Int. Conf. on Auditory-Visual "
        "Speech Processing (AVSP)}, pages={53--58}, year={2009}}"
    )
    BUILDER_CONFIGS = [
        base.ClipCorpusConfig(
            name="gray64_t8",
            description="64x64 gray faces, 8 frames; 4 s log-mel at 16 kHz (3D-CNN + ConvLSTM).",
            clip=ClipConfig(num_frames=8, size=64, grayscale=True, audio_seconds=4.0),
        ),
        base.ClipCorpusConfig(
            name="rgb224_t16_av",
            description="224x224 RGB faces, 16 frames; 4 s log-mel with deltas (attention fusion, MSFF).",
            clip=ClipConfig(num_frames=16, size=224, grayscale=False, audio_seconds=4.0,
                            audio_features=("log_mel_deltas",)),
        ),
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "SAVEE comes from the University of Surrey (http://kahlan.eps.surrey.ac.uk/savee/; register at "
        "http://kahlan.eps.surrey.ac.uk/savee/Register.html for the download link). From the download's "
        "Data/Zip/ folder unzip AudioVisualClip.zip into a folder and pass that folder as --manual-dir. Layout: "
        "<manual_dir>/AudioVisualClip/<DC|JE|JK|KL>/<a|d|f|h|n|sa|su><n>.avi, e.g. AudioVisualClip/DC/sa3.avi "
        "(AudioData/ from AudioData.zip may sit beside it; it is not read: the clips carry their sound)."
    )

    def find_clips(self, manual_dir, report):
        return find_clips(manual_dir, report)
