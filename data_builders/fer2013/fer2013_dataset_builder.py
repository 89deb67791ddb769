"""FER2013: 35,887 48x48 gray face images in 7 classes, for pretraining frame CNNs.

Configs:
    raw48      the 48x48 image as given, no face detection (the usual FER2013 protocol). Stored as
               "image" (48, 48, 1) uint8 and as a one-frame clip "frames" (1, 48, 48, 1), so frame
               models (mini_xception reads the last frame) train on it like on any clip corpus.
    aligned64  our face alignment (`process_frames`: dlib detector upsampled twice, since the faces
               are ~40 px, 68 landmarks, eyes on canonical spots) to 64x64: "frames" (1, 64, 64, 1),
               "landmarks" and "image" (64, 64, 1). Images without a detectable face are skipped and
               listed in build_report.json (reason "no_face").
Malformed csv rows are skipped in both, each listed with its line number and reason.
"""

from __future__ import annotations

import time

import numpy as np
import tensorflow_datasets as tfds

from data_builders import common
from data_builders.fer2013 import parse
from fer_jax.errors import ConfigError
from fer_jax.preprocess.clip import ClipConfig

SUBJECT = "unknown"  # FER2013 has no subject ids (images were collected by a web image search)


class Fer2013Config(tfds.core.BuilderConfig):
    def __init__(self, *, clip: ClipConfig | None, **kwargs):
        super().__init__(**kwargs)
        self.clip = clip  # None: the raw 48x48 image, no preprocessing


class Builder(tfds.core.GeneratorBasedBuilder):
    """FER2013 (Kaggle ICML 2013 challenge): angry, disgust, fear, happy, sad, surprise, neutral."""

    VERSION = common.RECORDS_VERSION
    RELEASE_NOTES = common.RECORDS_RELEASE_NOTES
    BUILDER_CONFIGS = [
        Fer2013Config(
            name="raw48",
            description="The 48x48 gray images as given, no face detection (the usual protocol).",
            clip=None,
        ),
        Fer2013Config(
            name="aligned64",
            description="Faces re-detected (upsample=2), landmark-aligned, 64x64 gray; no-face images skipped.",
            clip=ClipConfig(num_frames=1, size=64, grayscale=True, need_audio=False, upsample=2),
        ),
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "FER2013 comes from Kaggle's 'Challenges in Representation Learning: Facial Expression "
        "Recognition Challenge' (https://www.kaggle.com/c/challenges-in-representation-learning-facial-"
        "expression-recognition-challenge/data; sign in and accept the competition rules). Download "
        "fer2013.tar.gz, extract it, and pass the folder as --manual-dir. Layout: <manual_dir>/fer2013.csv "
        "(or <manual_dir>/fer2013/fer2013.csv, as the archive unpacks), header 'emotion,pixels,Usage'; "
        "or, without it, <manual_dir>/icml_face_data.csv from the competition download (header 'emotion, Usage, pixels')."
    )

    def __init__(self, *, file_format: str | None = None, **kwargs):
        # array_record by default: what tfds.data_source (and so fer-jax's input pipeline) reads,
        # also when this is built with `tfds build` and no --file_format.
        super().__init__(file_format=file_format or "array_record", **kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        clip = self.builder_config.clip
        if clip is None:
            side = parse.SIDE
            features = tfds.features.FeaturesDict(
                {
                    "image": common.array_feature((side, side, 1), np.uint8),
                    "frames": common.array_feature((1, side, side, 1), np.uint8),
                    "label": tfds.features.ClassLabel(names=list(parse.CLASSES)),
                    "subject": tfds.features.Text(),
                    "clip_id": tfds.features.Text(),
                }
            )
        else:
            image = common.array_feature((clip.size, clip.size, 1), np.uint8)
            features = common.clip_features(clip, parse.CLASSES, extra_features={"image": image})
        return self.dataset_info_from_configs(
            features=features,
            supervised_keys=("image", "label"),
            homepage="https://www.kaggle.com/c/challenges-in-representation-learning-facial-expression-recognition-challenge",
            citation=(
                "@inproceedings{goodfellow2013challenges, title={Challenges in representation learning: "
                "A report on three machine learning contests}, author={Goodfellow, Ian J. and Erhan, Dumitru "
                "and others}, booktitle={ICONIP}, year={2013}}"
            ),
        )

    def _download_and_prepare(self, dl_manager, download_config=None):
        super()._download_and_prepare(dl_manager, download_config)
        # Into the still-incomplete folder TFDS renames when done, so `tfds build` leaves it too.
        self.report.write(self.data_dir)

    def _split_generators(self, dl_manager):
        csv_path = parse.find_csv(_manual_dir(dl_manager))
        rows, bad = parse.read_fer2013(csv_path)
        self.report = common.BuildReport()
        for row in bad:
            entry = {"path": f"{csv_path}:line {row.line}", "reason": row.reason, "message": row.message}
            self.report.add_skip(row.split or "unassigned", entry)
        return {split: self._generate_examples(split, split_rows, csv_path) for split, split_rows in rows.items()}

    def _generate_examples(self, split, rows, csv_path):
        if self.builder_config.clip is None:
            yield from self._raw_examples(split, rows)
            return
        items = [
            common.ClipItem(
                key=f"line{row.line}", path=f"{csv_path}:line {row.line}", label=row.label, subject=SUBJECT,
                frames=row.image[None],
            )
            for row in rows
        ]
        for key, example in common.generate_clip_examples(items, self.builder_config.clip, split, self.report):
            example["image"] = example["frames"][-1]
            yield key, example

    def _raw_examples(self, split, rows):
        start = time.perf_counter()
        for row in rows:
            image = row.image[..., None]
            self.report.kept[split] += 1
            yield f"line{row.line}", {
                "image": image,
                "frames": image[None],
                "label": row.label,
                "subject": SUBJECT,
                "clip_id": f"line{row.line}",
            }
        self.report.add_throughput(split, len(rows), time.perf_counter() - start, 1)


def _manual_dir(dl_manager) -> str:
    try:
        return str(dl_manager.manual_dir)
    except AssertionError as e:  # TFDS's way of saying the folder is missing or empty
        raise ConfigError(f"{e}\nPass the folder with --manual-dir (fer-jax) or --manual_dir (tfds).") from None
