"""Write `dummy_data/`: a miniature CASME II in the owner's layout, from real faces, with bad files.

    .venv/bin/python -m data_builders.casme2.make_dummy_data

Each good clip is one scikit-image face (`data_builders.demo_av.synth`) going neutral -> apex ->
neutral, saved as CASME II saves its frames: colour JPEGs
`CASME2_RAW_selected/sub<NN>/<clip>/img<frame>.jpg`, numbered from the onset frame the coding sheet
gives (160x160 rather than 640x480, ~10 frames rather than ~60, to keep the folder small). The
coding sheet `CASME2-coding-20140508.xlsx` is a real .xlsx (a zip of SpreadsheetML parts, written
here with the standard library) with the owner's columns, Subject as text ("01"), frame numbers as
numbers, "/" where an apex is not coded, and an OffsetFrame of 0 as a typo in the sheet.

Clips (3 subjects, so 3 leave-one-subject-out splits):
    sub01/EP02_01f happiness, sub01/EP03_02 disgust, sub01/EP19_05f others (apex "/": the middle
    frame is taken as its apex), sub02/EP09_04 repression, sub02/EP01_11f surprise,
    sub03/EP08_03 happiness, sub03/EP15_01 disgust (OffsetFrame 0: corrected)
    sub02/EP13_02  fear: not one of the 5 classes                    -> left out, emotion_fear
    sub01/EP04_02  its onset frame is a zero-byte JPEG               -> skipped, zero_byte
    sub02/EP05_03  blank frames                                      -> skipped, no_face
    sub03/EP06_01f a sheet row whose folder is not there             -> skipped, missing
    sub03/EP07_04  OnsetFrame "4b6" in the sheet                     -> skipped, bad_label
"""

from __future__ import annotations

import pathlib
import shutil
import zipfile
from xml.sax.saxutils import escape

import cv2
import numpy as np

from data_builders.casme2.casme2_dataset_builder import FRAMES_DIR, SHEET_NAME
from data_builders.demo_av import synth
from fer_jax.errors import InputError
from fer_jax.preprocess.clip import ClipConfig, process_frames

OUT = pathlib.Path(__file__).parent / "dummy_data"
HEADER = ["Subject", "Filename", "", "OnsetFrame", "ApexFrame", "OffsetFrame", "", "Action Units", "Estimated Emotion"]
AUS = {"happiness": "6+12", "disgust": "4+9", "others": "14", "repression": "15+17", "surprise": "1+2", "fear": "4+20"}
SYNTH = {"happiness": "happiness", "disgust": "disgust", "others": "sadness", "repression": "anger",
         "surprise": "surprise", "fear": "fear"}

# (subject, clip, emotion, onset frame number)
GOOD = [
    ("01", "EP02_01f", "happiness", 46),
    ("01", "EP03_02", "disgust", 131),
    ("01", "EP19_05f", "others", 12),  # no apex coded
    ("02", "EP09_04", "repression", 77),
    ("02", "EP01_11f", "surprise", 21),
    ("03", "EP08_03", "happiness", 160),
    ("03", "EP15_01", "disgust", 58),  # OffsetFrame 0 in the sheet
]
NO_APEX, ZERO_OFFSET = "EP19_05f", "EP15_01"


def micro_expression(identity, emotion: str, seed: int) -> tuple[np.ndarray, int]:
    """(T, 160, 160, 3) RGB neutral -> apex -> neutral (~10 frames) and the apex's position.
    Scenes where dlib misses the face in the frames the builder reads are drawn again."""
    for attempt in range(10):
        rng = np.random.default_rng([seed, attempt])
        rise = synth.render_clip(identity, synth.CLASSES.index(SYNTH[emotion]), rng).frames
        rise = rise[np.round(np.linspace(0, len(rise) - 1, 6)).astype(int)]
        try:
            process_frames(rise, ClipConfig(need_audio=False))
        except InputError:
            continue
        return np.concatenate([rise, rise[-1:], rise[::-1][1:4]]), len(rise) - 1
    raise RuntimeError(f"no detectable scene for {identity.subject} in 10 draws")


def write_clip(subject: str, clip: str, frames: np.ndarray, onset: int) -> pathlib.Path:
    folder = OUT / FRAMES_DIR / f"sub{subject}" / clip
    folder.mkdir(parents=True)
    for k, frame in enumerate(frames):
        bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(folder / f"img{onset + k}.jpg"), bgr, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return folder


def write_xlsx(path: pathlib.Path, rows: list[list]) -> None:
    """A one-sheet .xlsx: strings as shared strings, ints/floats as numbers, None as no cell."""
    strings: list[str] = []

    def cell(ref: str, value) -> str:
        if value is None or value == "":
            return ""
        if isinstance(value, (int, float)):
            return f'<c r="{ref}"><v>{value}</v></c>'
        if value not in strings:
            strings.append(value)
        return f'<c r="{ref}" t="s"><v>{strings.index(value)}</v></c>'

    sheet_rows = "".join(
        f'<row r="{r + 1}">' + "".join(cell(f"{chr(65 + c)}{r + 1}", v) for c, v in enumerate(row)) + "</row>"
        for r, row in enumerate(rows)
    )
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    pkg = "http://schemas.openxmlformats.org/package/2006/relationships"
    ct = "application/vnd.openxmlformats-officedocument.spreadsheetml"
    head = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    parts = {
        "[Content_Types].xml": head + '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        f'<Override PartName="/xl/workbook.xml" ContentType="{ct}.sheet.main+xml"/>'
        f'<Override PartName="/xl/worksheets/sheet1.xml" ContentType="{ct}.worksheet+xml"/>'
        f'<Override PartName="/xl/sharedStrings.xml" ContentType="{ct}.sharedStrings+xml"/></Types>',
        "_rels/.rels": head + f'<Relationships xmlns="{pkg}"><Relationship Id="rId1" '
        f'Type="{rel}/officeDocument" Target="xl/workbook.xml"/></Relationships>',
        "xl/workbook.xml": head + f'<workbook xmlns="{main}" xmlns:r="{rel}"><sheets>'
        '<sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>',
        "xl/_rels/workbook.xml.rels": head + f'<Relationships xmlns="{pkg}">'
        f'<Relationship Id="rId1" Type="{rel}/worksheet" Target="worksheets/sheet1.xml"/>'
        f'<Relationship Id="rId2" Type="{rel}/sharedStrings" Target="sharedStrings.xml"/></Relationships>',
        "xl/worksheets/sheet1.xml": head + f'<worksheet xmlns="{main}"><sheetData>{sheet_rows}</sheetData></worksheet>',
    }
    shared = "".join(f"<si><t>{escape(s)}</t></si>" for s in strings)
    count = len(strings)
    parts["xl/sharedStrings.xml"] = head + f'<sst xmlns="{main}" count="{count}" uniqueCount="{count}">{shared}</sst>'
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as book:
        for name, text in parts.items():
            book.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), text)  # same bytes every run


def main():
    if OUT.exists():
        shutil.rmtree(OUT)
    identities, _ = synth.load_identities()
    face_of = {"01": identities[70], "02": identities[71], "03": identities[72]}
    rows = [HEADER]
    for k, (subject, clip, emotion, onset) in enumerate(GOOD):
        frames, apex = micro_expression(face_of[subject], emotion, seed=k)
        write_clip(subject, clip, frames, onset)
        coded_apex = "/" if clip == NO_APEX else onset + apex
        coded_offset = 0 if clip == ZERO_OFFSET else onset + len(frames) - 1
        rows.append([subject, clip, None, onset, coded_apex, coded_offset, None, AUS[emotion], emotion])
    rows.append(["02", "EP13_02", None, 30, 34, 40, None, AUS["fear"], "fear"])  # left out: fear
    frames, apex = micro_expression(face_of["01"], "disgust", seed=20)
    write_clip("01", "EP04_02", frames, 300)
    (OUT / FRAMES_DIR / "sub01" / "EP04_02" / "img300.jpg").write_bytes(b"")
    rows.append(["01", "EP04_02", None, 300, 300 + apex, 300 + len(frames) - 1, None, AUS["disgust"], "disgust"])
    rng = np.random.default_rng(5)
    blank = np.clip(rng.normal(140, 4, (8, 160, 160, 3)), 0, 255).astype(np.uint8)
    write_clip("02", "EP05_03", blank, 90)
    rows.append(["02", "EP05_03", None, 90, 94, 97, None, AUS["surprise"], "surprise"])
    rows.append(["03", "EP06_01f", None, 15, 19, 24, None, AUS["others"], "others"])  # no folder
    rows.append(["03", "EP07_04", None, "4b6", 50, 55, None, AUS["happiness"], "happiness"])
    write_xlsx(OUT / SHEET_NAME, rows)
    size = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"wrote {OUT}: {sum(1 for _ in OUT.rglob('*.jpg'))} frames, {size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
