"""CREMA-D: the Crowd-sourced Emotional Multimodal Actors Dataset (Cao et al. 2014).

91 actors (ids 1001-1091; 48 male, 43 female) say 12 sentences in 6 emotions: 7,442 Flash videos
with sound, `VideoFlash/<actor>_<sentence>_<emotion>_<level>.flv`, the label in the name:

    sentence  DFA IEO IOM ITH ITS IWL IWW MTI TAI TIE TSI WSI
    emotion   ANG anger, DIS disgust, FEA fear, HAP happy, NEU neutral, SAD sad
    level     LO low, MD medium, HI high (only the IEO sentence has levels), XX unspecified

`AudioWAV/<same name>.wav` holds the same sound at 16 kHz. The FLVs carry it, and it is read from
them; when an FLV has no usable sound (no audio stream, an empty one, digital silence: some copies'
FLVs are so), it is read from the WAV of the same name if there is one (`audio_source.py`).

Folds: 5 actor-disjoint folds balanced by sex, by a published rule over the sexes in
CREMA-D's VideoDemographics.csv (`SEXES`): actors sorted males first, then females, each by id;
the k-th goes to fold k % 5. Every fold has 9-10 men and 8-9 women (18-19 actors); the table is
`FOLDS`. Splits "fold0" .. "fold4": train on four ("fold1+fold2+fold3+fold4"), test on the fifth.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re

import tensorflow_datasets as tfds

from data_builders import base, common
from data_builders.crema_d.audio_source import VideoWithWavAudio
from fer_jax.errors import ConfigError, InputError
from fer_jax.preprocess.clip import ClipConfig

EMOTIONS = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
CLASSES = ("anger", "disgust", "fear", "happy", "neutral", "sad")
SENTENCES = ("DFA", "IEO", "IOM", "ITH", "ITS", "IWL", "IWW", "MTI", "TAI", "TIE", "TSI", "WSI")
LEVELS = {"LO": "low", "MD": "medium", "HI": "high", "XX": "unspecified"}
FIRST_ACTOR, LAST_ACTOR = 1001, 1091
# Sex of actors 1001..1091 in order, from VideoDemographics.csv (M male, F female).
SEXES = "MFFFMFFFFFMFFMMMMFMFFMMFFMMFFFMMMMMMFMMMMMFMMFFMFMMFFFFFMFMFFMFMMMMMMMMFFFFFMFFMMFMFMMMMFMF"
NUM_FOLDS = 5
VIDEO_FOLDER, AUDIO_FOLDER = "VideoFlash", "AudioWAV"
_NAME = re.compile(r"(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})")


def sex_of(actor: int) -> str:
    return SEXES[actor - FIRST_ACTOR]


def _folds() -> tuple[tuple[int, ...], ...]:
    order = sorted(range(FIRST_ACTOR, LAST_ACTOR + 1), key=lambda a: (sex_of(a) != "M", a))
    return tuple(tuple(sorted(order[k::NUM_FOLDS])) for k in range(NUM_FOLDS))


FOLDS = _folds()
FOLD_OF_ACTOR = {actor: fold for fold, actors in enumerate(FOLDS) for actor in actors}


@dataclasses.dataclass(frozen=True)
class CremaName:
    actor: int
    sentence: str  # one of SENTENCES
    label: int  # index into CLASSES
    level: str  # "low" | "medium" | "high" | "unspecified"


def parse_name(path) -> CremaName:
    """Decode `<actor>_<sentence>_<emotion>_<level>.flv` (e.g. `1001_IEO_ANG_HI.flv`), strictly.

    Raises InputError (reason "bad_name") naming the file and the part that is wrong: the pattern,
    an actor outside 1001-1091, an unknown sentence, emotion or level, a level on a sentence other
    than IEO, a level on neutral, or an extension other than .flv.
    """
    path = pathlib.PurePath(path)

    def bad(message):
        return InputError(path, "bad_name", f"not a CREMA-D video name ({message}); expected "
                          "<actor>_<sentence>_<emotion>_<level>.flv, e.g. 1001_IEO_ANG_HI.flv")

    match = _NAME.fullmatch(path.stem)
    if match is None:
        raise bad("not four digits and three upper-case codes separated by '_'")
    actor, sentence, emotion, level = int(match.group(1)), match.group(2), match.group(3), match.group(4)
    if path.suffix != ".flv":
        raise bad(f"extension {path.suffix or '(none)'} is not .flv")
    if not FIRST_ACTOR <= actor <= LAST_ACTOR:
        raise bad(f"actor {actor} is not {FIRST_ACTOR}-{LAST_ACTOR}")
    if sentence not in SENTENCES:
        raise bad(f"sentence {sentence} is not one of {' '.join(SENTENCES)}")
    if emotion not in EMOTIONS:
        raise bad(f"emotion {emotion} is not one of {' '.join(EMOTIONS)}")
    if level not in LEVELS:
        raise bad(f"level {level} is not one of {' '.join(LEVELS)}")
    if level != "XX" and (sentence != "IEO" or emotion == "NEU"):
        raise bad(f"level {level}: only the IEO sentence in an emotion other than neutral has levels")
    return CremaName(actor, sentence, EMOTIONS.index(emotion), LEVELS[level])


# CREMA-D videos are 480x360 with faces of 120-200 px: no detector upsampling needed. Sentences
# last 1.3-5 s, most 2-3 s.
_AUDIO_SECONDS = 3.0


def find_clips(root: pathlib.Path, report: common.BuildReport) -> dict[str, list[common.ClipItem]]:
    """{"fold0".."fold4": items} of the videos in `root`/VideoFlash (malformed names skipped)."""
    folder = root / VIDEO_FOLDER
    if not folder.is_dir():
        raise ConfigError(f"{root}: no {VIDEO_FOLDER} folder. {Builder.MANUAL_DOWNLOAD_INSTRUCTIONS}")
    items = {f"fold{k}": [] for k in range(NUM_FOLDS)}
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        try:
            name = parse_name(path)
        except InputError as e:
            report.add_skip("unassigned", e)
            continue
        wav = root / AUDIO_FOLDER / f"{path.stem}.wav"
        source = VideoWithWavAudio(str(path), str(wav)) if wav.is_file() else str(path)
        items[f"fold{FOLD_OF_ACTOR[name.actor]}"].append(common.ClipItem(
            key=path.name, path=source, label=name.label, subject=str(name.actor),
            extra={"sentence": name.sentence, "level": name.level}))
    return items


class Builder(base.ClipCorpusBuilder, skip_registration=True):
    """CREMA-D audio-visual clips (6 emotions, 91 actors), 5 actor-disjoint sex-balanced folds.

    Not registered with TFDS by name: TFDS ships an audio-only `crema_d` builder, and two classes
    registered as "crema_d" collide (which one wins depends on import order). fer-jax builds
    through this class; tfds.data_source("crema_d/<config>") reads the records from their files,
    since the config names here are not the audio-only builder's.
    """

    CLASS_NAMES = CLASSES
    DROP_SPLITS_WITHOUT_CLIPS = True
    EXTRA_FEATURES = {
        "sentence": tfds.features.Text(),
        "level": tfds.features.ClassLabel(names=list(LEVELS.values())),
    }
    HOMEPAGE = "https://github.com/CheyneyComputerScience/CREMA-D"
    CITATION = (
        "@article{cao2014crema, title={CREMA-D: Crowd-sourced Emotional Multimodal Actors Dataset}, "
        "author={Cao, Houwei and Cooper, David G. and Keutmann, Michael K. and Gur, Ruben C. and Nenkova, "
        "Ani and Verma, Ragini}, journal={IEEE Transactions on Affective Computing}, volume={5}, "
        "number={4}, pages={377--390}, year={2014}}"
    )
    BUILDER_CONFIGS = [
        base.ClipCorpusConfig(
            name="gray64_t8",
            description="64x64 gray faces, 8 frames; 3 s log-mel at 16 kHz (3D-CNN + ConvLSTM).",
            clip=ClipConfig(num_frames=8, size=64, grayscale=True, audio_seconds=_AUDIO_SECONDS, upsample=0),
        ),
        base.ClipCorpusConfig(
            name="rgb224_t16_av",
            description="224x224 RGB faces, 16 frames; 3 s log-mel with deltas (attention fusion, MSFF).",
            clip=ClipConfig(num_frames=16, size=224, grayscale=False, audio_seconds=_AUDIO_SECONDS, upsample=0,
                            audio_features=("log_mel_deltas",)),
        ),
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "CREMA-D is published by its authors at https://github.com/CheyneyComputerScience/CREMA-D (Open "
        "Database License; the media files are in Git LFS: `git lfs clone` the repository, or `git lfs pull` "
        "in a clone). Pass the clone as --manual-dir. Layout: <manual_dir>/VideoFlash/<actor>_<sentence>_"
        "<emotion>_<level>.flv, e.g. VideoFlash/1001_IEO_ANG_HI.flv (7,442 files; AudioWAV/ and the rest "
        "of the repository may stay beside it and are not read)."
    )

    def find_clips(self, manual_dir, report):
        return find_clips(manual_dir, report)
