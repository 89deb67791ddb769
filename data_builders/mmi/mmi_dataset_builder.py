"""mmi: the MMI Facial Expression Database's emotion-labelled frontal videos (6 basic emotions).

The MMI database (Pantic et al., ICME 2005; Valstar & Pantic 2010) is downloaded from its web
site as `Sessions/<session id>/` folders. A video session holds

    <name>.avi              the recording (e.g. S001-001.avi: 720x576, ~25 fps), neutral ->
                            onset -> apex -> offset -> neutral
    session.xml             the session: its subject (<subject id=...>) and camera view
                            (<track view=...>: 0 frontal, 1 profile, 2 both side by side)
    <name>.xml              metadata; emotion sessions carry <Metatag Name="Emotion" Value="1..6"/>
                            (1 anger, 2 disgust, 3 fear, 4 happiness, 5 sadness, 6 surprise)
    <name>-oao_aucs.xml     FACS timing: <ActionUnit Number="12"> with <Marker Frame="f" Type="t"/>
                            (1-based frames; t: 1 onset, 2 apex, 3 offset, 0 neutral again)

Kept: every video session with an Emotion value 1..6 in a frontal (view 0) or dual (view 2: the
frontal and the profile camera side by side) recording, as public code that reads MMI keeps them;
profile-only (view 1) sessions are left out. A config with `frontal_only=True` (`*_frontal`)
keeps the frontal subset the builder used to: view 0 with FACS timing.

Each clip is the expression's rise, the video's frames from onset to apex (as CK+ sequences run),
so both configs see what CK+'s see. An emotion session without a `-oao_aucs.xml` has no timing:
its clip is the whole video (neutral -> apex -> neutral), with onset, apex and offset stored as -1,
counted in the report's notes as `no_facs_timing`. Such view-0 sessions are stored on their side
(public code turns them a quarter turn clockwise before use), so their frames are turned too.
The expression's timing comes from its facial action units 1..42 (43 eyes closed, 45 blink,
46 wink and the head/eye position codes 50+ do not make an expression): onset = the first frame
any of them starts its onset, apex = the first frame by which all of them have reached their apex,
offset = the last frame any of them is still relaxing (its closing neutral marker, or its offset
marker when there is none); each AU's first onset -> apex -> offset cycle counts. All three are
stored as 0-based frame indices of the video (`onset`, `apex`, `offset`); kept frame k of a
fixed-length clip is video frame onset + temporal.sample_indices(apex - onset + 1, num_frames)[k],
of a variable-length one (lemhi: up to 32 frames) onset + k.

Splits: 10 subject-independent folds `fold0` .. `fold9`, subject number S mod 10 (S034 -> fold4).
The rule needs no table, so it places every subject the same way in any copy of the corpus.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re
import xml.etree.ElementTree as ET


from data_builders import base, common
from data_builders.mmi.window import VideoWindow
from fer_jax.errors import ConfigError, InputError

CLASSES = ("anger", "disgust", "fear", "happiness", "sadness", "surprise")  # Emotion values 1..6
NUM_FOLDS = 10
SESSIONS_DIR = "Sessions"
HOMEPAGE = "https://mmifacedb.eu/"
EXPRESSION_AUS = range(1, 43)  # FACS action units that move the face (see the module docstring)
MARKER_NEUTRAL, MARKER_ONSET, MARKER_APEX, MARKER_OFFSET = 0, 1, 2, 3
# Session views kept (session.xml's <track view=...>: 0 frontal, 1 profile, 2 both side by side),
# by the config's frontal_only.
KEPT_VIEWS = {False: ("0", "2"), True: ("0",)}


def fold_of_subject(subject: int) -> int:
    return subject % NUM_FOLDS


def fold_name(fold: int) -> str:
    return f"fold{fold}"


def cross_validation_splits(val_fold: int) -> tuple[str, str]:
    """(train split, validation split) of one cross-validation round: nine folds against one."""
    if not 0 <= val_fold < NUM_FOLDS:
        raise ConfigError(f"MMI has folds 0..{NUM_FOLDS - 1}, not {val_fold}")
    return "+".join(fold_name(f) for f in range(NUM_FOLDS) if f != val_fold), fold_name(val_fold)


@dataclasses.dataclass(frozen=True)
class Timing:
    """0-based video frame indices of the expression's onset, apex and offset."""

    onset: int
    apex: int
    offset: int


def _xml_root(path: pathlib.Path) -> ET.Element:
    try:
        return ET.parse(path).getroot()
    except ET.ParseError as e:
        raise InputError(path, "bad_label", f"not well-formed XML ({e}); re-download the session") from None
    except OSError as e:
        raise InputError(path, "missing", f"cannot read it ({e.strerror})") from None


def _elements(root: ET.Element, tag: str):
    return (e for e in root.iter() if isinstance(e.tag, str) and e.tag.lower() == tag)


def parse_session(path: pathlib.Path, video_name: str) -> tuple[int, str]:
    """(subject number, view) from session.xml. The subject falls back to the recording's name
    (S034-022.avi -> 34) when session.xml has no <subject id=...>; the view defaults to "0"."""
    root = _xml_root(path)
    subject_ids = [s.get("id") for s in _elements(root, "subject") if s.get("id")]
    named = re.match(r"S(\d+)-", video_name)
    if subject_ids and subject_ids[0].strip().isdigit():
        subject = int(subject_ids[0])
    elif named:
        subject = int(named.group(1))
    else:
        raise InputError(path, "bad_label", f"no <subject id=...> and {video_name} does not name one (S<number>-...)")
    views = [t.get("view") for t in _elements(root, "track") if t.get("view") is not None]
    return subject, (views[0].strip() if views else "0")


def parse_emotion(path: pathlib.Path) -> int | None:
    """The Emotion metatag's value (an int) of a recording's metadata file, None if it has none."""
    values = [m.get("Value", m.get("value")) for m in _elements(_xml_root(path), "metatag")
              if (m.get("Name") or m.get("name") or "").lower() == "emotion"]
    if not values:
        return None
    try:
        return int(str(values[0]).strip())
    except ValueError:
        raise InputError(path, "bad_label", f"Emotion value {values[0]!r} is not a number 1..6") from None


def _first_cycle(markers: list[tuple[int, int]]) -> tuple[int, int, int] | None:
    """(onset, apex, end) frames of an AU's first onset -> apex (-> offset -> neutral) cycle."""
    def first(kind, after):
        return next((f for f, t in markers if t == kind and f >= after), None)

    onset = first(MARKER_ONSET, 0)
    apex = None if onset is None else first(MARKER_APEX, onset)
    if apex is None:
        return None
    offset = first(MARKER_OFFSET, apex)
    end = None if offset is None else first(MARKER_NEUTRAL, offset)
    return onset, apex, end if end is not None else (offset if offset is not None else apex)


def parse_oao(path: pathlib.Path) -> Timing:
    """The expression's Timing (0-based) from a `-oao_aucs.xml` file (see the module docstring)."""
    cycles = []
    for au in _elements(_xml_root(path), "actionunit"):
        number = (au.get("Number") or au.get("number") or "").strip()
        if not number.isdigit() or int(number) not in EXPRESSION_AUS:
            continue
        try:
            markers = sorted((int(m.get("Frame")), int(m.get("Type"))) for m in _elements(au, "marker"))
        except (TypeError, ValueError):
            raise InputError(path, "bad_label", f"AU{number} has a marker without an integer Frame and Type") from None
        cycle = _first_cycle(markers)
        if cycle is not None:
            cycles.append(cycle)
    if not cycles:
        raise InputError(path, "bad_label", "no facial action unit (1..42) with both onset and apex markers")
    onset, apex, end = (min(c[0] for c in cycles), max(c[1] for c in cycles), max(c[2] for c in cycles))
    if min(onset, apex, end) < 1:
        raise InputError(path, "bad_label", "marker frames are 1-based; found frame 0 or less")
    return Timing(onset - 1, apex - 1, end - 1)


def find_clips(
    root: pathlib.Path, report: common.BuildReport, frontal_only: bool = False
) -> dict[str, list[common.ClipItem]]:
    """{fold name: ClipItems} of the emotion recordings under root/Sessions (frontal and dual-view;
    with `frontal_only`, frontal ones with FACS timing). Sessions that are not such recordings
    are counted in report.excluded; broken ones are skipped."""
    sessions = root / SESSIONS_DIR
    if not sessions.is_dir():
        message = f"{root}: expected a {SESSIONS_DIR}/ folder in --manual-dir. "
        raise ConfigError(message + Builder.MANUAL_DOWNLOAD_INSTRUCTIONS)
    items: dict[str, list[common.ClipItem]] = {fold_name(f): [] for f in range(NUM_FOLDS)}
    folders = sorted((p for p in sessions.iterdir() if p.is_dir()), key=lambda p: (len(p.name), p.name))
    for folder in folders:
        try:
            found = _session_video(folder, report, KEPT_VIEWS[frontal_only])
        except InputError as e:
            report.add_skip("none", e)  # no subject known, so no fold
            continue
        if found is None:
            continue
        video, subject, view = found
        split = fold_name(fold_of_subject(subject))
        try:
            item = _emotion_clip(folder, video, subject, view, frontal_only, report)
        except InputError as e:
            report.add_skip(split, e)
            continue
        if item is not None:
            items[split].append(item)
    return items


def _session_video(folder: pathlib.Path, report: common.BuildReport, views) -> tuple[pathlib.Path, int, str] | None:
    """(video, subject number, view) of a video session in one of `views`; None (counted in
    report.excluded) for other sessions; InputError when the session is broken."""
    videos = sorted(folder.glob("*.avi"))
    if not videos:
        report.excluded["no_video"] += 1  # still-image sessions
        return None
    if len(videos) > 1:
        raise InputError(folder, "bad_label", f"{len(videos)} .avi files in one session; expected one")
    if not (folder / "session.xml").is_file():
        raise InputError(folder / "session.xml", "missing", "session.xml not found; re-download the session")
    subject, view = parse_session(folder / "session.xml", videos[0].name)
    if view not in views:
        report.excluded[f"view_{view}"] += 1  # profile (1), or dual-view (2) in the frontal subset
        return None
    return videos[0], subject, view


def _emotion_clip(folder: pathlib.Path, video: pathlib.Path, subject: int, view: str, frontal_only: bool,
                  report) -> common.ClipItem | None:
    """The ClipItem of an emotion recording; None (counted in report.excluded) for recordings
    without a basic-emotion label (or, with `frontal_only`, without FACS timing); InputError when
    its metadata or timing is broken."""
    metadata = video.with_suffix(".xml")
    emotion = parse_emotion(metadata) if metadata.is_file() else None
    if emotion is None:
        report.excluded["no_emotion_label"] += 1  # action-unit recordings
        return None
    if not 1 <= emotion <= len(CLASSES):
        report.excluded[f"emotion_{emotion}"] += 1
        return None
    oao = folder / f"{video.stem}-oao_aucs.xml"
    if oao.is_file():
        timing = parse_oao(oao)
        window = VideoWindow(str(video), timing.onset, timing.apex + 1)
    elif frontal_only:
        report.excluded["no_facs_timing"] += 1
        return None
    else:  # no timing: the whole recording; view-0 ones without it are stored on their side
        timing = Timing(-1, -1, -1)
        window = VideoWindow(str(video), 0, None, rotate_clockwise=view == "0")
        report.notes["no_facs_timing"] += 1
    return common.ClipItem(
        key=f"{folder.name}/{video.stem}",
        path=window,
        label=emotion - 1,
        subject=f"S{subject:03d}",
        extra=dataclasses.asdict(timing),
    )


class Builder(base.ClipCorpusBuilder):
    """MMI frontal emotion videos (onset -> apex) as aligned-face clips, in 10 subject folds."""

    CLASS_NAMES = CLASSES
    EXTRA_FEATURES = base.TIMING_FEATURES
    HOMEPAGE = HOMEPAGE
    BUILDER_CONFIGS = [
        base.ClipCorpusConfig(
            name="gray64_t8",
            description="8 frames of 64x64 grey aligned faces from onset to apex (3D-CNN + ConvLSTM input).",
            clip=base.GRAY64_T8,
            frontal_only=False,
        ),
        base.ClipCorpusConfig(
            name="lemhi",
            description="Up to 32 frames of 112x112 grey faces from onset to apex, a frame mask, and their LEMHI.",
            clip=base.LEMHI,
            frontal_only=False,
        ),
        base.ClipCorpusConfig(
            name="gray64_t8_frontal",
            description="gray64_t8 of the frontal subset: view-0 sessions with FACS timing only.",
            clip=base.GRAY64_T8,
            frontal_only=True,
        ),
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        f"Register at {HOMEPAGE}, send the signed EULA, then download the sessions you need (the "
        "emotion-labelled frontal videos: search for sessions with an Emotion metatag) and unzip "
        "the download into one folder; pass it as --manual-dir. It must hold "
        "Sessions/<session id>/session.xml, <name>.avi, <name>.xml and <name>-oao_aucs.xml "
        "(e.g. Sessions/1766/S034-022.avi). Other sessions in the folder are counted and left out."
    )

    def find_clips(self, manual_dir, report):
        return find_clips(manual_dir, report, self.builder_config.frontal_only)

    def empty_split_error(self, empty, report):
        return ConfigError(
            f"no usable clip in {', '.join(empty)} (fold = subject number mod {NUM_FOLDS}); "
            "download the emotion sessions of more subjects. "
            f"Skipped: {report.to_dict()['skipped_by_reason']}"
        )
