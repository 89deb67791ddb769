"""Write `dummy_data/`: a miniature CREMA-D in the owner's layout, from real faces, with bad files.

    .venv/bin/python -m data_builders.crema_d.make_dummy_data

Clips are scikit-image faces animated into an expression with a synthetic voice
(`data_builders.demo_av.synth`), 160x160 at 25 fps (CREMA-D: 480x360 at 30), written as CREMA-D
stores them: Flash videos (Sorenson Spark + MP3) `VideoFlash/<actor>_<sentence>_<emotion>_<level>.flv`,
and two of the voices as 16 kHz WAVs in `AudioWAV/` (which the builder reads only for an FLV
without usable sound; these two FLVs have theirs).

Kept: six clips, at least one per fold (fold0 two). Plus:
    1004_DFA_DIS_XX.flv   0 bytes                          -> skipped, zero_byte  (fold0)
    1005_IOM_FEA_XX.flv   cut short (inside its header)    -> skipped, truncated  (fold1)
    1007_ITH_HAP_XX.flv   no audio stream, no WAV          -> skipped, no_audio   (fold2)
    1008_TAI_SAD_XX.flv   no face in any frame             -> skipped, no_face    (fold3)
    1009_IWW_XYZ_XX.flv   emotion XYZ                      -> skipped, bad_name
    1009_DFA_ANG_HI.flv   a level on a sentence without    -> skipped, bad_name
"""

from __future__ import annotations

import pathlib

import numpy as np

from data_builders.afew import dummy_media as dm
from data_builders.crema_d.crema_d_dataset_builder import VIDEO_FOLDER, Builder
from data_builders.demo_av import synth

OUT = pathlib.Path(__file__).parent / "dummy_data"
RENDER = {"ANG": "anger", "DIS": "disgust", "FEA": "fear", "HAP": "happiness", "NEU": "neutral", "SAD": "sadness",
          "XYZ": "neutral"}
# one actor of each fold (see FOLDS), 1001 twice
GOOD = ["1001_IEO_ANG_HI", "1001_TIE_NEU_XX", "1006_MTI_HAP_XX", "1011_IEO_SAD_LO", "1002_WSI_DIS_XX",
        "1003_ITS_FEA_XX"]


def render(identity, stem: str, seed: int) -> synth.Clip:
    return synth.render_clip(identity, synth.CLASSES.index(RENDER[stem.split("_")[2]]), np.random.default_rng(seed))


def main() -> None:
    out = dm.clear(OUT)
    videos = out / VIDEO_FOLDER
    identities, _ = synth.load_identities()
    config = next(c for c in Builder.BUILDER_CONFIGS if c.name == "gray64_t8").clip
    flv = dm.FLV_SORENSON_MP3
    actor_face = {actor: identities[60 + i] for i, actor in enumerate(sorted({s[:4] for s in GOOD} | {"1009"}))}
    for i, stem in enumerate(GOOD):
        clip = render(actor_face[stem[:4]], stem, seed=300 + i)
        dm.check(dm.write_clip(videos / f"{stem}.flv", clip, flv), config, None)
        if i < 2:
            dm.write_wav(out / "AudioWAV" / f"{stem}.wav", clip, 16_000)
    dm.write_zero_byte(videos / "1004_DFA_DIS_XX.flv")
    source = videos / f"{GOOD[0]}.flv"
    dm.check(dm.write_truncated(videos / "1005_IOM_FEA_XX.flv", source, dm.FLV_HEADER_CUT), config, "truncated")
    mute = dm.write_clip(videos / "1007_ITH_HAP_XX.flv", render(identities[70], "1007_ITH_HAP_XX", 310), flv,
                         with_audio=False)
    dm.check(mute, config, "no_audio")
    faceless = dm.faceless(render(identities[71], "1008_TAI_SAD_XX", 311), 3)
    blank = dm.write_clip(videos / "1008_TAI_SAD_XX.flv", faceless, flv)
    dm.check(blank, config, "no_face")
    for i, stem in enumerate(["1009_IWW_XYZ_XX", "1009_DFA_ANG_HI"]):
        dm.write_clip(videos / f"{stem}.flv", render(actor_face["1009"], stem, 312 + i), flv)
    print(f"wrote {OUT}: {dm.folder_bytes(OUT) / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
