"""Write `dummy_data/`: a miniature MMI download in the owner's layout, from real faces, with bad files.

    .venv/bin/python -m data_builders.mmi.make_dummy_data

Each good session is one scikit-image face (`data_builders.demo_av.synth`) going neutral -> apex
-> neutral, written as MMI ships a recording: `Sessions/<id>/S<subject>-<take>.avi` (MPEG-4 Part 2
in AVI; 160x160 rather than MMI's 720x576, to keep the folder small), `session.xml`, the metadata
`S<subject>-<take>.xml` with its Emotion metatag, and `S<subject>-<take>-oao_aucs.xml` with the
onset/apex/offset markers of the class's action units (plus a blink, AU45, which the builder
ignores). The markers come from the rendered frames: onset where the face starts to move, apex
where it has (almost) stopped changing.

One good session per fold (subjects 1..10; fold = subject mod 10), plus two more in fold 0 that
the frontal subset (`gray64_t8_frontal`) leaves out:
    305  a frontal (view 0) emotion session without -oao_aucs.xml, stored on its side as MMI's
         are: kept whole and turned upright (no timing); frontal subset: no_facs_timing
    401  a dual-view (view 2) emotion session, frontal and mirrored camera side by side, with
         its timing: kept; frontal subset: view_2
and, left out or skipped in every config:
    201  an action-unit session without an Emotion metatag     -> left out, no_emotion_label
    202  a profile-view (view 1) emotion session               -> left out, view_1
    203  a still-image session (a .jpg, no video)              -> left out, no_video
    301  zero-byte .avi                                        -> skipped, zero_byte
    302  .avi cut to a quarter, before its apex                -> skipped, truncated
    303  a video of an empty room                              -> skipped, no_face
    304  metadata .xml that is not XML                         -> skipped, bad_label
"""

from __future__ import annotations

import fractions
import pathlib
import shutil

import av
import cv2
import numpy as np

from data_builders.demo_av import synth
from data_builders.mmi.mmi_dataset_builder import CLASSES, SESSIONS_DIR

OUT = pathlib.Path(__file__).parent / "dummy_data"
FPS = 25
# Action units of each class's prototype (EMFACS), written as that class's oao markers.
AUS = {"anger": (4, 7, 23), "disgust": (9, 10), "fear": (1, 2, 4, 5, 20), "happiness": (6, 12),
       "sadness": (1, 4, 15), "surprise": (1, 2, 5, 26)}
SYNTH = {"anger": "anger", "disgust": "disgust", "fear": "fear", "happiness": "happiness",
         "sadness": "sadness", "surprise": "surprise"}


def recording(identity, emotion: str, seed: int) -> tuple[np.ndarray, tuple[int, int, int]]:
    """(T, 160, 160, 3) RGB neutral -> apex -> neutral, and its (onset, apex, offset) 0-based."""
    rise = synth.render_clip(identity, synth.CLASSES.index(SYNTH[emotion]), np.random.default_rng(seed)).frames
    grey = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in rise]).astype(np.float32)
    change = np.abs(grey - grey[0]).mean(axis=(1, 2))
    change = (change - change[1]) / max(change.max() - change[1], 1e-6)  # frame 1: the jitter's level
    onset = int(np.argmax(change > 0.1)) - 1
    apex = int(np.argmax(change > 0.9))
    hold = [rise[-1]] * 3
    fall = list(rise[::-1][1:])
    frames = np.stack(list(rise) + hold + fall)
    offset = len(frames) - 1 - onset  # the fall mirrors the rise
    return frames, (max(onset, 0), apex, offset)


def write_avi(path: pathlib.Path, frames: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="avi") as container:
        stream = container.add_stream("mpeg4", rate=fractions.Fraction(FPS))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.bit_rate = 150_000
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        container.mux(stream.encode())


def session_xml(session: int, subject: int, name: str, view: int = 0, annotated: bool = True) -> str:
    annotation = f'    <annotation id="{session}1" type="FACS" filename="{name}-oao_aucs.xml" />\n' if annotated else ""
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f'<session sessionId="{session}" mediaFile="{name}.avi">\n'
        f'  <subject id="{subject}" />\n'
        f'  <track id="0" type="Video" view="{view}" filename="{name}.avi">\n'
        f"{annotation}"
        "  </track>\n"
        "</session>\n"
    )


def metadata_xml(emotion: int | None) -> str:
    tags = '  <Metatag Name="Gender" Value="Female" />\n'
    if emotion is not None:
        tags += f'  <Metatag Name="Emotion" Value="{emotion}" />\n'
    return f'<?xml version="1.0" encoding="utf-8"?>\n<Metatags>\n{tags}</Metatags>\n'


def oao_xml(aus, timing: tuple[int, int, int], rng: np.random.Generator) -> str:
    """Markers (1-based frames) for each AU around the expression's timing, and a blink (AU45)
    before the expression starts, which the builder must ignore."""
    onset, apex, offset = (t + 1 for t in timing)
    lines = ['<?xml version="1.0" encoding="utf-8"?>', "<ActionUnits>"]
    for k, au in enumerate(aus):
        start = onset + (1 if k else 0)  # the first AU opens the expression, the others follow
        peak = apex - int(rng.integers(0, 2)) if k else apex  # the first AU peaks last
        markers = [(1, 0), (start, 1), (max(peak, start + 1), 2), (offset - 3, 3), (offset, 0)]
        lines.append(f'  <ActionUnit Number="{au}">')
        lines += [f'    <Marker Frame="{f}" Type="{t}" />' for f, t in markers]
        lines.append("  </ActionUnit>")
    lines.append('  <ActionUnit Number="45">')
    lines += [f'    <Marker Frame="{f}" Type="{t}" />' for f, t in [(1, 0), (2, 1), (2, 2), (3, 3), (4, 0)]]
    lines += ["  </ActionUnit>", "</ActionUnits>", ""]
    return "\n".join(lines)


def write_session(session: int, subject: int, take: int, frames, timing, emotion: str | None, view: int = 0,
                  rng=None) -> pathlib.Path:
    folder = OUT / SESSIONS_DIR / str(session)
    if folder.exists():
        shutil.rmtree(folder)
    name = f"S{subject:03d}-{take:03d}"
    write_avi(folder / f"{name}.avi", frames)
    (folder / "session.xml").write_text(session_xml(session, subject, name, view))
    code = None if emotion is None else CLASSES.index(emotion) + 1
    (folder / f"{name}.xml").write_text(metadata_xml(code))
    aus = AUS[emotion] if emotion else (12,)
    (folder / f"{name}-oao_aucs.xml").write_text(oao_xml(aus, timing, rng or np.random.default_rng(session)))
    return folder / f"{name}.avi"


def write_fold0_extras(identities) -> None:
    """Sessions 305 (view 0, no timing, stored on its side) and 401 (view 2), subjects 20 and 30."""
    frames, timing = recording(identities[64], "surprise", seed=64)
    sideways = np.stack([np.rot90(f) for f in frames[::3]])  # a quarter turn anticlockwise, as stored
    video = write_session(305, 20, 2, sideways, (0, timing[1] // 3, len(sideways) - 1), "surprise")
    video.with_name(f"{video.stem}-oao_aucs.xml").unlink()
    (video.parent / "session.xml").write_text(session_xml(305, 20, video.stem, annotated=False))
    frames, timing = recording(identities[65], "happiness", seed=65)
    both = np.concatenate([frames, frames[:, :, ::-1]], axis=2)[::2]  # two cameras, side by side
    write_session(401, 30, 1, both, tuple(t // 2 for t in timing), "happiness", view=2)


def main():
    if OUT.exists():
        shutil.rmtree(OUT)
    identities, _ = synth.load_identities()
    for k in range(10):  # subjects 1..10: one per fold
        subject, emotion = k + 1, CLASSES[k % len(CLASSES)]
        frames, timing = recording(identities[40 + k], emotion, seed=k)
        write_session(101 + k, subject, 1, frames, timing, emotion)
    small, small_timing = recording(identities[60], "happiness", seed=60)
    small = np.stack([cv2.resize(f, (64, 64), interpolation=cv2.INTER_AREA) for f in small[::4]])
    small_timing = (0, 2, len(small) - 1)
    write_session(201, 1, 2, small, small_timing, None)  # action units only
    write_session(202, 2, 2, small, small_timing, "surprise", view=1)
    still = OUT / SESSIONS_DIR / "203"
    still.mkdir(parents=True)
    cv2.imwrite(str(still / "S003-002.jpg"), cv2.cvtColor(small[-1], cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])
    (still / "session.xml").write_text(session_xml(203, 3, "S003-002", annotated=False).replace(".avi", ".jpg"))

    frames, timing = recording(identities[61], "anger", seed=61)
    write_session(301, 4, 2, frames, timing, "anger").write_bytes(b"")
    frames, timing = recording(identities[62], "fear", seed=62)
    video = write_session(302, 5, 2, frames, timing, "fear")
    video.write_bytes(video.read_bytes()[: video.stat().st_size // 4])
    rng = np.random.default_rng(303)
    room = np.clip(rng.normal(120, 4, (24, 160, 160, 3)), 0, 255).astype(np.uint8)
    write_session(303, 6, 2, room, (2, 12, 20), "sadness")
    frames, timing = recording(identities[63], "disgust", seed=63)
    metadata = write_session(304, 7, 2, frames[::3], (0, timing[1] // 3, len(frames[::3]) - 1), "disgust")
    metadata.with_suffix(".xml").write_text('<?xml version="1.0"?>\n<Metatags>\n  <Metatag Name="Emotion" Value="2"\n')
    write_fold0_extras(identities)
    size = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"wrote {OUT}: {sum(1 for _ in OUT.rglob('*.avi'))} videos, {size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
