"""`ClipCorpusBuilder`: the one base of fer-jax's corpus builders.

A builder declares what is its own: its configs (`ClipCorpusConfig`: the preprocessing, the class
names), its layout parser (`find_clips`: {split: ClipItems} with labels and subject ids, files it
leaves out counted in the report), its extra record fields, its homepage, citation and manual
download instructions. The base does the rest:

- the TFDS record features (`common.clip_features`), version and array_record output;
- split generation: `_generate_examples` returns a `beam_pipeline.PreprocessClips` PTransform that
  preprocesses the clips of every split in one Beam stage and hands TFDS one PCollection per split,
  so TFDS runs the build on the runner it names (`fer-jax build --runner`, or `tfds build
  --beam_pipeline_options=...`); with no runner named it runs on the DirectRunner, in
  multi_processing mode once the corpus is large enough to pay for the worker processes
  (`beam_pipeline.set_direct_workers`);
- build_report.json beside the records, the same whichever runner built them: kept counts from
  TFDS's split infos, skipped files (with reasons) from the pipeline's side output, source frames
  and preprocessing seconds from Beam counters, the wall time and worker count of this build;
- a split whose every clip was skipped stops the build with the reasons (`empty_split_error`).

See data_builders/README.md for where FER2013, SEND and demo_av use these steps differently.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re
import time

import numpy as np
import tensorflow_datasets as tfds
from apache_beam.options import pipeline_options as po
from etils import epath

from data_builders import beam_pipeline, common
from fer_jax.errors import ConfigError, FerJaxError
from fer_jax.preprocess.clip import ClipConfig
from fer_jax.preprocess.sources import IMAGE_EXTENSIONS

# The inputs the whole-sequence corpora (CK+, MMI, CASME II) are built for, and the onset, apex and
# offset frame indices (the source's) that MMI and CASME II records carry.
GRAY64_T8 = ClipConfig(num_frames=8, size=64, grayscale=True, need_audio=False)  # 3D-CNN + ConvLSTM
# LEMHI-CNN + CNN-CTSLSTM (Hu et al. 2019): every frame of the rise (up to 32) and its LEMHI.
LEMHI = ClipConfig(size=112, grayscale=True, need_audio=False, variable_length=True, max_frames=32, lemhi=True)
TIMING_FEATURES = {name: tfds.features.Scalar(dtype=np.int32) for name in ("onset", "apex", "offset")}

# The audio-visual image fusion model (fer_jax/models/av_image.py, `av_image_inception`): aligned
# faces at its input size (image_size 128) beside the waveform picture, every corpus alike under
# the config name FACE_WAVEFORM. Three faces, not one: frame sampling keeps the first and last
# frames, so a single face would be the clip's first, the neutral onset; the model reads the middle
# one (FACE_WAVEFORM_FRAME, its `frame_index`).
FACE_WAVEFORM = "face_waveform"
FACE_WAVEFORM_FRAME = 1


_SKIPPED_FILE = "_skipped.json"  # the side output, inside the build folder, merged into the report


def loso_splits(held_out: str, subjects) -> tuple[str, str]:
    """(train split, validation split) of leave-one-subject-out, for corpora with one split per
    subject (CASME II, SMIC): every other subject against one."""
    subjects = sorted(subjects)
    if held_out not in subjects:
        raise ConfigError(f"subject {held_out!r} has no split; splits: {', '.join(subjects)}")
    return "+".join(s for s in subjects if s != held_out), held_out


def numbered_frames(folder: pathlib.Path) -> dict[int, pathlib.Path]:
    """{frame number: image file} of a clip folder of numbered frames (the last digit run of the
    name): img46.jpg -> 46, reg_image046811.bmp -> 46811."""
    frames = {}
    for image in folder.iterdir():
        digits = re.findall(r"\d+", image.stem)
        if image.suffix.lower() in IMAGE_EXTENSIONS and digits:
            frames[int(digits[-1])] = image
    return frames


class ClipCorpusConfig(tfds.core.BuilderConfig):
    """A corpus config: `clip`, the preprocessing (None: frames stored as given); `class_names`,
    when they differ from the builder's CLASS_NAMES; any other keyword is the builder's own setting,
    read as an attribute (e.g. `frontal_only=True` -> `config.frontal_only`)."""

    def __init__(self, *, clip: ClipConfig | None, class_names: tuple[str, ...] | None = None, **kwargs):
        own = {k: kwargs.pop(k) for k in list(kwargs) if k not in _BUILDER_CONFIG_FIELDS}
        super().__init__(**kwargs)
        self.clip = clip
        self.class_names = class_names
        for name, value in own.items():
            setattr(self, name, value)


_BUILDER_CONFIG_FIELDS = {f.name for f in dataclasses.fields(tfds.core.BuilderConfig)}


def face_waveform_clip(audio_seconds: float, **clip_options) -> ClipConfig:
    """The ClipConfig of a FACE_WAVEFORM config: 3 gray 128x128 faces (first, middle, last) and the
    first `audio_seconds` of the waveform drawn as a 256x256 picture ("waveform_image")."""
    return ClipConfig(num_frames=3, size=128, grayscale=True, audio_seconds=audio_seconds,
                      audio_features=("waveform_image",), **clip_options)


def face_waveform_config(audio_seconds: float, waveform: str | None = None, clip_options: dict | None = None,
                         name: str = FACE_WAVEFORM, **settings) -> ClipCorpusConfig:
    """A builder's FACE_WAVEFORM config; `waveform` says what the picture draws (default: the first
    `audio_seconds` of sound), `settings` are the builder's own (e.g. vocal_channels=("speech",)).
    `name`: FACE_WAVEFORM, unless the builder has several corpora (demo_av's confusable variant)."""
    waveform = waveform or f"the first {audio_seconds:g} s of sound"
    return ClipCorpusConfig(
        name=name,
        description=f"3 gray 128x128 faces (the model reads the middle one) beside {waveform} drawn as a 256x256 "
        "picture (audio-visual image fusion, av_image_inception).",
        clip=face_waveform_clip(audio_seconds, **(clip_options or {})),
        **settings,
    )


class ClipCorpusBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base of the clip corpora: subclasses set the class attributes below and `find_clips`."""

    VERSION = common.RECORDS_VERSION
    RELEASE_NOTES = common.RECORDS_RELEASE_NOTES
    CLASS_NAMES: tuple[str, ...] | None = None  # None: a corpus without classes (SEND)
    HOMEPAGE = ""
    CITATION = ""
    SUPERVISED_KEYS: tuple[str, str] | None = None
    EXTRA_FEATURES: dict = {}  # name -> FeatureConnector of fields that ClipItem.extra carries
    # Whether a split `find_clips` found no clip for is left out (official splits or folds a small
    # download may lack) rather than an error (subject folds that must all be there).
    DROP_SPLITS_WITHOUT_CLIPS = False

    def __init__(self, *, file_format: str | None = None, **kwargs):
        # array_record by default: what tfds.data_source (fer-jax's input pipeline) reads, also
        # when built with `tfds build` and no --file_format.
        super().__init__(file_format=file_format or "array_record", **kwargs)

    # ------------------------------------------------------------------------------------------
    # What a builder declares

    def find_clips(self, manual_dir: pathlib.Path, report: common.BuildReport) -> dict[str, list[common.ClipItem]]:
        """{split: ClipItems} of the corpus in `manual_dir`; files left out go to `report`."""
        raise NotImplementedError

    def new_report(self) -> common.BuildReport:
        return common.BuildReport()

    def extra_features(self) -> dict:
        return self.EXTRA_FEATURES

    def postprocess(self):
        """A module-level function example -> example run on each kept clip (in the workers), or None."""
        return None

    def empty_split_error(self, empty: list[str], report: common.BuildReport) -> FerJaxError:
        """The error for splits whose every clip was skipped (TFDS cannot write an empty split)."""
        reasons = {split: dict(_reasons(report, split)) for split in empty}
        return FerJaxError(
            "; ".join(f"split {split}: every clip was skipped ({reasons[split]})" for split in empty)
            + ", so there is nothing to write; check the corpus folder, and the files the messages above name"
        )

    # ------------------------------------------------------------------------------------------
    # What the base does

    @property
    def class_names(self) -> tuple[str, ...] | None:
        return self.builder_config.class_names or self.CLASS_NAMES

    def features(self) -> tfds.features.FeaturesDict:
        return common.clip_features(self.builder_config.clip, self.class_names, self.extra_features())

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=self.features(),
            supervised_keys=self.SUPERVISED_KEYS,
            homepage=self.HOMEPAGE,
            citation=self.CITATION or None,
        )

    def manual_folder(self, dl_manager) -> pathlib.Path:
        try:
            return pathlib.Path(str(dl_manager.manual_dir))
        except AssertionError as e:  # TFDS's way of saying the folder is missing or empty
            raise ConfigError(
                f"{e}\nPass the folder with --manual-dir (fer-jax) or --manual_dir (tfds). "
                + self.MANUAL_DOWNLOAD_INSTRUCTIONS
            ) from None

    def _download_and_prepare(self, dl_manager, download_config):
        self._beam_options = download_config.beam_options
        if self._beam_options is None and download_config.beam_runner is None:
            self._beam_options = po.PipelineOptions(["--runner=DirectRunner"])
            download_config = dataclasses.replace(download_config, beam_options=self._beam_options)
        self._started = time.perf_counter()
        self._split_names, self._num_items = [], {}  # set once the clips are listed
        try:
            super()._download_and_prepare(dl_manager, download_config)
        except Exception as error:
            self._raise_if_a_split_is_empty(error)
            raise
        report = self.report
        for split, info in self.info.splits.items():
            report.kept[split] = info.num_examples
        for entry in beam_pipeline.read_skipped(self._skipped_path()):
            report.add_skip(entry.pop("split"), entry)
        epath.Path(self._skipped_path()).unlink()
        report.write(self.data_dir)  # into the folder TFDS renames when done, so `tfds build` leaves it too

    def _split_generators(self, dl_manager, pipeline):
        self.report = self.new_report()
        items = self.find_clips(self.manual_folder(dl_manager), self.report)
        without = sorted(split for split, split_items in items.items() if not split_items)
        if without and not self.DROP_SPLITS_WITHOUT_CLIPS:
            raise self.empty_split_error(without, self.report)
        items = {split: split_items for split, split_items in items.items() if split_items}
        if not items:
            raise ConfigError(
                f"{self.name}: no clip to build in {dl_manager.manual_dir}. {self.MANUAL_DOWNLOAD_INSTRUCTIONS} "
                f"Skipped: {dict(_reasons(self.report))}"
            )
        _check_unique_keys(items)
        self._split_names = sorted(items)
        self._num_items = {split: len(split_items) for split, split_items in items.items()}
        if self._beam_options is not None:  # the pipeline exists, but runs only once every split is added
            beam_pipeline.set_direct_workers(self._beam_options, sum(map(len, items.values())))
        self._started = time.perf_counter()  # the throughput is the pipeline's, not the listing's (or demo_av's synthesis)
        return pipeline | self._generate_examples(items)

    def _generate_examples(self, items: dict[str, list[common.ClipItem]]):
        """The PTransform that preprocesses every split's clips: {split: PCollection of (key, example)}."""
        return beam_pipeline.PreprocessClips(items, self.builder_config.clip, self._skipped_path(), self.postprocess())

    def _skipped_path(self) -> str:
        return str(epath.Path(self.data_dir) / _SKIPPED_FILE)

    def _process_pipeline_result(self, pipeline_result) -> None:
        report = self.report
        report.wall_seconds = time.perf_counter() - self._started
        report.workers = beam_pipeline.local_workers(self._beam_options)
        if self._beam_options is not None:
            report.runner = self._beam_options.view_as(po.StandardOptions).runner or "DirectRunner"
        counters = beam_pipeline.counters(pipeline_result)
        for name, value in counters.items():
            split, _, what = name.rpartition("/")
            if what == "source_frames":
                report.source_frames[split] += value
            elif what == "clip_milliseconds":
                report.clip_seconds += value / 1000

    def _raise_if_a_split_is_empty(self, error: Exception) -> None:
        """TFDS's writer fails on a split without examples ("The total number of generated examples
        is 0"): if the pipeline got as far as writing the skipped clips, say which split lost every
        clip and why instead."""
        path = epath.Path(self._skipped_path())
        if not self._split_names or not path.exists():
            return
        skips = beam_pipeline.read_skipped(str(path))
        lost = {split: [s for s in skips if s["split"] == split] for split in self._split_names}
        empty = [split for split in self._split_names if len(lost[split]) == self._num_items[split]]
        if empty:
            for entry in skips:
                self.report.add_skip(entry.pop("split"), entry)
            raise self.empty_split_error(empty, self.report) from error


def _reasons(report: common.BuildReport, split: str | None = None):
    from collections import Counter

    return Counter(s["reason"] for s in report.skipped if split is None or s["split"] == split)


def _check_unique_keys(items: dict[str, list[common.ClipItem]]) -> None:
    for split, split_items in items.items():
        seen = set()
        for item in split_items:
            if item.key in seen:
                raise ValueError(f"clip key {item.key!r} appears twice in split {split}")
            seen.add(item.key)
