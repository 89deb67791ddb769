"""Write `dummy_data/`: a miniature SAVEE in the owner's layout, from real faces, with bad files.

    .venv/bin/python -m data_builders.savee.make_dummy_data

Clips are scikit-image faces animated into an expression with a synthetic voice
(`data_builders.demo_av.synth`), 160x160 at 25 fps (SAVEE: 320x256 at 60), written as SAVEE
stores them: AVIs with their sound, `AudioVisualClip/<speaker>/<code><n>.avi` without zero padding
(`a3.avi`, `n20.avi`), and two of the voices as 44.1 kHz WAVs in `AudioData/<speaker>/`, zero-padded
as the owner's are (`a03.wav`; the builder does not read them).

Kept: two clips per speaker (one per fold), four of them in the random test split. Plus:
    DC/d1.avi    0 bytes                          -> skipped, zero_byte  (from fold0 and train)
    JE/f5.avi    cut short (inside its header)    -> skipped, truncated  (fold1, train)
    JK/h1.avi    no audio stream                  -> skipped, no_audio   (fold2, train)
    KL/n1.avi    no face in any frame             -> skipped, no_face    (fold3, train)
    KL/x1.avi    not an emotion code              -> skipped, bad_name
"""

from __future__ import annotations

import pathlib

import numpy as np

from data_builders.afew import dummy_media as dm
from data_builders.demo_av import synth
from data_builders.savee.savee_dataset_builder import CLIP_FOLDER, RANDOM_TEST, Builder, CODES, parse_name

OUT = pathlib.Path(__file__).parent / "dummy_data"
RENDER = {"a": "anger", "d": "disgust", "f": "fear", "h": "happiness", "n": "neutral", "sa": "sadness",
          "su": "surprise", "x": "neutral"}
GOOD = ["DC/a3", "DC/su1", "JE/h3", "JE/sa1", "JK/f1", "JK/n20", "KL/d1", "KL/su5"]
WAVS = {"DC/a3": "DC/a03", "DC/su1": "DC/su01"}  # AudioData's names are zero-padded


def render(identity, clip_name: str, seed: int) -> synth.Clip:
    code = clip_name.split("/")[1].rstrip("0123456789")
    return synth.render_clip(identity, synth.CLASSES.index(RENDER[code]), np.random.default_rng(seed))


def in_random_test(name: str) -> bool:
    """Whether the clip "<speaker>/<code><n>" is in the seeded test split."""
    speaker, label, number = parse_name(f"{CLIP_FOLDER}/{name}.avi")
    return (speaker, CODES[label], number) in RANDOM_TEST


def main() -> None:
    out = dm.clear(OUT)
    clips = out / CLIP_FOLDER
    identities, _ = synth.load_identities()
    config = next(c for c in Builder.BUILDER_CONFIGS if c.name == "gray64_t8").clip
    avi = dm.AVI_XVID_MP3
    in_test = [in_random_test(name) for name in GOOD]
    assert 0 < sum(in_test) < len(GOOD), "both random splits need a clip"
    speakers = {"DC": identities[40], "JE": identities[41], "JK": identities[42], "KL": identities[43]}
    for i, name in enumerate(GOOD):
        clip = render(speakers[name[:2]], name, seed=200 + i)
        dm.check(dm.write_clip(clips / f"{name}.avi", clip, avi), config, None)
        if name in WAVS:
            dm.write_wav(out / "AudioData" / f"{WAVS[name]}.wav", clip, 44_100)
    dm.write_zero_byte(clips / "DC/d1.avi")
    dm.check(dm.write_truncated(clips / "JE/f5.avi", clips / "JE/h3.avi", dm.AVI_HEADER_CUT), config, "truncated")
    mute = dm.write_clip(clips / "JK/h1.avi", render(speakers["JK"], "JK/h1", 210), avi, with_audio=False)
    dm.check(mute, config, "no_audio")
    blank = dm.write_clip(clips / "KL/n1.avi", dm.faceless(render(speakers["KL"], "KL/n1", 211), 11), avi)
    dm.check(blank, config, "no_face")
    dm.write_clip(clips / "KL/x1.avi", render(speakers["KL"], "KL/x1", 212), avi)
    print(f"wrote {OUT}: {dm.folder_bytes(OUT) / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
