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


import numpy as np
import tensorflow_datasets as tfds

from data_builders import base, common
from data_builders.fer2013 import parse
from fer_jax.preprocess.clip import ClipConfig

SUBJECT = "unknown"  # FER2013 has no subject ids (images were collected by a web image search)


class Builder(base.ClipCorpusBuilder):
    """FER2013 (Kaggle ICML 2013 challenge): angry, disgust, fear, happy, sad, surprise, neutral."""

    CLASS_NAMES = parse.CLASSES
    DROP_SPLITS_WITHOUT_CLIPS = True
    SUPERVISED_KEYS = ("image", "label")
    HOMEPAGE = "https://www.kaggle.com/c/challenges-in-representation-learning-facial-expression-recognition-challenge"
    CITATION = (
        "@inproceedings{goodfellow2013challenges, title={Challenges in representation learning: "
        "A report on three machine learning contests}, author={Goodfellow, Ian J. and Erhan, Dumitru "
        "and others}, booktitle={ICONIP}, year={2013}}"
    )
    BUILDER_CONFIGS = [
        base.ClipCorpusConfig(
            name="raw48",
            description="The 48x48 gray images as given, no face detection (the usual protocol).",
            clip=None,  # the raw 48x48 image, no preprocessing
        ),
        base.ClipCorpusConfig(
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

    def features(self) -> tfds.features.FeaturesDict:
        clip = self.builder_config.clip
        if clip is not None:
            image = common.array_feature((clip.size, clip.size, 1), np.uint8)
            return common.clip_features(clip, parse.CLASSES, extra_features={"image": image})
        side = parse.SIDE
        return tfds.features.FeaturesDict(
            {
                "image": common.array_feature((side, side, 1), np.uint8),
                "frames": common.array_feature((1, side, side, 1), np.uint8),
                "label": tfds.features.ClassLabel(names=list(parse.CLASSES)),
                "subject": tfds.features.Text(),
                "clip_id": tfds.features.Text(),
            }
        )

    def find_clips(self, manual_dir, report):
        csv_path = parse.find_csv(str(manual_dir))
        rows, bad = parse.read_fer2013(csv_path)
        for row in bad:
            entry = {"path": f"{csv_path}:line {row.line}", "reason": row.reason, "message": row.message}
            report.add_skip(row.split or "unassigned", entry)
        # raw48 stores the image as one frame (1, 48, 48, 1); aligned64 preprocesses it as one gray frame.
        raw = self.builder_config.clip is None
        return {
            split: [
                common.ClipItem(
                    key=f"line{row.line}", path=f"{csv_path}:line {row.line}", label=row.label, subject=SUBJECT,
                    frames=row.image[None, ..., None] if raw else row.image[None],
                )
                for row in split_rows
            ]
            for split, split_rows in rows.items()
        }

    def postprocess(self):
        return parse.image_from_last_frame
