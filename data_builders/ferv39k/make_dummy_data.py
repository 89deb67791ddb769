"""Write `dummy_data/`: a miniature FERV39k in the owners' layout, from real faces, with bad files.

    .venv/bin/python -m data_builders.ferv39k.make_dummy_data

Clips are scikit-image faces animated into an expression (`data_builders.demo_av.synth`), cut to
FRAMES frames, each cropped around the face with a margin (as FERV39k's face crops are) and saved as
JPEGs `2_ClipsforFaceCrop/<Scene>/<Emotion>/<4 digits>/<4 digits>.jpg`; the split lists are
`4_setups/All_scenes/train_All.csv` and `test_All.csv` ("Action/Happy/0015 Happy" rows).

Kept: four training clips and two test clips, from five scenes. Plus:
    Talkshow/Sad/0007   its last frame is 0 bytes                  -> skipped, zero_byte  (train)
    War/Fear/0008       no face in any frame                       -> skipped, no_face    (train)
    Crime/Sad/0009      listed as Happy                            -> skipped, bad_label  (train)
    Social/Angry/0010   listed in test_All.csv, no folder          -> skipped, missing    (test)
    Cooking/Happy/0011  not one of the 22 scenes                   -> skipped, bad_name   (test)
"""

from __future__ import annotations

import pathlib

import cv2
import numpy as np

from data_builders.afew import dummy_media as dm
from data_builders.demo_av import synth
from data_builders.ferv39k.ferv39k_dataset_builder import CLIP_DIR, LISTS, Builder
from fer_jax.preprocess import face

OUT = pathlib.Path(__file__).parent / "dummy_data"
FRAMES, CROP, MARGIN = 10, 112, 0.8
RENDER = {"Happy": "happiness", "Sad": "sadness", "Neutral": "neutral", "Angry": "anger", "Surprise": "surprise",
          "Disgust": "disgust", "Fear": "fear"}
# (split, clip path under 2_ClipsforFaceCrop, listed label): the clips every config keeps
GOOD = [("train", "Action/Happy/0001", "Happy"), ("train", "Interview/Sad/0002", "Sad"),
        ("train", "DailyLife/Angry/0003", "Angry"), ("train", "Action/Surprise/0004", "Surprise"),
        ("test", "Interview/Neutral/0005", "Neutral"), ("test", "War/Disgust/0006", "Disgust")]
ZERO_BYTE, NO_FACE, BAD_LABEL = "Talkshow/Sad/0007", "War/Fear/0008", "Crime/Sad/0009"
MISSING, BAD_SCENE = "Social/Angry/0010", "Cooking/Happy/0011"
# scikit-image faces of the clips written below (26's sad face escapes dlib's detector, so not 26)
IDENTITIES = (20, 21, 22, 23, 24, 25, 33, 27, 28)
BAD = [("train", ZERO_BYTE, "Sad"), ("train", NO_FACE, "Fear"), ("train", BAD_LABEL, "Happy"),
       ("test", MISSING, "Angry"), ("test", BAD_SCENE, "Happy")]


def face_crops(clip: synth.Clip) -> np.ndarray:
    """FRAMES frames of the clip, each the first face box found widened by MARGIN, CROP px square."""
    picks = np.round(np.linspace(0, len(clip.frames) - 1, FRAMES)).astype(int)
    box = next(boxes[0] for boxes in (face.detect_faces(clip.frames[i]) for i in picks) if boxes)
    half = (1 + MARGIN) * max(box.right - box.left, box.bottom - box.top) / 2
    cx, cy = (box.left + box.right) / 2, (box.top + box.bottom) / 2
    height, width = clip.frames.shape[1:3]
    x0, y0 = int(max(0, cx - half)), int(max(0, cy - half))
    x1, y1 = int(min(width, cx + half)), int(min(height, cy + half))
    return np.stack([cv2.resize(clip.frames[i, y0:y1, x0:x1], (CROP, CROP), interpolation=cv2.INTER_AREA)
                     for i in picks])


def write_frames(folder: pathlib.Path, frames: np.ndarray) -> pathlib.Path:
    folder.mkdir(parents=True)
    for i, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:04d}.jpg"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    return folder


def render(identity, emotion: str, seed: int) -> synth.Clip:
    return synth.render_clip(identity, synth.CLASSES.index(RENDER[emotion]), np.random.default_rng(seed))


def main() -> None:
    out = dm.clear(OUT)
    clips = out / CLIP_DIR
    identities, _ = synth.load_identities()
    config = next(c for c in Builder.BUILDER_CONFIGS if c.name == "rgb160_t16").clip
    for i, (_, name, _) in enumerate(GOOD + BAD[:1] + BAD[2:3] + BAD[4:]):
        folder = write_frames(clips / name, face_crops(render(identities[IDENTITIES[i]], name.split("/")[1], seed=700 + i)))
        if name != ZERO_BYTE:
            dm.check(folder, config, None)
    sorted((clips / ZERO_BYTE).glob("*.jpg"))[-1].write_bytes(b"")  # sampling always reads the last frame
    dm.check(clips / ZERO_BYTE, config, "zero_byte")
    blank = dm.faceless(render(identities[31], "Fear", 710), 9).frames[:FRAMES, :CROP, :CROP]
    dm.check(write_frames(clips / NO_FACE, blank), config, "no_face")
    for split, path in LISTS.items():
        listed = out / path
        listed.parent.mkdir(parents=True, exist_ok=True)
        listed.write_text("".join(f"{name} {label}\n" for s, name, label in GOOD + BAD if s == split))
    print(f"wrote {OUT}: {dm.folder_bytes(OUT) / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
