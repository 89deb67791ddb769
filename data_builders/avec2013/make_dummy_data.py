"""Write `dummy_data/`: a tiny AVEC2013 in its partitions' layout, from real faces, with broken files.

    python -m data_builders.avec2013.make_dummy_data

Each recording is a real face of scikit-image (through the demo corpus' `synth`, as SEND's dummy
videos are made) going through seven expressions one after another, 4-6 s of H.264 + AAC
(AVEC2013's recordings run many minutes; two 2 s windows each are enough to show the windowing), with a BDI-II score in its DepressionLabels file. Besides the good recordings:

    Training/Video/214_1_video.mp4      its first 4 kB only (a copy cut short)   -> skipped, truncated
    Training/Video/216_1_video.mp4      no 216_1_Depression.csv                  -> skipped, missing_label
    Development/DepressionLabels/222_1_Depression.csv, no video                  -> skipped, missing_video
"""

from __future__ import annotations

import os
import shutil

from data_builders.demo_av import synth
from data_builders.send.make_dummy_data import story

OUT = os.path.join(os.path.dirname(__file__), "dummy_data", "AVEC2013")
# (partition, recording, identity index, expressions in order, BDI-II score or None)
GOOD = [
    ("Training", "203_1", 0, ("neutral", "happiness", "neutral", "sadness", "neutral", "happiness", "neutral"), 3),
    ("Training", "205_2", 1, ("sadness", "neutral", "sadness", "fear", "sadness", "neutral", "sadness"), 27),
    ("Development", "218_1", 3, ("neutral", "happiness", "sadness", "neutral", "sadness", "neutral", "sadness"), 12),
    ("Testing", "220_1", 5, ("sadness", "sadness", "neutral", "fear", "sadness", "neutral", "sadness"), 35),
]


def video_path(partition: str, recording: str) -> str:
    return os.path.join(OUT, partition, "Video", f"{recording}_video.mp4")


def write_label(partition: str, recording: str, bdi: float) -> None:
    folder = os.path.join(OUT, partition, "DepressionLabels")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, f"{recording}_Depression.csv"), "w") as f:
        f.write(f"{bdi:g}\n")


def main(out: str = OUT) -> None:
    if os.path.isdir(os.path.dirname(out)):
        shutil.rmtree(os.path.dirname(out))
    identities, _ = synth.load_identities()
    for partition, recording, who, expressions, bdi in GOOD:
        clip, _ = story(identities[who], expressions, seed=int(recording.split("_")[0]))
        synth.write_clip_mp4(video_path(partition, recording), clip)
        write_label(partition, recording, bdi)
    with open(video_path("Training", "203_1"), "rb") as f:
        head = f.read(4096)
    with open(video_path("Training", "214_1"), "wb") as f:
        f.write(head)
    write_label("Training", "214_1", 8)
    clip, _ = story(identities[2], ("neutral",), seed=216)
    synth.write_clip_mp4(video_path("Training", "216_1"), clip)
    write_label("Development", "222_1", 19)
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(out) for f in files)
    print(f"wrote {out}: {size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
