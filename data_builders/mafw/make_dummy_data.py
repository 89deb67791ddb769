"""Write `dummy_data/`: a miniature MAFW in the owners' layout, from real faces, with bad files.

    .venv/bin/python -m data_builders.mafw.make_dummy_data

Clips are scikit-image faces animated into an expression with a synthetic voice
(`data_builders.demo_av.synth`), 160x160 at 25 fps, written as H.264 + AAC MP4s
`data/clips/<5 digits>.mp4`; the fold lists are `Train & Test Set/single/no_caption/set_k/test.txt`
("00025.mp4 anger" rows) with the train lists beside them (each the other four test sets; not read).
The renderer has 7 expressions: contempt, anxiety, helplessness and disappointment clips show the
motion of the nearest of them.

Kept in every config: six clips, fold0 (set_1) two, each other fold one (so the first `fer-jax cv`
run trains on four clips in either config). Plus:
    00207.mp4  0 bytes                               -> skipped, zero_byte    (fold1)
    00208.mp4  no sound track                        -> kept in gray64_t8; skipped, no_audio, in rgb224_t16_av (fold0)
    00209.mp4  listed in set_4, no file              -> skipped, missing      (fold3)
    00210.mp4  label "contemptuous" in set_5         -> skipped, bad_label    (fold4)
"""

from __future__ import annotations

import pathlib

import numpy as np

from data_builders.afew import dummy_media as dm
from data_builders.demo_av import synth
from data_builders.mafw.mafw_dataset_builder import CLIP_DIR, NUM_FOLDS, SPLIT_DIRS, Builder

OUT = pathlib.Path(__file__).parent / "dummy_data"
RENDER = {"anger": "anger", "disgust": "disgust", "fear": "fear", "happiness": "happiness", "neutral": "neutral",
          "sadness": "sadness", "surprise": "surprise", "contempt": "disgust", "anxiety": "fear",
          "helplessness": "sadness", "disappointment": "sadness", "contemptuous": "disgust"}
# (clip number, MAFW label as listed, test set): the clips every config keeps
GOOD = [(201, "anger", 1), (202, "anxiety", 1), (203, "happiness", 2), (204, "helplessness", 3),
        (205, "surprise", 4), (206, "disappointment", 5)]
ZERO_BYTE, NO_AUDIO, MISSING, BAD_LABEL = 207, 208, 209, 210
BAD = [(ZERO_BYTE, "fear", 2), (NO_AUDIO, "sadness", 1), (MISSING, "neutral", 4), (BAD_LABEL, "contemptuous", 5)]


def render(identity, label: str, seed: int) -> synth.Clip:
    return synth.render_clip(identity, synth.CLASSES.index(RENDER[label]), np.random.default_rng(seed))


def write_lists(out: pathlib.Path) -> None:
    rows = {k: [f"{n:05d}.mp4 {label}\n" for n, label, s in GOOD + BAD if s == k] for k in range(1, NUM_FOLDS + 1)}
    for k in rows:
        folder = out / SPLIT_DIRS[0] / f"set_{k}"
        folder.mkdir(parents=True)
        (folder / "test.txt").write_text("".join(rows[k]))
        (folder / "train.txt").write_text("".join(r for j in rows if j != k for r in rows[j]))


def main() -> None:
    out = dm.clear(OUT)
    clips = out / CLIP_DIR
    identities, _ = synth.load_identities()
    av = next(c for c in Builder.BUILDER_CONFIGS if c.name == "rgb224_t16_av").clip
    video_only = next(c for c in Builder.BUILDER_CONFIGS if c.name == "gray64_t8").clip
    mp4 = dm.MP4_H264_AAC
    for i, (number, label, _) in enumerate(GOOD):
        path = dm.write_clip(clips / f"{number:05d}.mp4", render(identities[50 + i], label, seed=600 + i), mp4)
        dm.check(path, av, None)
    dm.write_zero_byte(clips / f"{ZERO_BYTE:05d}.mp4")
    mute = dm.write_clip(clips / f"{NO_AUDIO:05d}.mp4", render(identities[57], "sadness", 608), mp4, with_audio=False)
    dm.check(mute, av, "no_audio")
    dm.check(mute, video_only, None)
    dm.write_clip(clips / f"{BAD_LABEL:05d}.mp4", render(identities[58], "contemptuous", 610), mp4)
    write_lists(out)
    print(f"wrote {OUT}: {dm.folder_bytes(OUT) / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
