"""AFEW: Acted Facial Expressions in the Wild (Dhall et al.), the EmotiW video sub-challenge corpus.

Short film and TV clips with their sound, each labelled with one of 7 emotions by the folder it is
in: `Train/<Emotion>/*.avi` and `Val/<Emotion>/*.avi` (EmotiW's archives unpack to `Train_AFEW/`
and `Val_AFEW/`, which are read as well). The test set has no public labels and is not built.
Splits: the official ones, "train" and "validation". AFEW has no actor ids: every record's
subject is "unknown".

Film scenes are often dark. As in the 3D-CNN + ConvLSTM paper (Saurav et al. 2020), dark clips are
gamma-corrected with gamma = 1.5 before detection and cropping. The paper does not say what
"dark" is; here a clip is dark when the mean BT.601 luma of its kept frames is below DARK_LUMA =
80 (of 255): well-lit footage averages 100-130, night and indoor film scenes 30-70.

Clips in a folder that is not one of the 7 emotions are skipped (reason "bad_label"); files in
an emotion folder that are not .avi videos are counted in `excluded_by_reason`.
"""

from __future__ import annotations

import pathlib


from data_builders import base, common
from fer_jax.errors import ConfigError, InputError
from fer_jax.preprocess.clip import ClipConfig

EMOTION_FOLDERS = ("Angry", "Disgust", "Fear", "Happy", "Neutral", "Sad", "Surprise")
CLASSES = tuple(folder.lower() for folder in EMOTION_FOLDERS)
# split -> the folder names it may have, in order of preference (the brief layout, EmotiW's archives)
SPLIT_FOLDERS = {"train": ("Train", "Train_AFEW"), "validation": ("Val", "Val_AFEW")}
SUBJECT = "unknown"  # AFEW does not identify its actors
GAMMA = 1.5
DARK_LUMA = 80.0
_AUDIO_SECONDS = 3.0  # AFEW clips last 0.3-5.4 s, most 1-3 s


def _afew_clip(**kwargs) -> ClipConfig:
    return ClipConfig(gamma=GAMMA, gamma_if_dark_below=DARK_LUMA, **kwargs)


def split_folder(root: pathlib.Path, split: str) -> pathlib.Path:
    """The folder holding `split`'s emotion folders under `root` (ConfigError if there is none)."""
    for name in SPLIT_FOLDERS[split]:
        if (root / name).is_dir():
            return root / name
    names = " or ".join(SPLIT_FOLDERS[split])
    raise ConfigError(f"{root}: no {names} folder. {Builder.MANUAL_DOWNLOAD_INSTRUCTIONS}")


def label_of(path: pathlib.Path) -> int:
    """Class index of an AFEW clip from its emotion folder; InputError "bad_label" otherwise."""
    if path.parent.name not in EMOTION_FOLDERS:
        raise InputError(path, "bad_label", f"folder {path.parent.name!r} is not one of AFEW's emotions "
                         f"({', '.join(EMOTION_FOLDERS)}); move the clip into the folder of its emotion")
    return EMOTION_FOLDERS.index(path.parent.name)


def find_clips(root: pathlib.Path, report: common.BuildReport) -> dict[str, list[common.ClipItem]]:
    """{"train": items, "validation": items}: the .avi clips in each split's folders."""
    items = {}
    for split in SPLIT_FOLDERS:
        folder = split_folder(root, split)
        items[split] = []
        for path in sorted(folder.glob("*/*")):
            if not path.is_file() or path.name.startswith("."):
                continue
            if path.suffix.lower() != ".avi":
                if path.parent.name in EMOTION_FOLDERS:
                    report.excluded["not an .avi file"] += 1
                continue  # other folders (e.g. EmotiW's face crops and points) are not clips
            try:
                label = label_of(path)
            except InputError as e:
                report.add_skip(split, e)
                continue
            key = path.relative_to(root).as_posix()
            items[split].append(common.ClipItem(key=key, path=str(path), label=label, subject=SUBJECT))
    return items


class Builder(base.ClipCorpusBuilder):
    """AFEW clips (7 emotions) with their sound; the official train / validation split."""

    CLASS_NAMES = CLASSES
    DROP_SPLITS_WITHOUT_CLIPS = True
    HOMEPAGE = "https://cs.anu.edu.au/few/AFEW.html"
    CITATION = (
        "@article{dhall2012collecting, title={Collecting Large, Richly Annotated Facial-Expression "
        "Databases from Movies}, author={Dhall, Abhinav and Goecke, Roland and Lucey, Simon and Gedeon, "
        "Tom}, journal={IEEE MultiMedia}, volume={19}, number={3}, pages={34--41}, year={2012}}"
    )
    BUILDER_CONFIGS = [
        base.ClipCorpusConfig(
            name="gray64_t8",
            description="64x64 gray faces, 8 frames, dark clips gamma-corrected; 3 s log-mel (3D-CNN + ConvLSTM).",
            clip=_afew_clip(num_frames=8, size=64, grayscale=True, audio_seconds=_AUDIO_SECONDS),
        ),
        base.ClipCorpusConfig(
            name="rgb224_t16_av",
            description="224x224 RGB faces, 16 frames; 3 s log-mel with deltas (attention + FBP, MSFF).",
            clip=_afew_clip(num_frames=16, size=224, grayscale=False, audio_seconds=_AUDIO_SECONDS,
                            audio_features=("log_mel_deltas",)),
        ),
        base.ClipCorpusConfig(
            name="lemhi",
            description="Up to 32 frames (all of shorter clips), 112x112 gray, with the LEMHI; no audio (LEMHI-CNN).",
            clip=_afew_clip(size=112, grayscale=True, variable_length=True, max_frames=32, lemhi=True,
                            need_audio=False),
        ),
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "AFEW comes from its owner, Abhinav Dhall (https://cs.anu.edu.au/few/AFEW.html), under an academic "
        "licence, distributed through the EmotiW challenge (https://sites.google.com/site/emotiwchallenge): "
        "sign the EULA there to get the download links. "
        "Unpack the Train and Val archives into one folder and pass it as --manual-dir. Layout: "
        "<manual_dir>/Train/<Emotion>/<clip>.avi and <manual_dir>/Val/<Emotion>/<clip>.avi with <Emotion> one "
        "of Angry Disgust Fear Happy Neutral Sad Surprise (the archives' Train_AFEW/ and Val_AFEW/ folder "
        "names work too). The unlabelled test set is not used."
    )

    def find_clips(self, manual_dir, report):
        return find_clips(manual_dir, report)
