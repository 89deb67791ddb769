"""Preprocess the clips of many splits in one process pool, for corpora split into folds.

`common.generate_clip_examples` starts a process pool per split. Worker start-up (spawn, then
importing OpenCV, dlib and the landmark model) costs about 3 s per pool on a busy 2-core machine,
which a corpus cut into 10 folds (CK+, MMI) or one split per subject (CASME II's
leave-one-subject-out) would pay 10 to 26 times per build. `preprocess_splits` runs every split's
clips through one `generate_clip_examples` call instead, then hands each split its examples.

The ck_plus, mmi and casme2 builders share this module; it belongs in `data_builders/common.py`
(which their authors may not edit). `data_builders/afew/one_pool.py` solves the same problem for
the audio-visual corpora and streams examples instead of holding them; one of the two should
become the shared one. Both give a pool one worker per CLIPS_PER_WORKER clips, up to one per core.

The examples are held in memory until TFDS writes them: a few tens of kB per clip for the
fixed-length configs (CK+ gray64_t8: ~12 MB for its 327 clips), ~0.4 MB for the 32-frame lemhi
configs (CK+: ~140 MB).
"""

from __future__ import annotations

import os
from collections import Counter

from data_builders import common

# A worker's start-up (spawn, imports, the landmark model) costs about as much CPU as preprocessing
# 15-30 small clips, so a dummy corpus of a dozen clips is done by one worker, a real one by all cores.
CLIPS_PER_WORKER = 16


class CorpusReport(common.BuildReport):
    """A `BuildReport` that also counts the clips a config leaves out by design (not errors, so not
    `skipped`): unlabelled CK+ sequences, contempt in a 6-class config, MMI sessions without an
    emotion label, ... and notes about kept clips (e.g. a CASME II clip without an apex frame).

    Preprocessing runs once over all splits, so the throughput (source frames, wall seconds) is
    reported under the split name "all"; `kept` and `skipped` are per split as usual.
    """

    def __init__(self):
        super().__init__()
        self.excluded: Counter = Counter()
        self.notes: Counter = Counter()

    def to_dict(self) -> dict:
        return {**super().to_dict(), "excluded_by_reason": dict(self.excluded), "notes": dict(self.notes)}


def _root(item: common.ClipItem) -> str:
    """The file or folder a clip's errors name (or a path inside it)."""
    if isinstance(item.path, tuple):
        return os.path.commonpath([os.path.dirname(p) for p in item.path])
    return str(getattr(item.path, "name", item.path))  # a FrameSource names itself


def _split_of(path: str, roots: list[tuple[str, str]]) -> str:
    for root, split in roots:
        if path == root or path.startswith(root + os.sep):
            return split
    return "all"  # cannot happen for errors raised by process_clip; kept rather than lost


def preprocess_splits(
    items: dict[str, list[common.ClipItem]], clip, report: common.BuildReport, num_workers: int | None = None
) -> dict[str, list[tuple[str, dict]]]:
    """{split: items} -> {split: [(key, example), ...] in the items' order}, all in one pool.

    Records skipped clips under their own split in `report` (and kept counts per split); the
    throughput goes under "all". Keys must be unique across splits. `num_workers` defaults to one
    per CLIPS_PER_WORKER clips, at most one per core.
    """
    split_of_key, roots = {}, []
    for split, split_items in items.items():
        for item in split_items:
            if item.key in split_of_key:
                raise ValueError(f"clip key {item.key!r} appears twice ({split_of_key[item.key]} and {split})")
            split_of_key[item.key] = split
            roots.append((_root(item), split))
    roots.sort(key=lambda rs: -len(rs[0]))  # the most specific root wins
    scratch = common.BuildReport()
    examples: dict[str, list[tuple[str, dict]]] = {split: [] for split in items}
    everything = [item for split_items in items.values() for item in split_items]
    if num_workers is None:
        num_workers = max(1, min(os.cpu_count() or 1, len(everything) // CLIPS_PER_WORKER))
    if everything:
        for key, example in common.generate_clip_examples(everything, clip, "all", scratch, num_workers):
            examples[split_of_key[key]].append((key, example))
    for split, split_examples in examples.items():
        if split_examples:
            report.kept[split] += len(split_examples)
    for skip in scratch.skipped:
        report.add_skip(_split_of(skip["path"], roots), {k: v for k, v in skip.items() if k != "split"})
    for counter in ("source_frames", "wall_seconds", "core_seconds"):
        getattr(report, counter).update(getattr(scratch, counter))
    return examples
