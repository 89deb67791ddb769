"""SEND (Stanford Emotional Narratives Dataset, SENDv1): valence over time, rated every 0.5 s.

193 rated clips of people telling positive and negative stories from their lives (about 2-2.5 min
each), with the observers' evaluator-weighted valence estimate every 0.5 s; 112 of them are
distributed with their video (the other 81 are rated, but their video is withheld: counted in the
build report's excluded_by_reason as `video_withheld`, not as errors). The target is a
sequence: one valence per rating step. Each record is one video, sampled at the ratings' 2 Hz:

    frames        (S * r, size, size, C) uint8   aligned faces, r per step (`timed_frames`)
    frame_mask    (S * r,) bool                  real frames (the rest is padding)
    landmarks     (S * r, 68, 2) float32         in crop pixels
    log_mel       (S * 50, n_mels) float32       100 frames/s from the start of step 0: rows
                                                 50k .. 50k + 49 are step k's half second
    audio_frames  int                            log-mel rows that are real audio
    valence       (S,) float32                   EWE / 50 - 1 in [-1, 1], 0 in padding
    valence_mask  (S,) bool                      steps with a rating
    step_times    (S,) float32                   each step's rating time, seconds into the video
    subject       "ID<n>";  clip_id  "ID<n>_vid<k>"
  and with `words` (config gray64_2hz_words):
    word_features (S, 385) float32               per step: VADER valence of its words, MiniLM
                                                 embedding of the utterance so far
                                                 (fer_jax.preprocess.words); zeros in padding
    words         text                           the timed words as JSON (fer_jax.preprocess.transcribe):
                                                 subtitles beside the video, else Whisper tiny.en

S = max_steps. Videos rated for longer are cut to S steps and listed under "truncated" in
build_report.json (nothing is cut silently). Splits are SEND's official subject-disjoint
partitions: the folder a video is in (train, valid -> validation, test).
"""

from __future__ import annotations


import numpy as np
import tensorflow_datasets as tfds

from data_builders import base, common
from data_builders.send import layout
from data_builders.send.timed_frames import TimedFrames, step_frame_times
from fer_jax.preprocess.clip import ClipConfig


class SendConfig(base.ClipCorpusConfig):
    """The clip follows from the rating steps: one face per 0.5 s step (or frames_per_step), up to
    max_steps, and the audio of those steps; with `words`, the timed words and their features too."""

    def __init__(self, *, max_steps: int, frames_per_step: int = 1, size: int = 64, grayscale: bool = True,
                 words: bool = False, **kwargs):
        clip = ClipConfig(
            size=size,
            grayscale=grayscale,
            variable_length=True,
            max_frames=max_steps * frames_per_step,
            need_audio=True,
            audio_seconds=max_steps * layout.STEP_S,
            audio_features=("log_mel",),
        )
        super().__init__(clip=clip, max_steps=max_steps, frames_per_step=frames_per_step, words=words, **kwargs)


class SendBuildReport(common.BuildReport):
    """The corpus report (kept, skipped, excluded by design), plus the videos kept but cut to max_steps."""

    def __init__(self):
        super().__init__()
        self.truncated: list[dict] = []

    def to_dict(self) -> dict:
        return {**super().to_dict(), "truncated": self.truncated}


class Builder(base.ClipCorpusBuilder):
    """SENDv1: per-step valence of self-paced emotional narratives, with faces and audio at 2 Hz."""

    HOMEPAGE = "https://github.com/StanfordSocialNeuroscienceLab/SEND"
    CITATION = (
        "@article{ong2021modeling, title={Modeling emotion in complex stories: the Stanford Emotional "
        "Narratives Dataset}, author={Ong, Desmond C. and Wu, Zhengxuan and Tan, Zhi-Xuan and Reddan, "
        "Marianne and Kahhale, Isabella and Mattek, Alison and Zaki, Jamil}, journal={IEEE Transactions "
        "on Affective Computing}, volume={12}, number={3}, pages={579--594}, year={2021}}"
    )
    BUILDER_CONFIGS = [
        SendConfig(
            name="gray64_2hz",
            description="64x64 gray aligned face per 0.5 s rating step, up to 360 steps (3 min); 64-band log-mel.",
            max_steps=360,
        ),
        SendConfig(
            name="gray64_2hz_words",
            description="gray64_2hz plus the timed words (subtitles beside a video, else Whisper tiny.en) and "
                        "per-step word features (VADER valence, MiniLM utterance embedding).",
            max_steps=360,
            words=True,
        ),
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "SENDv1 is released to researchers by the Stanford Social Neuroscience Lab "
        "(https://github.com/StanfordSocialNeuroscienceLab/SEND; contact Desmond Ong) under a research-only "
        "license. Pass the folder holding it as --manual-dir, laid out as: train/ID<subject>_vid<k>.mp4, "
        "valid/ID<subject>_vid<k>.mp4, test/ID<subject>_vid<k>.mp4 (the official partitions) and "
        "ratings/{train,valid,test}/observer_EWE/results_<subject>_<k>.csv (columns time, "
        "evaluatorWeightedEstimate; one row per 0.5 s, valence on a 0..100 scale)."
    )

    def extra_features(self) -> dict:
        steps = self.builder_config.max_steps
        extra = {
            "valence": common.array_feature((steps,), np.float32),
            "valence_mask": common.array_feature((steps,), np.bool_),
            "step_times": common.array_feature((steps,), np.float32),
        }
        if self.builder_config.words:
            from fer_jax.preprocess.words import WORD_FEATURES

            extra["word_features"] = common.array_feature((steps, WORD_FEATURES), np.float32)
            extra["words"] = tfds.features.Text()
        return extra

    def new_report(self) -> SendBuildReport:
        return SendBuildReport()

    def find_clips(self, manual_dir, report):
        found = layout.scan(str(manual_dir))
        for skip in found.skips:
            report.add_skip(skip.pop("split"), skip)
        report.excluded.update(clip["reason"] for clip in found.withheld)
        items = {split: [] for split in layout.SPLIT_OF_FOLDER.values()}
        for v in found.videos:
            items[v.split].append(self._item(v, report))
        return items

    def _item(self, v: layout.SendVideo, report: SendBuildReport) -> common.ClipItem:
        config = self.builder_config
        steps = config.max_steps
        n = len(v.ratings.times)
        if n > steps:
            report.truncated.append({"split": v.split, "path": v.video, "steps": n, "kept_steps": steps})
            n = steps
        times = v.ratings.times[:n]
        source = TimedFrames(
            v.video, step_frame_times(times, config.frames_per_step, layout.STEP_S),
            audio_start_s=times[0] - layout.STEP_S,
        )
        extra = {
            "valence": _padded(v.ratings.valence[:n], steps),
            "valence_mask": np.arange(steps) < n,
            "step_times": _padded(times.astype(np.float32), steps),
        }
        if config.words:
            extra.update(_word_fields(v.video, times, steps))
        return common.ClipItem(key=v.key, path=source, label=None, subject=v.subject, extra=extra)


def _word_fields(video: str, times: np.ndarray, steps: int) -> dict:
    """The video's timed words (JSON) and their features on its rating steps, padded to `steps`."""
    import json

    from fer_jax.preprocess.transcribe import transcribe_video
    from fer_jax.preprocess.words import WORD_FEATURES, step_word_features

    transcript = transcribe_video(video)
    features = np.zeros((steps, WORD_FEATURES), np.float32)
    features[: len(times)] = step_word_features(transcript.words, times, layout.STEP_S)
    return {"word_features": features, "words": json.dumps(transcript.to_json())}


def _padded(values: np.ndarray, total: int) -> np.ndarray:
    out = np.zeros(total, np.float32)
    out[: len(values)] = values
    return out

