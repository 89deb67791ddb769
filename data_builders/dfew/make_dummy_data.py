"""Write `dummy_data/`: a miniature DFEW in the owners' layout, from real faces, with bad files.

    .venv/bin/python -m data_builders.dfew.make_dummy_data

Clips are scikit-image faces animated into an expression with a synthetic voice
(`data_builders.demo_av.synth`), 160x160 at 25 fps, written as H.264 + AAC MP4s
`Clip/original/<5 digits>.mp4`; the fold lists are `EmoLabel_DataSplit/test(single-labeled)/set_k.csv`
(video_name,label, the clip number without its leading zeros) and the train lists beside them (each
the other four test sets, as the owners ship them; the builder does not read them).

Kept: six clips, fold0 (set_1) two, each other fold one. Plus:
    00107.mp4  0 bytes                                 -> skipped, zero_byte    (fold1)
    00108.mp4  no face in any frame                    -> skipped, no_face      (fold2)
    00109      listed in set_4, no file                -> skipped, missing      (fold3)
    00110.mp4  label 8 in set_5                        -> skipped, bad_label    (fold4)
    00111.mp4  listed in set_1 and set_2               -> skipped, fold_conflict
"""

from __future__ import annotations

import pathlib

import numpy as np

from data_builders.afew import dummy_media as dm
from data_builders.demo_av import synth
from data_builders.dfew.dfew_dataset_builder import CLASSES, CLIP_DIR, NUM_FOLDS, SPLIT_DIR, TEST_LIST, Builder

OUT = pathlib.Path(__file__).parent / "dummy_data"
RENDER = {"happy": "happiness", "sad": "sadness", "neutral": "neutral", "angry": "anger", "surprise": "surprise",
          "disgust": "disgust", "fear": "fear"}
# (clip number, DFEW class, test sets it is listed in): the clips every config keeps
GOOD = [(101, "happy", (1,)), (102, "sad", (1,)), (103, "angry", (2,)), (104, "surprise", (3,)),
        (105, "neutral", (4,)), (106, "fear", (5,))]
ZERO_BYTE, NO_FACE, MISSING, BAD_LABEL, CONFLICT = 107, 108, 109, 110, 111
BAD = [(ZERO_BYTE, "disgust", (2,)), (NO_FACE, "happy", (3,)), (MISSING, "sad", (4,)), (BAD_LABEL, "happy", (5,)),
       (CONFLICT, "angry", (1, 2))]


def render(identity, emotion: str, seed: int) -> synth.Clip:
    return synth.render_clip(identity, synth.CLASSES.index(RENDER[emotion]), np.random.default_rng(seed))


def code(number: int, emotion: str) -> int:
    return 8 if number == BAD_LABEL else CLASSES.index(emotion) + 1


def write_lists(out: pathlib.Path) -> None:
    rows = {k: [(n, code(n, e)) for n, e, sets in GOOD + BAD if k in sets] for k in range(1, NUM_FOLDS + 1)}
    for k in rows:
        test = out / SPLIT_DIR / TEST_LIST.format(k=k)
        train = test.parent.parent / "train(single-labeled)" / test.name
        for path, listed in ((test, rows[k]), (train, [r for j in rows if j != k for r in rows[j] if r not in rows[k]])):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("video_name,label\n" + "".join(f"{n},{label}\n" for n, label in listed))


def main() -> None:
    out = dm.clear(OUT)
    clips = out / CLIP_DIR
    identities, _ = synth.load_identities()
    config = next(c for c in Builder.BUILDER_CONFIGS if c.name == "rgb224_t16_av").clip
    mp4 = dm.MP4_H264_AAC
    for i, (number, emotion, _) in enumerate(GOOD + [(CONFLICT, "angry", ())]):
        path = dm.write_clip(clips / f"{number:05d}.mp4", render(identities[40 + i], emotion, seed=500 + i), mp4)
        dm.check(path, config, None)
    dm.write_zero_byte(clips / f"{ZERO_BYTE:05d}.mp4")
    blank = dm.faceless(render(identities[48], "happy", 508), 8)
    dm.check(dm.write_clip(clips / f"{NO_FACE:05d}.mp4", blank, mp4), config, "no_face")
    dm.write_clip(clips / f"{BAD_LABEL:05d}.mp4", render(identities[49], "happy", 510), mp4)
    write_lists(out)
    print(f"wrote {OUT}: {dm.folder_bytes(OUT) / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
