"""Preprocess every split of a build in one process pool, streaming each split's examples to TFDS.

`common.generate_clip_examples` starts a process pool per call, so per split. A fresh worker pays
for spawning, importing OpenCV/dlib/PyAV/scipy, loading the landmark model and librosa's first mel
filterbank: 10-20 s on a busy 2-core machine, which a corpus cut into folds (RAVDESS 6, CREMA-D 5,
SAVEE 4 + train/test) would pay once per fold. `split_generators` makes one
`generate_clip_examples` call over the clips of all splits (in split order) and hands each split's
TFDS generator its own examples as they come.

Unlike `data_builders/ck_plus/pooled.py` (which holds every example in memory until TFDS writes
it, fine for CK+'s small fixed-length clips), nothing is held: TFDS writes one split after the
other, in the order `_split_generators` returns them, so the examples arrive in the order they are
written. Only if a generator is consumed out of that order are the examples of the other splits
it meets queued in memory until their split's turn (correct, just not streaming).

The demo_av, afew, savee, ravdess and crema_d builders share this module (ck_plus/pooled.py does
the same job holding examples in memory; the two should become one).
"""

from __future__ import annotations

import collections
import logging
import os
from collections.abc import Iterator

from data_builders import common
from fer_jax.errors import FerJaxError

ALL_SPLITS = "all"  # the split name the pool-wide throughput is reported under
# A worker's start-up costs about as much CPU as preprocessing 15-30 small clips, so a pool gets
# one worker per CLIPS_PER_WORKER clips (up to one per core): a dummy corpus of a dozen clips is
# done by one worker, a real one uses every core.
CLIPS_PER_WORKER = 16


class CorpusReport(common.BuildReport):
    """A `BuildReport` that also counts files left out by design, which are not errors (so not
    `skipped`, and no reason for `fer-jax build`'s exit status 3): RAVDESS's audio-only and
    video-only files, for instance. `excluded_by_reason` in the report lists their counts."""

    def __init__(self):
        super().__init__()
        self.excluded: collections.Counter = collections.Counter()

    def to_dict(self) -> dict:
        return {**super().to_dict(), "excluded_by_reason": dict(self.excluded)}


class _SplitStream:
    """One `generate_clip_examples` run over the items of all splits, dealt out split by split."""

    def __init__(self, items: dict[str, list[common.ClipItem]], clip, report: common.BuildReport, num_workers):
        self._everything = [item for split_items in items.values() for item in split_items]
        self._split_at = []  # position in _everything -> split
        self._end = {}  # split -> position after its last item
        for split, split_items in items.items():
            self._split_at += [split] * len(split_items)
            self._end[split] = len(self._split_at)
        self._position = {}
        for position, item in enumerate(self._everything):
            if item.key in self._position:
                raise ValueError(f"clip key {item.key!r} appears twice ({self._split_at[self._position[item.key]]} "
                                 f"and {self._split_at[position]})")
            self._position[item.key] = position
        self._report = report
        self._scratch = common.BuildReport()  # generate_clip_examples reports under one split name
        if num_workers is None:
            num_workers = max(1, min(os.cpu_count() or 1, len(self._everything) // CLIPS_PER_WORKER))
        self._source = common.generate_clip_examples(self._everything, clip, ALL_SPLITS, self._scratch, num_workers)
        self._resolved = 0  # items before this position have been yielded, queued or skipped
        self._skipped_positions: collections.deque = collections.deque()
        self._queued = {split: collections.deque() for split in items}
        self._done = False

    def examples(self, split: str) -> Iterator[tuple[str, dict]]:
        yield from self._examples(split)
        if not self._report.kept[split]:  # TFDS would fail with a bare "no examples" error
            reasons = collections.Counter(s["reason"] for s in self._report.skipped if s["split"] == split)
            raise FerJaxError(f"split {split}: every clip was skipped ({dict(reasons)}), so there is nothing to "
                              "write; check the corpus folder, and the files the messages above name")

    def _examples(self, split: str) -> Iterator[tuple[str, dict]]:
        while self._queued[split] or (self._resolved < self._end[split] and not self._done):
            if self._queued[split]:
                yield self._kept(split, self._queued[split].popleft())
                continue
            key, example = self._next()
            if key is None:
                break
            owner = self._split_at[self._position[key]]
            if owner == split:
                yield self._kept(split, (key, example))
            else:
                if self._end[owner] <= self._end[split]:
                    logging.warning("split %s generated after %s: its examples are held in memory", owner, split)
                self._queued[owner].append((key, example))
        if self._resolved >= len(self._everything):
            self._finish()

    def _kept(self, split, key_example):
        self._report.kept[split] += 1
        return key_example

    def _next(self) -> tuple[str | None, dict | None]:
        """The next kept clip's (key, example), after booking the skipped clips before it."""
        key, example = next(self._source, (None, None))
        position = len(self._everything) if key is None else self._position[key]
        self._skipped_positions.extend(range(self._resolved, position))
        self._resolved = position + 1
        self._book_skips()
        if key is None:
            self._finish()
        return key, example

    def _book_skips(self):
        # The pool reports skips in item order, so the n-th new skip is the n-th position that
        # yielded nothing: it goes to that position's split.
        while self._scratch.skipped and self._skipped_positions:
            entry = self._scratch.skipped.pop(0)
            split = self._split_at[self._skipped_positions.popleft()]
            self._report.add_skip(split, {k: v for k, v in entry.items() if k != "split"})

    def _finish(self):
        if self._done:
            return
        self._done = True
        leftover = list(self._source)  # runs the pool's generator to its end, where it books the throughput
        assert not leftover, "the pool yielded clips past the last item"
        self._book_skips()
        for counter in ("source_frames", "wall_seconds", "core_seconds"):
            getattr(self._report, counter).update(getattr(self._scratch, counter))


def split_generators(
    items: dict[str, list[common.ClipItem]], clip, report: common.BuildReport, num_workers: int | None = None
) -> dict[str, Iterator[tuple[str, dict]]]:
    """{split: items} -> {split: generator of (key, example)}, all preprocessed in one pool.

    Return the result from `_split_generators` (in this order: TFDS writes the splits in it).
    Kept and skipped clips are counted per split in `report`; the throughput goes under "all".
    `num_workers` defaults to one per CLIPS_PER_WORKER clips, at most one per core.
    Keys must be unique across splits. Splits without items are left out (TFDS cannot write an
    empty split); a split whose every clip is skipped raises FerJaxError once its turn is over.
    """
    items = {split: split_items for split, split_items in items.items() if split_items}
    stream = _SplitStream(items, clip, report, num_workers)
    return {split: stream.examples(split) for split in items}
