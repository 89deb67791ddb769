"""Write `dummy_data/`: a miniature SAVEE in the owner's layout, from real faces, with bad files.

    .venv/bin/python -m data_builders.savee.make_dummy_data

Clips are scikit-image faces animated into an expression with a synthetic voice
(`data_builders.demo_av.synth`), 160x160 at 25 fps (SAVEE: 320x256 at 60), written as SAVEE
stores them: AVIs with their sound, `AudioVisualClip/<speaker>/<code><nn>.avi`, and two of the
voices as 44.1 kHz WAVs in `AudioData/<speaker>/` (which the builder does not read).

Kept: two clips per speaker (one per fold), four of them in the random test split. Plus:
    DC/d01.avi   0 bytes                          -> skipped, zero_byte  (from fold0 and train)
    JE/f05.avi   cut short (inside its header)    -> skipped, truncated  (fold1, train)
    JK/h01.avi   no audio stream                  -> skipped, no_audio   (fold2, train)
    KL/n01.avi   no face in any frame             -> skipped, no_face    (fold3, train)
    KL/x01.avi   not an emotion code              -> skipped, bad_name
"""

from __future__ import annotations

import pathlib

import numpy as np

from data_builders.afew import dummy_media as dm
from data_builders.demo_av import synth
from data_builders.savee.savee_dataset_builder import CLIP_FOLDER, RANDOM_TEST, Builder

OUT = pathlib.Path(__file__).parent / "dummy_data"
RENDER = {"a": "anger", "d": "disgust", "f": "fear", "h": "happiness", "n": "neutral", "sa": "sadness",
          "su": "surprise", "x": "neutral"}
GOOD = ["DC/a03", "DC/su01", "JE/h03", "JE/sa01", "JK/f01", "JK/n20", "KL/d01", "KL/su05"]


def render(identity, clip_name: str, seed: int) -> synth.Clip:
    code = clip_name.split("/")[1].rstrip("0123456789")
    return synth.render_clip(identity, synth.CLASSES.index(RENDER[code]), np.random.default_rng(seed))


def main() -> None:
    out = dm.clear(OUT)
    clips = out / CLIP_FOLDER
    identities, _ = synth.load_identities()
    config = next(c for c in Builder.BUILDER_CONFIGS if c.name == "gray64_t8").clip
    avi = dm.AVI_XVID_MP3
    assert 0 < sum(name in RANDOM_TEST for name in GOOD) < len(GOOD), "both random splits need a clip"
    speakers = {"DC": identities[40], "JE": identities[41], "JK": identities[42], "KL": identities[43]}
    for i, name in enumerate(GOOD):
        clip = render(speakers[name[:2]], name, seed=200 + i)
        dm.check(dm.write_clip(clips / f"{name}.avi", clip, avi), config, None)
        if name in ("DC/a03", "DC/su01"):
            dm.write_wav(out / "AudioData" / f"{name}.wav", clip, 44_100)
    dm.write_zero_byte(clips / "DC/d01.avi")
    dm.check(dm.write_truncated(clips / "JE/f05.avi", clips / "JE/h03.avi", dm.AVI_HEADER_CUT), config, "truncated")
    mute = dm.write_clip(clips / "JK/h01.avi", render(speakers["JK"], "JK/h01", 210), avi, with_audio=False)
    dm.check(mute, config, "no_audio")
    blank = dm.write_clip(clips / "KL/n01.avi", dm.faceless(render(speakers["KL"], "KL/n01", 211), 11), avi)
    dm.check(blank, config, "no_face")
    dm.write_clip(clips / "KL/x01.avi", render(speakers["KL"], "KL/x01", 212), avi)
    print(f"wrote {OUT}: {dm.folder_bytes(OUT) / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
