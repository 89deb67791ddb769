"""avec2013: the AVEC 2013 depression sub-challenge (Valstar et al., AVEC 2013): BDI-II per recording.

Recordings of the Audio-Visual Depressive Language Corpus (AViD) in three official partitions
(Training, Development, Testing), each labelled with its speaker's BDI-II score (0..63). A
recording runs many minutes, too long for one record, so each video is read in windows: window k
covers [k * window_s, (k + 1) * window_s) of the video, its frames evenly spaced in it (the frame
on screen at the middle of each of `num_frames` equal parts, decoded from the key frame before the
window: `TimedFrames(seek=True)`). A record is one window:

    frames, frame_mask?, landmarks     the clip config's (8 aligned 64x64 grey faces)
    score           float32            the recording's BDI-II score (every window of a video alike)
    video_index     int32              the video's position in the corpus (sorted file stems), for
                                       aggregating window predictions per video
    video_id        text               the video's file stem
    window_index    int32              k
    window_start_s  float32            k * window_s
    subject, clip_id                   "<subject>", "<video stem>/w<k:05d>"

Scoring (fer_jax.train.tasks.VideoScore, fer_jax.eval.regression): the windows' predictions are
averaged per video, then MAE and RMSE over the videos, as the challenge scores them. Splits: the
official partitions (train, validation, test). Windows of a video never straddle two of them.
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from data_builders import base, common
from data_builders.avec2013 import layout
from data_builders.send.timed_frames import TimedFrames
from fer_jax.errors import InputError
from fer_jax.preprocess import video
from fer_jax.preprocess.clip import ClipConfig


class WindowConfig(base.ClipCorpusConfig):
    """Windows of `window_s` seconds, `num_frames` frames of `size`x`size` faces each."""

    def __init__(self, *, window_s: float, num_frames: int = 8, size: int = 64, **kwargs):
        clip = ClipConfig(num_frames=num_frames, size=size, grayscale=True, need_audio=False)
        super().__init__(clip=clip, window_s=window_s, **kwargs)


def window_times(k: int, window_s: float, num_frames: int) -> np.ndarray:
    """(num_frames,) seconds: the middles of num_frames equal parts of window k."""
    return (k + (np.arange(num_frames) + 0.5) / num_frames) * window_s


def windows(recording: layout.Recording, video_index: int, config: WindowConfig) -> list[common.ClipItem]:
    """The ClipItems of every whole window of one recording (InputError: the video cannot be read,
    or is shorter than one window)."""
    seconds = video.duration_s(recording.video)
    count = int(seconds // config.window_s)
    if count == 0:
        message = f"the video lasts {seconds:.2f} s, less than one {config.window_s:g} s window"
        raise InputError(recording.video, "too_short", message)
    items = []
    for k in range(count):
        source = TimedFrames(recording.video, window_times(k, config.window_s, config.clip.num_frames), seek=True)
        extra = {
            "score": np.float32(recording.bdi), "video_index": np.int32(video_index), "video_id": recording.key,
            "window_index": np.int32(k), "window_start_s": np.float32(k * config.window_s),
        }
        items.append(common.ClipItem(f"{recording.key}/w{k:05d}", source, None, recording.subject, extra=extra))
    return items


class Builder(base.ClipCorpusBuilder):
    """AVEC2013 depression: windows of each recording, with the recording's BDI-II score."""

    HOMEPAGE = "https://avec2013-db.sspnet.eu/"
    CITATION = (
        "@inproceedings{valstar2013avec, title={AVEC 2013: the continuous audio/visual emotion and depression "
        "recognition challenge}, author={Valstar, Michel and Schuller, Bj{\\\"o}rn and Smith, Kirsty and Eyben, "
        "Florian and Jiang, Bihan and Bilakhia, Sanjay and Schnieder, Sebastian and Cowie, Roddy and Pantic, Maja}, "
        "booktitle={Proceedings of the 3rd ACM International Workshop on Audio/Visual Emotion Challenge}, "
        "pages={3--10}, year={2013}, doi={10.1145/2512530.2512533}}"
    )
    EXTRA_FEATURES = {
        "score": tfds.features.Scalar(dtype=np.float32),
        "video_index": tfds.features.Scalar(dtype=np.int32),
        "video_id": tfds.features.Text(),
        "window_index": tfds.features.Scalar(dtype=np.int32),
        "window_start_s": tfds.features.Scalar(dtype=np.float32),
    }
    # A partition none of whose videos is usable (the test labels not in the copy) is left out.
    DROP_SPLITS_WITHOUT_CLIPS = True
    BUILDER_CONFIGS = [
        WindowConfig(
            name="gray64_t8_w2s",
            description="2 s windows of each recording, 8 frames of 64x64 grey aligned faces each (3D-CNN + ConvLSTM input).",
            window_s=2.0,
        ),
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "AVEC2013's depression data (AViD-Corpus) is shared by the challenge organisers (https://avec2013-db.sspnet.eu/) "
        "after signing their end-user license agreement. Pass the folder holding AVEC2013/ (or its partitions) as "
        "--manual-dir: <Training|Development|Testing>/Video/<subject>_<session>_*.mp4 (or .avi) and "
        "<Training|Development|Testing>/DepressionLabels/<subject>_<session>_Depression.csv (one number, the BDI-II score)."
    )

    def find_clips(self, manual_dir, report):
        found = layout.scan(str(manual_dir))
        for skip in found.skips:
            report.add_skip(skip.pop("split"), skip)
        report.excluded.update(entry["reason"] for entry in found.excluded)
        _note_shared_subjects(found.recordings, report)
        index = {key: i for i, key in enumerate(sorted(r.key for r in found.recordings))}
        items = {split: [] for split in layout.SPLIT_OF_PARTITION.values()}
        for recording in found.recordings:
            try:
                items[recording.split] += windows(recording, index[recording.key], self.builder_config)
            except InputError as e:
                report.add_skip(recording.split, e)
        return items


def _note_shared_subjects(recordings: list[layout.Recording], report: common.BuildReport) -> None:
    """Count subjects recorded in more than one partition (notes: `subject_in_two_partitions`): the
    challenge's partitions are its own, and this builder keeps them as they are."""
    splits_of: dict[str, set] = {}
    for r in recordings:
        splits_of.setdefault(r.subject, set()).add(r.split)
    shared = sum(1 for splits in splits_of.values() if len(splits) > 1)
    if shared:
        report.notes["subject_in_two_partitions"] += shared
