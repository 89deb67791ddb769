"""Write `dummy_data/`: a miniature RAVDESS in the owner's layout, from real faces, with bad files.

    .venv/bin/python -m data_builders.ravdess.make_dummy_data

Clips are scikit-image faces animated into an expression with a synthetic voice
(`data_builders.demo_av.synth`), 160x160 at 25 fps (RAVDESS: 1280x720 at 29.97), written as
RAVDESS writes them: H.264 + AAC 48 kHz MP4s `Actor_NN/01-VV-EE-II-SS-RR-NN.mp4`, their video-only
twins `02-...mp4`, and 16-bit 48 kHz WAVs `03-...wav`.

Kept by gray64_t8: seven full-AV speech clips, at least one in each fold (Actor_01 twice). Plus:
    Actor_01/02-01-05-...-01.mp4   video-only twin            -> excluded (not an error)
    Actor_01/03-01-05-...-01.wav   audio-only                 -> excluded
    Actor_06/01-02-03-...-06.mp4   song                       -> excluded by gray64_t8, kept by *_song
    Actor_02/01-01-04-...-02.mp4   0 bytes                    -> skipped, zero_byte
    Actor_03/01-01-06-...-03.mp4   cut short                  -> skipped, truncated
    Actor_04/01-01-03-...-04.mp4   no audio stream            -> skipped, no_audio
    Actor_05/01-01-07-...-05.mp4   no face in any frame       -> skipped, no_face
    Actor_07/01-01-09-...-07.mp4   emotion code 09            -> skipped, bad_name
    Actor_08/01-01-02-...-10.mp4   actor 10 in Actor_08       -> skipped, bad_name
"""

from __future__ import annotations

import pathlib

import numpy as np

from data_builders.afew import dummy_media as dm
from data_builders.demo_av import synth
from data_builders.ravdess.ravdess_dataset_builder import CLASSES, Builder

OUT = pathlib.Path(__file__).parent / "dummy_data"
# RAVDESS class -> the synth expression whose motion and voice to render (calm looks neutral).
RENDER = {"neutral": "neutral", "calm": "neutral", "happy": "happiness", "sad": "sadness", "angry": "anger",
          "fearful": "fear", "disgust": "disgust", "surprised": "surprise"}


def name(modality, vocal, emotion, intensity, statement, repetition, actor, ext=".mp4") -> str:
    codes = (modality, vocal, emotion, intensity, statement, repetition, actor)
    return "-".join(f"{c:02d}" for c in codes) + ext


def render(identity, emotion_code: int, seed: int) -> synth.Clip:
    label = synth.CLASSES.index(RENDER[CLASSES[emotion_code - 1]])
    return synth.render_clip(identity, label, np.random.default_rng(seed))


def main() -> None:
    out = dm.clear(OUT)
    identities, _ = synth.load_identities()
    config = next(c for c in Builder.BUILDER_CONFIGS if c.name == "gray64_t8").clip
    av = dm.MP4_H264_AAC
    # (actor, emotion, intensity, statement, repetition): good full-AV speech clips, one per fold or more
    good = [(1, 5, 2, 1, 1), (1, 8, 1, 2, 2), (6, 3, 1, 1, 2), (9, 4, 2, 2, 1), (14, 1, 1, 1, 1),
            (17, 6, 1, 2, 1), (22, 2, 2, 1, 2)]
    for i, (actor, emotion, intensity, statement, repetition) in enumerate(good):
        clip = render(identities[i], emotion, seed=i)
        path = dm.write_clip(out / f"Actor_{actor:02d}" / name(1, 1, emotion, intensity, statement, repetition, actor),
                             clip, av)
        dm.check(path, config, None)
        if i == 0:  # the same recording as video-only and audio-only files
            dm.write_clip(out / "Actor_01" / name(2, 1, emotion, intensity, statement, repetition, actor), clip, av,
                          with_audio=False)
            dm.write_wav(out / "Actor_01" / name(3, 1, emotion, intensity, statement, repetition, actor, ".wav"),
                         clip, 48_000)
    song = dm.write_clip(out / "Actor_06" / name(1, 2, 3, 1, 2, 1, 6), render(identities[7], 3, seed=7), av)
    dm.check(song, config, None)

    source = out / "Actor_01" / name(1, 1, 5, 2, 1, 1, 1)
    dm.write_zero_byte(out / "Actor_02" / name(1, 1, 4, 1, 1, 1, 2))
    cut = dm.write_truncated(out / "Actor_03" / name(1, 1, 6, 1, 1, 2, 3), source, source.stat().st_size // 2)
    dm.check(cut, config, "truncated")
    mute = dm.write_clip(out / "Actor_04" / name(1, 1, 3, 2, 2, 1, 4), render(identities[8], 3, seed=8), av,
                         with_audio=False)
    dm.check(mute, config, "no_audio")
    blank = dm.write_clip(out / "Actor_05" / name(1, 1, 7, 1, 1, 1, 5), dm.faceless(render(identities[9], 7, 9), 9), av)
    dm.check(blank, config, "no_face")
    dm.write_clip(out / "Actor_07" / name(1, 1, 9, 1, 1, 1, 7), render(identities[10], 1, seed=10), av)
    dm.write_clip(out / "Actor_08" / name(1, 1, 2, 1, 1, 1, 10), render(identities[11], 2, seed=11), av)
    print(f"wrote {OUT}: {dm.folder_bytes(OUT) / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
