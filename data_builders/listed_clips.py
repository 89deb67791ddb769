"""Corpora whose owners ship the split as lists of clip names (DFEW, MAFW, FERV39k).

Such a corpus is a folder of clips plus list files, one per split or per test fold, each row naming a
clip and its label. A builder parses its own list format into `ListedClip`s; this module places
them in folds (`folds_from_test_lists`: fold k is test list k, and a clip listed in two test lists
is in neither, skipped as "fold_conflict", never placed by guess) and turns them into
`common.ClipItem`s through the builder's `resolve` (clip file, label), counting every row it cannot
use in the build report with its reason. `benchmark_configs` are the record configs these
benchmarks are read with.
"""

from __future__ import annotations

import collections
import dataclasses
import pathlib
from typing import Callable

from data_builders import base, common
from fer_jax.errors import ConfigError, InputError
from fer_jax.preprocess.clip import ClipConfig

# The MAE-DFER protocol's input (16 frames of 160x160 RGB; its fine-tuning scripts' input_size=160,
# num_frames=16), and the attention + FBP model's (16 frames of 224x224 RGB, as on AFEW) with sound.
RGB160_T16 = ClipConfig(num_frames=16, size=160, grayscale=False, need_audio=False)
UNKNOWN_SUBJECT = "unknown"  # the subject of a clip from a corpus that names no person
AUDIO_SECONDS = 3.0  # the log-mel's fixed length (the audio CNN reads a fixed length), as for AFEW's film clips


def benchmark_configs(audio: bool) -> list[base.ClipCorpusConfig]:
    """gray64_t8 (3D-CNN + ConvLSTM), rgb160_t16 (MAE-DFER) and, for a corpus with sound,
    rgb224_t16_av (attention + FBP)."""
    configs = [
        base.ClipCorpusConfig(name="gray64_t8", description="8 frames of 64x64 gray faces, no audio (3D-CNN + "
                              "ConvLSTM).", clip=base.GRAY64_T8),
        base.ClipCorpusConfig(name="rgb160_t16", description="16 frames of 160x160 RGB faces, no audio (the "
                              "MAE-DFER protocol's input).", clip=RGB160_T16),
    ]
    if audio:
        configs.append(base.ClipCorpusConfig(
            name="rgb224_t16_av", description="16 frames of 224x224 RGB faces; 3 s log-mel with deltas (attention "
            "+ FBP).", clip=ClipConfig(num_frames=16, size=224, grayscale=False, audio_seconds=AUDIO_SECONDS,
                                       audio_features=("log_mel_deltas",))))
    return configs


@dataclasses.dataclass(frozen=True)
class ListedClip:
    """One row of an owner's list: the clip's name and label as written, and where the row is."""

    name: str
    label: str
    list_file: pathlib.Path
    row: int  # 1-based line number in list_file

    @property
    def where(self) -> str:
        return f"{self.list_file}:row {self.row}"


def fold_name(fold: int) -> str:
    return f"fold{fold}"


def cross_validation_splits(test_fold: int, num_folds: int = 5) -> tuple[str, str]:
    """(train split, test split) of one round: fold `test_fold` (the owners' set_{test_fold + 1})
    against the others, e.g. 0 -> ("fold1+fold2+fold3+fold4", "fold0")."""
    if not 0 <= test_fold < num_folds:
        raise ConfigError(f"folds are 0..{num_folds - 1} (the owners' set_1..set_{num_folds}), not {test_fold}")
    return "+".join(fold_name(k) for k in range(num_folds) if k != test_fold), fold_name(test_fold)


def folds_from_test_lists(test_lists: list[list[ListedClip]], report: common.BuildReport) -> dict[str, list[ListedClip]]:
    """{fold0: rows of test_lists[0], ...}; a clip named in more than one test list is skipped
    (reason "fold_conflict", split "none") from every fold, so no clip is in two folds."""
    lists_of = collections.defaultdict(list)
    for rows in test_lists:
        for row in rows:
            lists_of[row.name].append(row)
    folds = {fold_name(k): [] for k in range(len(test_lists))}
    for k, rows in enumerate(test_lists):
        for row in rows:
            listed = lists_of[row.name]
            if len(listed) == 1:
                folds[fold_name(k)].append(row)
            elif row is listed[0]:
                places = " and ".join(f"{r.list_file.name} row {r.row}" for r in listed)
                report.add_skip("none", InputError(row.list_file, "fold_conflict", f"clip {row.name} is in more than "
                                                   f"one test list ({places}), so its fold is unknown; left out"))
    return folds


def clip_items(splits: dict[str, list[ListedClip]], resolve: Callable[[ListedClip], common.ClipItem],
               report: common.BuildReport) -> dict[str, list[common.ClipItem]]:
    """{split: ClipItems} of the rows `resolve` accepts; the InputErrors it raises (a missing clip,
    a bad label, ...) are skipped into `report` under the row's split."""
    items = {}
    for split, rows in splits.items():
        items[split] = []
        for row in rows:
            try:
                items[split].append(resolve(row))
            except InputError as e:
                report.add_skip(split, e)
    return items


def fold_items(test_lists: list[list[ListedClip]], clip_path: Callable[[ListedClip], pathlib.Path],
               label_of: Callable[[ListedClip], int], report: common.BuildReport) -> dict[str, list[common.ClipItem]]:
    """{"fold0": items, ...}: fold k holds the clips of test_lists[k] (`folds_from_test_lists`), each
    one video named by `clip_path` with the class `label_of` reads from its row. Both raise
    InputError for a bad row (label first, then the file); the row is skipped into `report`. These
    in-the-wild corpora name no person, so every clip's subject is UNKNOWN_SUBJECT."""

    def resolve(row: ListedClip) -> common.ClipItem:
        label = label_of(row)
        path = clip_path(row)
        return common.ClipItem(key=path.stem, path=str(path), label=label, subject=UNKNOWN_SUBJECT)

    return clip_items(folds_from_test_lists(test_lists, report), resolve, report)


def read_space_separated(path: pathlib.Path, download_instructions: str) -> list[ListedClip]:
    """The rows of a list file of "<clip> <label>" lines (MAFW's and FERV39k's lists)."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such list file. {download_instructions}")
    rows = []
    for n, line in read_rows(path):
        fields = line.split() + ["", ""]
        rows.append(ListedClip(name=fields[0], label=fields[1], list_file=path, row=n))
    return rows


def read_rows(path: pathlib.Path) -> list[tuple[int, str]]:
    """(line number, text) of the non-blank lines of a list file."""
    text = path.read_text(encoding="utf-8-sig", errors="replace")  # DFEW's CSVs may carry a BOM
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
