"""FERV39k: a large-scale multi-scene dataset for facial expression recognition in videos (Wang et
al., CVPR 2022), its official train / test split, with the scene of each clip.

38,935 clips from 22 scenes (Action, Argue, ..., War), each labelled with one of 7 emotions; 31,088
for training and 7,847 for testing. The owners ship each clip as a folder of face-crop frames and
the split as two lists:

    2_ClipsforFaceCrop/<Scene>/<Emotion>/<4 digits>/<frames>.jpg
    4_setups/All_scenes/train_All.csv, test_All.csv      rows "<Scene>/<Emotion>/<4 digits> <Emotion>"

The frames are read in natural name order and go through the same face alignment as every corpus
(the crops have margins, so dlib finds the face in them). Splits: "train" and "test". Every record
carries its `scene` (a class label over SCENES) for per-scene scores. FERV39k names no actors:
every record's subject is "unknown".

Skipped with their reason: rows naming a clip folder that is not there ("missing"), a label that
is not one of the 7 or is not the emotion folder the row names ("bad_label"), a scene that is not
one of the 22 ("bad_name"), and the clips the preprocessing rejects (a zero-byte or unreadable
frame, no face in any frame, ...).
"""

from __future__ import annotations

import pathlib

import tensorflow_datasets as tfds

from data_builders import base, common, listed_clips
from data_builders.listed_clips import ListedClip
from fer_jax.errors import InputError

# Emotion folder names, in the order MAE-DFER's preprocess/ferv39k.py numbers them.
EMOTIONS = ("Happy", "Sad", "Neutral", "Angry", "Surprise", "Disgust", "Fear")
CLASSES = tuple(e.lower() for e in EMOTIONS)
SCENES = ("Action", "Argue", "Business", "Conflict", "Contest", "Crime", "Crisis", "DailyLife", "ElegantArt",
          "Experiment", "History", "Interview", "Liveshow", "Medicine", "OfficialEvent", "ScholarReport", "School",
          "Social", "Speech", "Talkshow", "Terror", "War")
CLIP_DIR = "2_ClipsforFaceCrop"
LISTS = {"train": "4_setups/All_scenes/train_All.csv", "test": "4_setups/All_scenes/test_All.csv"}


def scene_and_label(row: ListedClip) -> tuple[int, int]:
    """(scene index, class index) of a row; InputError "bad_name" or "bad_label" when they are not
    FERV39k's or the label is not the row's emotion folder."""
    parts = row.name.split("/")
    if len(parts) != 3 or parts[0] not in SCENES:
        raise InputError(row.list_file, "bad_name", f"row {row.row}: {row.name!r} is not <Scene>/<Emotion>/<clip> "
                         f"with one of FERV39k's 22 scenes ({', '.join(SCENES)})")
    if row.label not in EMOTIONS or parts[1] != row.label:
        raise InputError(row.list_file, "bad_label", f"row {row.row}: label {row.label!r} is not one of "
                         f"{', '.join(EMOTIONS)} or not the emotion folder of {row.name}")
    return SCENES.index(parts[0]), EMOTIONS.index(row.label)


def find_clips(root: pathlib.Path, report: common.BuildReport) -> dict[str, list[common.ClipItem]]:
    """{"train": items, "test": items} of the clip folders the official lists name."""
    splits = {split: listed_clips.read_space_separated(root / path, Builder.MANUAL_DOWNLOAD_INSTRUCTIONS)
              for split, path in LISTS.items()}

    def resolve(row: ListedClip) -> common.ClipItem:
        scene, label = scene_and_label(row)
        folder = root / CLIP_DIR / row.name
        if not folder.is_dir():
            raise InputError(folder, "missing", f"{row.where} names clip {row.name}, which is not in {CLIP_DIR}/")
        return common.ClipItem(key=row.name, path=str(folder), label=label, subject=listed_clips.UNKNOWN_SUBJECT,
                               extra={"scene": scene})

    return listed_clips.clip_items(splits, resolve, report)


class Builder(base.ClipCorpusBuilder):
    """FERV39k's clips (7 emotions, 22 scenes), official train / test."""

    CLASS_NAMES = CLASSES
    EXTRA_FEATURES = {"scene": tfds.features.ClassLabel(names=list(SCENES))}
    HOMEPAGE = "https://wangyanckxx.github.io/Proj_CVPR2022_FERV39k.html"
    CITATION = (
        "@inproceedings{wang2022ferv39k, title={FERV39k: A Large-Scale Multi-Scene Dataset for Facial Expression "
        "Recognition in Videos}, author={Wang, Yan and Sun, Yixuan and Huang, Yiwen and Liu, Zhongying and Gao, "
        "Shuyong and Zhang, Wei and Ge, Weifeng and Zhang, Wenqiang}, booktitle={Proceedings of the IEEE/CVF "
        "Conference on Computer Vision and Pattern Recognition}, pages={20922--20931}, year={2022}}"
    )
    BUILDER_CONFIGS = listed_clips.benchmark_configs(audio=False)
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "FERV39k comes from its owners (https://wangyanckxx.github.io/Proj_CVPR2022_FERV39k.html) after "
        "signing their agreement; it is for non-commercial research. Unpack it and pass the folder that holds "
        "2_ClipsforFaceCrop/ and 4_setups/ as --manual-dir. Layout: "
        "<manual_dir>/2_ClipsforFaceCrop/<Scene>/<Emotion>/<clip>/<frames>.jpg and "
        "<manual_dir>/4_setups/All_scenes/train_All.csv, test_All.csv (rows 'Action/Happy/0015 Happy')."
    )

    def find_clips(self, manual_dir, report):
        return find_clips(manual_dir, report)
