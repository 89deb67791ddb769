"""RAVDESS: the Ryerson Audio-Visual Database of Emotional Speech and Song (Livingstone & Russo 2018).

24 actors (odd ids male, even female) say or sing two statements in 8 emotions. Every recording
comes as three files that differ only in their first code: 01 full audio-visual (MP4 with sound),
02 video-only (the same MP4 without sound), 03 audio-only (WAV). A file's name is its label:

    MM-VV-EE-II-SS-RR-AA.ext   modality, vocal channel (01 speech, 02 song), emotion (01 neutral ..
                               08 surprised), intensity (01 normal, 02 strong), statement (01, 02),
                               repetition (01, 02), actor (01 .. 24)

Only full-AV (01) files become records: the audio-visual configs need the sound, and a video-only
02 file is the very same recording as its 01 twin without it, so reading both would store every
clip twice. 02 and 03 files are counted in the build report's `excluded_by_reason` (not errors:
they do not make `fer-jax build` exit with status 3), never left out silently. Song (02) recordings
exist for 6 emotions only (no disgust, no surprised), by 23 actors (actor 18 recorded no song:
Zenodo has no Video_Song_Actor_18.zip), and are read by the `*_song` config only; its fold 4
(actors 17-20) has song clips of three actors.

Folds: 6 actor-disjoint folds of 4 consecutive actors (2 male, 2 female), the published table
`FOLDS`; splits "fold0" .. "fold5". Train on five, test on the sixth: "fold1+fold2+...".
"""

from __future__ import annotations

import dataclasses
import pathlib
import re

import numpy as np
import tensorflow_datasets as tfds

from data_builders import base, common
from fer_jax.errors import ConfigError, InputError
from fer_jax.preprocess.clip import ClipConfig

CLASSES = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
MODALITIES = {1: "full-AV", 2: "video-only", 3: "audio-only"}
VOCAL_CHANNELS = ("speech", "song")
INTENSITIES = ("normal", "strong")
SONG_CLASSES = CLASSES[:6]  # the song recordings have no disgust and no surprised
SONG_ACTORS = tuple(a for a in range(1, 25) if a != 18)  # actor 18 recorded no song
NUM_ACTORS = 24
# Fold k holds actors 4k+1 .. 4k+4: two odd (male) and two even (female) actors each.
FOLDS: tuple[tuple[int, ...], ...] = tuple(tuple(range(4 * k + 1, 4 * k + 5)) for k in range(NUM_ACTORS // 4))
FOLD_OF_ACTOR = {actor: fold for fold, actors in enumerate(FOLDS) for actor in actors}
_NAME = re.compile(r"(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)")
_ACTOR_FOLDER = re.compile(r"Actor_(\d\d)")
_EXTENSION = {1: ".mp4", 2: ".mp4", 3: ".wav"}


@dataclasses.dataclass(frozen=True)
class RavdessName:
    """The seven codes of a RAVDESS file name, decoded."""

    modality: int  # 1 full-AV, 2 video-only, 3 audio-only
    vocal_channel: str  # "speech" | "song"
    label: int  # index into CLASSES (the file's emotion code - 1)
    intensity: str  # "normal" | "strong"
    statement: int  # 1 "Kids are talking by the door", 2 "Dogs are sitting by the door"
    repetition: int  # 1 | 2
    actor: int  # 1 .. 24; odd male, even female

    @property
    def subject(self) -> str:
        return f"Actor_{self.actor:02d}"


def parse_name(path) -> RavdessName:
    """Decode a RAVDESS file name (e.g. `02-01-06-01-02-01-12.mp4`), strictly.

    Raises InputError (reason "bad_name") naming the file and the code that is wrong when the
    name is not seven two-digit codes, a code is out of its range, the extension does not match
    the modality, or the combination does not exist in RAVDESS (a strong neutral, a song in
    disgust or surprised).
    """
    path = pathlib.PurePath(path)
    match = _NAME.fullmatch(path.stem)

    def bad(message):
        return InputError(path, "bad_name", f"not a RAVDESS file name ({message}); expected MM-VV-EE-II-SS-RR-AA"
                          ".mp4/.wav, e.g. 01-01-06-01-02-01-12.mp4")

    if match is None:
        raise bad("not seven two-digit codes separated by '-'")
    modality, vocal, emotion, intensity, statement, repetition, actor = (int(code) for code in match.groups())
    checks = [
        (modality in MODALITIES, f"modality {modality:02d} is not 01, 02 or 03"),
        (vocal in (1, 2), f"vocal channel {vocal:02d} is not 01 (speech) or 02 (song)"),
        (1 <= emotion <= len(CLASSES), f"emotion {emotion:02d} is not 01 .. 08"),
        (intensity in (1, 2), f"intensity {intensity:02d} is not 01 or 02"),
        (statement in (1, 2), f"statement {statement:02d} is not 01 or 02"),
        (repetition in (1, 2), f"repetition {repetition:02d} is not 01 or 02"),
        (1 <= actor <= NUM_ACTORS, f"actor {actor:02d} is not 01 .. 24"),
    ]
    for ok, message in checks:
        if not ok:
            raise bad(message)
    if path.suffix.lower() != _EXTENSION[modality]:
        raise bad(f"modality {modality:02d} files are {_EXTENSION[modality]}, this is {path.suffix or 'no extension'}")
    if emotion == 1 and intensity == 2:
        raise bad("neutral has no strong intensity")
    if vocal == 2 and CLASSES[emotion - 1] not in SONG_CLASSES:
        raise bad(f"the song recordings have no {CLASSES[emotion - 1]}")
    return RavdessName(modality, VOCAL_CHANNELS[vocal - 1], emotion - 1, INTENSITIES[intensity - 1],
                       statement, repetition, actor)


# RAVDESS is 1280x720 with faces of ~300 px: the detector needs no upsampling (which would
# quadruple its cost). Utterances last about 3.5 s, lead-in silence included.
_AUDIO_SECONDS = 3.5


def find_clips(root: pathlib.Path, vocal_channels, report: common.BuildReport) -> dict[str, list[common.ClipItem]]:
    """{"fold0": items, ...} of the full-AV files under `root`/Actor_NN/ in `vocal_channels`.

    Malformed names, and names whose actor is not their folder's, are skipped (reason
    "bad_name"); video-only, audio-only and unread song files are counted in `report.excluded`.
    """
    folders = sorted(p for p in root.iterdir() if p.is_dir() and _ACTOR_FOLDER.fullmatch(p.name))
    if not folders:
        raise ConfigError(f"{root}: no Actor_01 .. Actor_24 folders. {Builder.MANUAL_DOWNLOAD_INSTRUCTIONS}")
    items = {f"fold{k}": [] for k in range(len(FOLDS))}
    for folder in folders:
        for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
            try:
                name = parse_name(path)
                if name.subject != folder.name:
                    raise InputError(path, "bad_name", f"actor {name.actor:02d} in the name, but the file is in "
                                     f"{folder.name}; re-extract the corpus")
            except InputError as e:
                report.add_skip("unassigned", e)
                continue
            if name.modality != 1:
                report.excluded[f"{MODALITIES[name.modality]} file (only full-AV files are read)"] += 1
            elif name.vocal_channel not in vocal_channels:
                report.excluded[f"{name.vocal_channel} file (not in this config)"] += 1
            else:
                extra = {"vocal_channel": name.vocal_channel, "intensity": name.intensity,
                         "statement": name.statement, "repetition": name.repetition}
                items[f"fold{FOLD_OF_ACTOR[name.actor]}"].append(common.ClipItem(
                    key=f"{folder.name}/{path.name}", path=str(path), label=name.label, subject=name.subject,
                    extra=extra))
    return items


class Builder(base.ClipCorpusBuilder):
    """RAVDESS full-AV clips (8 emotions), actor-disjoint 6-fold cross-validation splits."""

    CLASS_NAMES = CLASSES
    DROP_SPLITS_WITHOUT_CLIPS = True
    EXTRA_FEATURES = {
        "vocal_channel": tfds.features.ClassLabel(names=list(VOCAL_CHANNELS)),
        "intensity": tfds.features.ClassLabel(names=list(INTENSITIES)),
        "statement": tfds.features.Scalar(dtype=np.int32),
        "repetition": tfds.features.Scalar(dtype=np.int32),
    }
    HOMEPAGE = "https://zenodo.org/records/1188976"
    CITATION = (
        "@article{livingstone2018ravdess, title={The Ryerson Audio-Visual Database of Emotional Speech and "
        "Song (RAVDESS)}, author={Livingstone, Steven R. and Russo, Frank A.}, journal={PLoS ONE}, "
        "volume={13}, number={5}, pages={e0196391}, year={2018}}"
    )
    BUILDER_CONFIGS = [
        base.ClipCorpusConfig(
            name="gray64_t8",
            description="Speech; 64x64 gray faces, 8 frames; 3.5 s log-mel at 16 kHz (3D-CNN + ConvLSTM).",
            clip=ClipConfig(num_frames=8, size=64, grayscale=True, audio_seconds=_AUDIO_SECONDS, upsample=0),
            vocal_channels=("speech",),
        ),
        base.ClipCorpusConfig(
            name="gray64_t8_song",
            description=f"Speech and song (song: 6 emotions, {len(SONG_ACTORS)} actors: actor 18 sang none); "
            "otherwise as gray64_t8.",
            clip=ClipConfig(num_frames=8, size=64, grayscale=True, audio_seconds=_AUDIO_SECONDS, upsample=0),
            vocal_channels=VOCAL_CHANNELS,
        ),
        base.ClipCorpusConfig(
            name="rgb224_t16_av",
            description="Speech; 224x224 RGB faces, 16 frames; log-mel with deltas (attention fusion, MSFF).",
            clip=ClipConfig(num_frames=16, size=224, grayscale=False, audio_seconds=_AUDIO_SECONDS, upsample=0,
                            audio_features=("log_mel_deltas",)),
            vocal_channels=("speech",),
        ),
        base.face_waveform_config(_AUDIO_SECONDS, clip_options={"upsample": 0}, vocal_channels=("speech",)),
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "RAVDESS is on Zenodo (https://zenodo.org/records/1188976, CC BY-NC-SA 4.0; the authors' site is "
        "https://smartlaboratory.org/ravdess/). Download Video_Speech_Actor_01.zip .. Video_Speech_Actor_24.zip "
        "(and Video_Song_Actor_XX.zip for the song config), unzip them all into one folder and pass it as "
        "--manual-dir. Layout: <manual_dir>/Actor_01/01-01-01-01-01-01-01.mp4 ... <manual_dir>/Actor_24/...; "
        "each video zip holds the full-AV (01-*) and video-only (02-*) MP4s. Only 01-* files are read; "
        "audio-only WAVs (03-*, Audio_Speech_Actors_01-24.zip) may sit beside them and are left out."
    )

    def find_clips(self, manual_dir, report):
        return find_clips(manual_dir, self.builder_config.vocal_channels, report)
