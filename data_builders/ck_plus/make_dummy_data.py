"""Write `dummy_data/`: a miniature CK+ in the owner's layout, from real faces, with bad files.

    .venv/bin/python -m data_builders.ck_plus.make_dummy_data

Each good sequence is one scikit-image face (`data_builders.demo_av.synth`) animated from neutral
to the apex of an expression, saved as CK+ saves its frames: 8-bit grey PNGs
`cohn-kanade-images/<subject>/<sequence>/<subject>_<sequence>_<frame:08d>.png`, with the code in
`Emotion/<subject>/<sequence>/<last frame>_emotion.txt` written as CK+ writes it ("   3.0000000e+00").
Frames are 128x128 (CK+'s are 640x490) and sequences 6 frames long, to keep the folder small.
The renderer has no contempt, so the contempt sequence shows disgust's motion.

One good sequence per fold (the first ten subjects of `FOLDS` are in folds 0..9), plus:
    S005/002  S005's second sequence (surprise): a subject's sequences share its fold, so a fold
              assignment per sequence instead of per subject would split S005 across two folds
    S035/001  contempt (fold 0): kept with 7 classes, left out with 6
    S037/001  no emotion file: unlabelled, left out
    S042/001  its last frame is a zero-byte PNG               -> skipped, zero_byte
    S044/001  blank frames                                    -> skipped, no_face
    S045/001  emotion file "happy"                            -> skipped, bad_label
    S046/001  emotion code 9                                  -> skipped, bad_label
    S998/001  a subject CK+ does not have                     -> skipped, unknown_subject
    Emotion/S050/001 without frames                           -> skipped, missing
"""

from __future__ import annotations

import pathlib
import shutil

import cv2
import numpy as np

from data_builders.ck_plus.ck_plus_dataset_builder import CODES, EMOTION_DIR, IMAGES_DIR
from data_builders.demo_av import synth

OUT = pathlib.Path(__file__).parent / "dummy_data"
SIZE, LENGTH = 128, 6

# (subject, sequence, CK+ code, the synth class whose motion to render)
GOOD = [
    ("S005", "001", "disgust", "disgust"),
    ("S010", "002", "anger", "anger"),
    ("S011", "001", "happy", "happiness"),
    ("S014", "002", "surprise", "surprise"),
    ("S022", "001", "sadness", "sadness"),
    ("S026", "002", "fear", "fear"),
    ("S028", "001", "happy", "happiness"),
    ("S029", "001", "surprise", "surprise"),
    ("S032", "003", "anger", "anger"),
    ("S034", "001", "sadness", "sadness"),
    ("S035", "001", "contempt", "disgust"),
    ("S037", "001", None, "happiness"),  # no emotion file
    ("S042", "001", "fear", "fear"),  # last frame emptied below
    ("S998", "001", "happy", "happiness"),  # unknown subject
]
# Second sequences of subjects above, rendered with the same face: (subject, sequence, code, motion).
SECOND_SEQUENCES = [("S005", "002", "surprise", "surprise")]


def sequence_frames(identity, synth_class: str, seed: int) -> np.ndarray:
    """(LENGTH, SIZE, SIZE) uint8 grey: neutral -> apex, first and last frames kept."""
    clip = synth.render_clip(identity, synth.CLASSES.index(synth_class), np.random.default_rng(seed))
    picks = np.round(np.linspace(0, len(clip.frames) - 1, LENGTH)).astype(int)
    grey = [cv2.cvtColor(clip.frames[i], cv2.COLOR_RGB2GRAY) for i in picks]
    return np.stack([cv2.resize(g, (SIZE, SIZE), interpolation=cv2.INTER_AREA) for g in grey])


def write_sequence(subject: str, sequence: str, frames: np.ndarray, code: str | None, label_text: str | None = None):
    folder = OUT / IMAGES_DIR / subject / sequence
    folder.mkdir(parents=True)
    names = [f"{subject}_{sequence}_{i + 1:08d}" for i in range(len(frames))]
    for name, frame in zip(names, frames):
        cv2.imwrite(str(folder / f"{name}.png"), frame, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if code is not None or label_text is not None:
        write_label(subject, sequence, names[-1], label_text or f"   {CODES.index(code):.7e}\n")
    return folder, names


def write_label(subject: str, sequence: str, last_frame: str, text: str):
    labels = OUT / EMOTION_DIR / subject / sequence
    labels.mkdir(parents=True, exist_ok=True)
    (labels / f"{last_frame}_emotion.txt").write_text(text)


def main():
    if OUT.exists():
        shutil.rmtree(OUT)
    identities, _ = synth.load_identities()
    for k, (subject, sequence, code, motion) in enumerate(GOOD):
        write_sequence(subject, sequence, sequence_frames(identities[k], motion, seed=k), code)
    face_of = {subject: k for k, (subject, *_) in enumerate(GOOD)}
    for k, (subject, sequence, code, motion) in enumerate(SECOND_SEQUENCES):
        frames = sequence_frames(identities[face_of[subject]], motion, seed=100 + k)
        write_sequence(subject, sequence, frames, code)
    # S042: the copy of its last frame failed (zero bytes); sampling always reads the last frame.
    last = sorted((OUT / IMAGES_DIR / "S042" / "001").glob("*.png"))[-1]
    last.write_bytes(b"")
    # S044: the camera saw no face.
    rng = np.random.default_rng(44)
    blank = np.clip(110 + rng.normal(0, 3, (LENGTH, SIZE, SIZE)), 0, 255).astype(np.uint8)
    write_sequence("S044", "001", blank, "anger")
    # S045, S046: label files that are not CK+ codes (2 frames each: never read).
    short = sequence_frames(identities[20], "happiness", seed=45)[[0, -1]]
    write_sequence("S045", "001", short, None, label_text="happy\n")
    write_sequence("S046", "001", short, None, label_text="   9.0000000e+00\n")
    # S050: an emotion file whose sequence was not copied.
    write_label("S050", "001", "S050_001_00000014", "   5.0000000e+00\n")
    size = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"wrote {OUT}: {sum(1 for _ in OUT.rglob('*.png'))} frames, {size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
