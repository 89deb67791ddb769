"""Write `dummy_data/`: a miniature BP4D+ in the owners' layout, from real faces, with bad files.

    .venv/bin/python -m data_builders.bp4d_plus.make_dummy_data

Each good task is one scikit-image face (`data_builders.demo_av.synth`) animated into an
expression near the task's target emotion (the renderer has no startle, skepticism,
embarrassment or pain: those show surprise, disgust, happiness and sadness), 5 JPEG frames of
160x160 (BP4D+'s are 1040x1392, thousands per task), zipped per participant as the owners ship
them: `2D+3D/<subject>.zip` holding `<subject>/<task>/NNNN.jpg`, beside
`Physiology/<subject>/<task>/BP_mmHg.txt` (a made-up pulse, one value per line). Each zip's first
task also holds a `0000.obj` (a stand-in for the 3D models the real zips carry), which is no frame.

Kept: F006/T1 and M026/T5 (fold 0), F046/T8 (fold 1), F078/T3 and F078/T10 (fold 2). Plus:
    2D+3D/M001.zip      cut short (fold 1)                       -> skipped, truncated
    F046/T3             its last frame is a zero-byte JPEG       -> skipped, zero_byte
    F078/T11            a task BP4D+ does not have               -> skipped, unknown_task
    F006/T7             blank frames                             -> skipped, no_face
    2D+3D/F200.zip      no such participant                      -> skipped, unknown_subject
    M026/T5             no BP_mmHg.txt                           -> kept by gray64_t8; face_waveform: missing
"""

from __future__ import annotations

import io
import pathlib
import zipfile

import cv2
import numpy as np

from data_builders.afew import dummy_media as dm
from data_builders.bp4d_plus.bp4d_plus_dataset_builder import FRAMES_DIR, PHYSIOLOGY_DIR, TASK_EMOTIONS
from data_builders.demo_av import synth

OUT = pathlib.Path(__file__).parent / "dummy_data"
SIZE, LENGTH, QUALITY = 160, 5, 70
# BP4D+ target emotion -> the synth expression whose motion to render.
RENDER = {"happiness": "happiness", "surprise": "surprise", "sadness": "sadness", "startle": "surprise",
          "skepticism": "disgust", "embarrassment": "happiness", "fear": "fear", "pain": "sadness",
          "anger": "anger", "disgust": "disgust"}
# subject -> [(task, how)]: "good", "zero_byte" (last frame emptied), "no_face", "no_signal"
SUBJECTS = {
    "F006": [("T1", "good"), ("T7", "no_face")],
    "M026": [("T5", "no_signal")],
    "F046": [("T8", "good"), ("T3", "zero_byte")],
    "F078": [("T3", "good"), ("T10", "good"), ("T11", "good")],
}


def task_frames(identity, task: str, seed: int, faceless: bool = False) -> list[bytes]:
    """LENGTH JPEG frames, neutral -> apex of the task's emotion."""
    emotion = TASK_EMOTIONS.get(task, "happiness")
    clip = synth.render_clip(identity, synth.CLASSES.index(RENDER[emotion]), np.random.default_rng(seed))
    if faceless:
        clip = dm.faceless(clip, seed)
    picks = np.round(np.linspace(0, len(clip.frames) - 1, LENGTH)).astype(int)
    frames = [cv2.resize(clip.frames[i], (SIZE, SIZE), interpolation=cv2.INTER_AREA) for i in picks]
    return [cv2.imencode(".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, QUALITY])[1].tobytes()
            for f in frames]


def write_signal(subject: str, task: str, seed: int) -> None:
    """A pulse-like blood-pressure trace, 200 values (a header line, as rPPG-Toolbox's reader expects one)."""
    t = np.linspace(0, 4, 200)
    pressure = 90 + 20 * np.sin(2 * np.pi * (1.1 + 0.1 * (seed % 5)) * t) ** 2
    folder = OUT / PHYSIOLOGY_DIR / subject / task
    folder.mkdir(parents=True)
    (folder / "BP_mmHg.txt").write_text("BP_mmHg\n" + "".join(f"{v:.2f}\n" for v in pressure))


def _add(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    """A member with a fixed date, so that a rerun writes the same bytes."""
    archive.writestr(zipfile.ZipInfo(name, date_time=(2016, 1, 1, 0, 0, 0)), data)


def write_subject(subject: str, tasks, identity, seed: int) -> pathlib.Path:
    path = OUT / FRAMES_DIR / f"{subject}.zip"
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:  # JPEGs do not compress further
        for k, (task, how) in enumerate(tasks):
            frames = task_frames(identity, task, seed + k, faceless=how == "no_face")
            if how == "zero_byte":
                frames[-1] = b""
            for i, data in enumerate(frames):
                _add(archive, f"{subject}/{task}/{i:04d}.jpg", data)
            if k == 0:  # a 3D model's file beside the frames: not a frame
                _add(archive, f"{subject}/{task}/0000.obj", b"v 0 0 0\n")
            if how != "no_signal":
                write_signal(subject, task, seed + k)
    return path


def main() -> None:
    dm.clear(OUT)
    identities, _ = synth.load_identities()
    for i, (subject, tasks) in enumerate(SUBJECTS.items()):
        write_subject(subject, tasks, identities[i], seed=10 * i)
    # A participant's zip cut short, and a zip named after no participant.
    whole = io.BytesIO()
    with zipfile.ZipFile(whole, "w") as archive:
        for i, data in enumerate(task_frames(identities[5], "T2", seed=50)):
            _add(archive, f"M001/T2/{i:04d}.jpg", data)
    (OUT / FRAMES_DIR / "M001.zip").write_bytes(whole.getvalue()[: len(whole.getvalue()) // 2])
    write_subject("F200", [("T1", "good")], identities[6], seed=60)
    print(f"wrote {OUT}: {dm.folder_bytes(OUT) / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
