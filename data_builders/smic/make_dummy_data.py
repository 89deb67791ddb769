"""Write `dummy_data/`: a miniature SMIC in the owners' layout, from real faces, with bad files.

    .venv/bin/python -m data_builders.smic.make_dummy_data

Each good clip is one scikit-image face (`data_builders.demo_av.synth`) going neutral -> apex, 4
frames saved as SMIC saves its cropped faces: numbered BMPs
`SMIC_all_cropped/<camera>/s<n>/micro/<class>/<clip>/reg_image<frame>.bmp`, 64x64 (smaller than
SMIC's crops, to keep the folder small), colour for HS and VIS, 8-bit grey for NIR. HS has a
coding sheet `SMIC_all_cropped/HS/smic.xlsx` (subject, material, emotion, onset, offset: the
columns public code reads for SMIC-E's timing) with rows for all but one clip.

HS (3 subjects, so 3 leave-one-subject-out splits):
    s1/micro/positive/s1_po_01, s1/micro/negative/s1_ne_01, s2/micro/surprise/s2_sur_01,
    s2/micro/negative/s2_ne_02 (no sheet row: timing from its folder), s3/micro/positive/s3_po_01
    s3/micro/negative/s3_ne_02   its onset frame is a zero-byte BMP            -> skipped, zero_byte
    s3/micro/surprise/s3_sur_02  no frames (a Thumbs.db only)                  -> skipped, no_frames
    s1/non_micro/s1_n_01         not a micro-expression                        -> left out, non_micro
VIS and NIR: s1/micro/positive/s1_po_01 and s2/micro/surprise/s2_sur_01.
"""

from __future__ import annotations

import pathlib
import shutil

import cv2
import numpy as np

from data_builders.casme2.make_dummy_data import write_xlsx
from data_builders.demo_av import synth
from data_builders.smic.smic_dataset_builder import ROOT_DIR
from fer_jax.errors import InputError
from fer_jax.preprocess.clip import ClipConfig, process_frames

OUT = pathlib.Path(__file__).parent / "dummy_data"
SIZE = 64
FRAMES = 4
SYNTH = {"positive": "happiness", "negative": "disgust", "surprise": "surprise"}
# (camera, subject, class, clip, onset frame number, sheet row?)
GOOD = [
    ("HS", "s1", "positive", "s1_po_01", 1201, True),
    ("HS", "s1", "negative", "s1_ne_01", 3408, True),
    ("HS", "s2", "surprise", "s2_sur_01", 512, True),
    ("HS", "s2", "negative", "s2_ne_02", 2210, False),
    ("HS", "s3", "positive", "s3_po_01", 877, True),
    ("VIS", "s1", "positive", "s1_po_01", 301, False),
    ("VIS", "s2", "surprise", "s2_sur_01", 129, False),
    ("NIR", "s1", "positive", "s1_po_01", 301, False),
    ("NIR", "s2", "surprise", "s2_sur_01", 129, False),
]
SHEET = ["", "subject", "material", "emotion", "onset", "offset"]  # the first column: the sheet's row index


def rise(identity, emotion: str, seed: int) -> np.ndarray:
    """(4, 64, 64, 3) RGB neutral -> apex; scenes where dlib misses the face are drawn again."""
    for attempt in range(10):
        rng = np.random.default_rng([seed, attempt])
        frames = synth.render_clip(identity, synth.CLASSES.index(SYNTH[emotion]), rng).frames
        frames = frames[np.round(np.linspace(0, len(frames) - 1, FRAMES)).astype(int)]
        small = np.stack([cv2.resize(f, (SIZE, SIZE), interpolation=cv2.INTER_AREA) for f in frames])
        try:
            process_frames(small, ClipConfig(need_audio=False))
        except InputError:
            continue
        return small
    raise RuntimeError(f"no detectable scene for {identity.subject} in 10 draws")


def clip_folder(camera: str, subject: str, emotion: str, clip: str) -> pathlib.Path:
    folder = OUT / ROOT_DIR / camera / subject / "micro" / emotion / clip
    folder.mkdir(parents=True)
    return folder


def write_frames(folder: pathlib.Path, frames: np.ndarray, onset: int, grey: bool) -> None:
    for k, frame in enumerate(frames):
        image = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if grey else cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(folder / f"reg_image{onset + k}.bmp"), image)


def main():
    if OUT.exists():
        shutil.rmtree(OUT)
    identities, _ = synth.load_identities()
    face_of = {"s1": identities[70], "s2": identities[71], "s3": identities[72]}
    rows = [SHEET]
    for k, (camera, subject, emotion, clip, onset, in_sheet) in enumerate(GOOD):
        frames = rise(face_of[subject], emotion, seed=k)
        write_frames(clip_folder(camera, subject, emotion, clip), frames, onset, grey=camera == "NIR")
        if in_sheet:
            rows.append([len(rows) - 1, subject, clip, emotion, onset, onset + FRAMES - 1])
    zero = clip_folder("HS", "s3", "negative", "s3_ne_02")
    write_frames(zero, rise(face_of["s3"], "negative", seed=20), 640, grey=False)
    (zero / "reg_image640.bmp").write_bytes(b"")  # a copy that failed
    # A clip folder without frames (git keeps no empty folder: Windows' thumbnail cache is all it holds).
    (clip_folder("HS", "s3", "surprise", "s3_sur_02") / "Thumbs.db").write_bytes(b"\0" * 16)
    non_micro = OUT / ROOT_DIR / "HS" / "s1" / "non_micro" / "s1_n_01"
    non_micro.mkdir(parents=True)
    write_frames(non_micro, rise(face_of["s1"], "positive", seed=21)[:1], 5000, grey=False)
    write_xlsx(OUT / ROOT_DIR / "HS" / "smic.xlsx", rows)
    size = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"wrote {OUT}: {sum(1 for _ in OUT.rglob('*.bmp'))} frames, {size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
