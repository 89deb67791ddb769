"""BP4D+ (Zhang et al., CVPR 2016): spontaneous expressions of 140 participants in ten
emotion-eliciting tasks, read from the 2D face videos as the owners ship them.

Layout (as rPPG-Toolbox's BP4DPlusLoader reads it): one zip per participant, `2D+3D/F001.zip` ..
`2D+3D/M058.zip`, whose JPEG frames sit under `F001/T1/` .. `F001/T10/`; the physiological signals
under `Physiology/F001/T1/*.txt`. A record is one task of one participant, labelled with the task's
target emotion (TASK_EMOTIONS). Folds: BigSmall's three subject-disjoint splits (bigsmall_folds.json),
splits "fold0" .. "fold2". The face_waveform config pictures a physiological signal beside the face:
BP4D+ has no audio (data_builders/bp4d_plus/physiology.py).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import re
import zipfile
import zlib

from data_builders import base, common
from data_builders.bp4d_plus.physiology import SignalBeside
from fer_jax.errors import ConfigError, InputError
from fer_jax.preprocess.sources import ZipImages, natural_key

# Task -> the emotion it was designed to elicit (its "target emotion"): the label of its clip.
TASK_EMOTIONS = {
    "T1": "happiness", "T2": "surprise", "T3": "sadness", "T4": "startle", "T5": "skepticism",
    "T6": "embarrassment", "T7": "fear", "T8": "pain", "T9": "anger", "T10": "disgust",
}
CLASSES = tuple(TASK_EMOTIONS.values())
_FOLDS_FILE = pathlib.Path(__file__).with_name("bigsmall_folds.json")
FOLDS: tuple[tuple[str, ...], ...] = tuple(tuple(f) for f in json.loads(_FOLDS_FILE.read_text())["folds"])
FOLD_OF_SUBJECT = {subject: fold for fold, subjects in enumerate(FOLDS) for subject in subjects}
FRAMES_DIR, PHYSIOLOGY_DIR = "2D+3D", "Physiology"
_SUBJECT = re.compile(r"[FM]\d{3}")
_TASK = re.compile(r"T\d+")
# The 2D frames are the zip's JPEGs (rPPG-Toolbox reads only .jpg members); the 3D models' files
# beside them in the same zip are not frames.
FRAME_SUFFIX = ".jpg"
# BP4D+'s 2D frames are 1040x1392 with faces of several hundred pixels: no detector upsampling.
_CLIP_OPTIONS = {"upsample": 0}


def fold_name(fold: int) -> str:
    return f"fold{fold}"


def task_frames(archive: zipfile.ZipFile, subject: str) -> dict[str, list[str]]:
    """{task folder: its JPEG members in natural name order} of a participant's zip; other members
    (3D models, files outside `<subject>/<task>/`) are not frames."""
    tasks: dict[str, list[str]] = {}
    for member in archive.namelist():
        parts = member.split("/")
        if len(parts) == 3 and parts[0] == subject and parts[2].lower().endswith(FRAME_SUFFIX):
            tasks.setdefault(parts[1], []).append(member)
    return {task: sorted(members, key=lambda m: natural_key(m.rsplit("/", 1)[1])) for task, members in tasks.items()}


def find_clips(root: pathlib.Path, config, report: common.BuildReport) -> dict[str, list[common.ClipItem]]:
    """{"fold0": items, ...}: one item per task of each participant's zip in root/2D+3D/.

    Skipped, each with its reason: a zip named after no BP4D+ participant (`unknown_subject`), a zip
    that cannot be opened (`truncated`), a task folder other than T1 .. T10 (`unknown_task`).
    """
    folder = root / FRAMES_DIR
    zips = sorted(folder.glob("*.zip")) if folder.is_dir() else []
    if not zips:
        raise ConfigError(f"{root}: no {FRAMES_DIR}/F001.zip .. M058.zip. {Builder.MANUAL_DOWNLOAD_INSTRUCTIONS}")
    items = {fold_name(f): [] for f in range(len(FOLDS))}
    for path in zips:
        subject = path.stem
        if subject not in FOLD_OF_SUBJECT:
            expected = "F001 .. F082 or M001 .. M058" if not _SUBJECT.fullmatch(subject) else "one of BP4D+'s 140"
            report.add_skip("unassigned", InputError(path, "unknown_subject", f"{subject!r} is not a participant "
                                                     f"({expected}); a renamed or foreign zip?"))
            continue
        split = fold_name(FOLD_OF_SUBJECT[subject])
        try:
            with zipfile.ZipFile(path) as archive:
                tasks = task_frames(archive, subject)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as err:
            report.add_skip(split, InputError(path, "truncated", f"not a readable zip archive ({err}); re-copy it"))
            continue
        for task in sorted(tasks, key=natural_key):
            name = f"{path}:{subject}/{task}"
            if task not in TASK_EMOTIONS:
                detail = "not a task folder" if not _TASK.fullmatch(task) else "BP4D+ has tasks T1 .. T10"
                report.add_skip(split, InputError(name, "unknown_task", f"{task!r}: {detail}"))
                continue
            source = ZipImages(path, tasks[task], name=name)
            if config.signal is not None:
                signal = root / PHYSIOLOGY_DIR / subject / task / config.signal
                source = SignalBeside(source, str(signal), config.clip.audio_seconds)
            items[split].append(common.ClipItem(key=f"{subject}/{task}", path=source,
                                                label=CLASSES.index(TASK_EMOTIONS[task]), subject=subject))
    return items


class Builder(base.ClipCorpusBuilder):
    """BP4D+ 2D face videos, one clip per participant and task, labelled with the task's target
    emotion; BigSmall's three subject-disjoint folds."""

    CLASS_NAMES = CLASSES
    HOMEPAGE = "https://www.cs.binghamton.edu/~lijun/Research/3DFE/3DFE_Analysis.html"
    CITATION = (
        "@inproceedings{zhang2016multimodal, title={Multimodal Spontaneous Emotion Corpus for Human Behavior "
        "Analysis}, author={Zhang, Zheng and Girard, Jeff M. and Wu, Yue and Zhang, Xing and Liu, Peng and "
        "Ciftci, Umur and Canavan, Shaun and Reale, Michael and Horowitz, Andy and Yang, Huiyuan and Cohn, "
        "Jeffrey F. and Ji, Qiang and Yin, Lijun}, booktitle={CVPR}, pages={3438--3446}, year={2016}}"
    )
    BUILDER_CONFIGS = [
        base.ClipCorpusConfig(
            name="gray64_t8",
            description="8 frames of 64x64 gray faces per task, no audio (BP4D+ has none) (3D-CNN + ConvLSTM).",
            clip=dataclasses.replace(base.GRAY64_T8, **_CLIP_OPTIONS),
            signal=None,
        ),
        base.face_waveform_config(
            4.0, waveform="the whole task's blood-pressure wave (Physiology/<subject>/<task>/BP_mmHg.txt; BP4D+ has "
            "no audio)", clip_options=_CLIP_OPTIONS, signal="BP_mmHg.txt"),
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "BP4D+ is licensed by its owners at Binghamton University "
        "(https://www.cs.binghamton.edu/~lijun/Research/3DFE/3DFE_Analysis.html; an agreement signed by a "
        "faculty member). Pass the folder that holds its 2D+3D/ (F001.zip .. M058.zip) and, for the "
        "face_waveform config, Physiology/ folders as --manual-dir: <manual_dir>/2D+3D/F001.zip holding "
        "F001/T1/*.jpg .. F001/T10/*.jpg, <manual_dir>/Physiology/F001/T1/BP_mmHg.txt."
    )

    def find_clips(self, manual_dir, report):
        return find_clips(manual_dir, self.builder_config, report)
