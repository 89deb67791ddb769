"""Write `dummy_data/`: a miniature AFEW in the owner's layout, from real faces, with bad files.

    .venv/bin/python -m data_builders.afew.make_dummy_data

Clips are scikit-image faces animated into an expression with a synthetic voice
(`data_builders.demo_av.synth`), 160x160 at 25 fps (AFEW: 720x576), written as AFEW stores them:
Xvid AVIs with an MP3 track, `Train/<Emotion>/<9 digits>.avi` and `Val/<Emotion>/<9 digits>.avi`.

Kept: four training clips (one of them dark: gamma-corrected) and three validation clips. Plus:
    Train/Disgust/000200001.avi   0 bytes                        -> skipped, zero_byte
    Train/Fear/000200002.avi      cut short (inside its header)  -> skipped, truncated
    Val/Angry/000200003.avi       no audio stream                -> skipped, no_audio
    Val/Happy/000200004.avi       no face in any frame           -> skipped, no_face
    Train/Contempt/000200005.avi  not one of AFEW's emotions     -> skipped, bad_label
"""

from __future__ import annotations

import pathlib

import numpy as np

from data_builders.afew import dummy_media as dm
from data_builders.afew.afew_dataset_builder import Builder
from data_builders.demo_av import synth

OUT = pathlib.Path(__file__).parent / "dummy_data"
RENDER = {"Angry": "anger", "Disgust": "disgust", "Fear": "fear", "Happy": "happiness", "Neutral": "neutral",
          "Sad": "sadness", "Surprise": "surprise", "Contempt": "disgust"}
# (relative path, darkness factor or None): the clips every config keeps
GOOD = [("Train/Angry/000100001.avi", None), ("Train/Happy/000100002.avi", 0.35), ("Train/Sad/000100003.avi", None),
        ("Train/Neutral/000100004.avi", None), ("Val/Fear/000100005.avi", None), ("Val/Surprise/000100006.avi", None),
        ("Val/Disgust/000100007.avi", None)]
DARK = "Train/Happy/000100002.avi"


def render(identity, folder: str, seed: int) -> synth.Clip:
    return synth.render_clip(identity, synth.CLASSES.index(RENDER[folder]), np.random.default_rng(seed))


def main() -> None:
    out = dm.clear(OUT)
    identities, _ = synth.load_identities()
    config = next(c for c in Builder.BUILDER_CONFIGS if c.name == "gray64_t8").clip
    avi = dm.AVI_XVID_MP3
    for i, (relative, dark) in enumerate(GOOD):
        clip = render(identities[20 + i], pathlib.PurePath(relative).parent.name, seed=100 + i)
        path = dm.write_clip(out / relative, dm.darkened(clip, dark) if dark else clip, avi)
        dm.check(path, config, None)
    dm.write_zero_byte(out / "Train/Disgust/000200001.avi")
    source = out / GOOD[0][0]
    dm.check(dm.write_truncated(out / "Train/Fear/000200002.avi", source, dm.AVI_HEADER_CUT), config, "truncated")
    mute = dm.write_clip(out / "Val/Angry/000200003.avi", render(identities[30], "Angry", 103), avi, with_audio=False)
    dm.check(mute, config, "no_audio")
    blank = dm.write_clip(out / "Val/Happy/000200004.avi", dm.faceless(render(identities[31], "Happy", 104), 4), avi)
    dm.check(blank, config, "no_face")
    dm.write_clip(out / "Train/Contempt/000200005.avi", render(identities[32], "Contempt", 105), avi)
    print(f"wrote {OUT}: {dm.folder_bytes(OUT) / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
