"""Write `dummy_data/`: a tiny SENDv1 in its real layout, from real faces, with the usual broken files.

Each storyteller is a real face of scikit-image (through the demo corpus' `synth`), telling a
"story" of a few expressions one after another (a few seconds, H.264 + AAC like SEND's MP4s); the
observers' rating follows the expression on screen (happiness high, sadness and anger low) with
some noise, every 0.5 s on SEND's 0..100 scale. Besides the good videos:

    train/ID103_vid1.mp4          zero bytes                          -> zero_byte
    train/ID104_vid1.mp4          its ratings skip a time step        -> malformed_ratings
    valid/ID202_vid1.mp4          no ratings file                     -> missing_ratings
    test/ID302_vid1.mp4           a room and a voice, but no face     -> no_face

and two clips rated but distributed without their video, as SEND's 81 "Limited-Use" clips are
(counted in excluded_by_reason as video_withheld, not skipped):

    ratings/train/.../results_105_1.csv
    ratings/test/.../results_303_1.csv

    python -m data_builders.send.make_dummy_data [OUT_DIR]
"""

from __future__ import annotations

import os
import shutil
import sys

import cv2
import numpy as np

from data_builders.demo_av import synth
from data_builders.send.layout import EWE_COLUMN, STEP_S, TIME_COLUMN

OUT = os.path.join(os.path.dirname(__file__), "dummy_data")
# Observers' mean rating (0..100) of each expression; the dummy ratings follow what is on screen.
EWE_OF_CLASS = {"neutral": 50, "anger": 20, "disgust": 25, "fear": 30, "happiness": 85, "sadness": 18, "surprise": 62}
# (folder, subject, k, identity index, expressions in story order, ratings?)
GOOD = [
    ("train", 101, 1, 0, ("happiness", "neutral", "sadness", "surprise"), "good"),
    ("train", 101, 2, 0, ("anger", "happiness", "neutral"), "good"),
    ("train", 102, 1, 1, ("sadness", "neutral", "happiness", "happiness"), "good"),
    ("train", 104, 1, 2, ("neutral",), "off_grid"),
    ("valid", 201, 1, 3, ("neutral", "happiness", "sadness", "sadness"), "good"),
    ("valid", 202, 1, 4, ("neutral",), None),
    ("test", 301, 1, 5, ("surprise", "happiness", "neutral", "fear"), "good"),
]


def story(identity: synth.Identity, expressions, seed: int) -> tuple[synth.Clip, np.ndarray]:
    """One clip of `expressions` one after another, and which expression each frame shows."""
    clips = [
        synth.render_clip(identity, synth.CLASSES.index(name), synth.clip_rng(seed, identity.subject, i, 0))
        for i, name in enumerate(expressions)
    ]
    shown = np.concatenate([np.full(len(c.frames), synth.CLASSES.index(n)) for c, n in zip(clips, expressions)])
    frames = np.concatenate([c.frames for c in clips])
    audio = np.concatenate([c.audio for c in clips])
    return synth.Clip(frames, synth.FPS, audio, synth.SAMPLE_RATE), shown


def ratings_rows(shown: np.ndarray, rng: np.random.Generator) -> list[tuple[float, float]]:
    """(time, EWE) every 0.5 s up to the end of the video: the rating of the expression on screen
    in the middle of each half second, smoothed like a dial, plus a little noise."""
    duration = len(shown) / synth.FPS
    times = STEP_S * np.arange(1, int(duration / STEP_S) + 1)
    middle = np.minimum(((times - STEP_S / 2) * synth.FPS).astype(int), len(shown) - 1)
    target = np.array([EWE_OF_CLASS[synth.CLASSES[c]] for c in shown[middle]], float)
    ewe, level = [], 50.0
    for value in target:
        level = 0.4 * level + 0.6 * value
        ewe.append(float(np.clip(level + rng.normal(0, 3), 0, 100)))
    return list(zip(times.tolist(), ewe))


def write_ratings(path: str, rows, header=(TIME_COLUMN, EWE_COLUMN)) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="") as f:
        f.write(",".join(header) + "\n")
        f.writelines(f"{t:g},{v:.4f}\n" for t, v in rows)


def faceless_clip(rng: np.random.Generator, seconds: float = 2.0) -> synth.Clip:
    """An empty room (a smooth colour field with sensor noise) and a voice: audio, but no face."""
    num = int(seconds * synth.FPS)
    room = cv2.resize(rng.uniform(40, 220, (3, 3, 3)).astype(np.float32), (synth.FRAME_SIZE,) * 2,
                      interpolation=cv2.INTER_CUBIC)
    frames = np.stack([np.clip(room + rng.normal(0, 2, room.shape), 0, 255).astype(np.uint8) for _ in range(num)])
    audio = synth.synthesize_voice(140.0, 0, int(seconds * synth.SAMPLE_RATE), loudness_rms=0.05, lead_s=0.1, rng=rng)
    return synth.Clip(frames, synth.FPS, audio, synth.SAMPLE_RATE)


WITHHELD = [("test", 303, 1, 60.0), ("train", 105, 1, 40.0)]  # (folder, subject, k, EWE): rated, no video


def write_withheld(out: str) -> None:
    for folder, subject, k, ewe in WITHHELD:
        path = os.path.join(out, "ratings", folder, "observer_EWE", f"results_{subject}_{k}.csv")
        write_ratings(path, [(STEP_S * (i + 1), ewe) for i in range(4)])


def main(out: str = OUT) -> None:
    if os.path.isdir(out):
        shutil.rmtree(out)
    identities, _ = synth.load_identities()
    rng = np.random.default_rng(0)
    ratings = lambda folder, s, k: os.path.join(out, "ratings", folder, "observer_EWE", f"results_{s}_{k}.csv")  # noqa: E731
    for folder, subject, k, who, expressions, kind in GOOD:
        clip, shown = story(identities[who], expressions, seed=subject * 10 + k)
        synth.write_clip_mp4(os.path.join(out, folder, f"ID{subject}_vid{k}.mp4"), clip)
        rows = ratings_rows(shown, rng)
        if kind == "off_grid":
            rows = rows[:1] + [(rows[0][0] + 2 * STEP_S, 50.0)]  # a step missing: 0.5 s -> 1.5 s
        if kind is not None:
            write_ratings(ratings(folder, subject, k), rows)
    os.makedirs(os.path.join(out, "train"), exist_ok=True)
    open(os.path.join(out, "train", "ID103_vid1.mp4"), "wb").close()  # a copy that failed
    write_ratings(ratings("train", 103, 1), [(STEP_S * (i + 1), 50.0) for i in range(4)])
    synth.write_clip_mp4(os.path.join(out, "test", "ID302_vid1.mp4"), faceless_clip(rng))
    write_ratings(ratings("test", 302, 1), [(STEP_S * (i + 1), 50.0) for i in range(4)])
    write_withheld(out)
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(out) for f in files)
    print(f"wrote {out} ({size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main(*sys.argv[1:])
