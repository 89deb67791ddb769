"""ck_plus: the Extended Cohn-Kanade dataset (CK+), its emotion-labelled sequences.

CK+ (Lucey et al., CVPR Workshops 2010) has 593 posed sequences of 123 subjects, each running from
a neutral face (onset) to the expression's peak (apex); 327 of them, from 118 subjects, carry an
emotion label in `Emotion/<subject>/<sequence>/<last frame>_emotion.txt`. A sequence is read as
an image sequence (its PNG frames in order) and preprocessed by `fer_jax.preprocess.clip`.

Splits are 10 subject-independent folds, `fold0` .. `fold9`, those of Emotion-FAN's published
list (`FOLDS`): every subject with a labelled sequence is in exactly one fold. (Other papers use
random sequence-level folds, which put one subject's sequences in several folds.) Cross-validation trains on nine folds
and validates on the tenth, e.g. `cross_validation_splits(0)` ->
("fold1+fold2+...+fold9", "fold0"), which `tfds.data_source` reads as one split.
"""

from __future__ import annotations

import pathlib


from data_builders import base, common
from fer_jax.errors import ConfigError, InputError

# The codes of CK+'s emotion files (its README): 0 neutral ... 7 surprise.
CODES = ("neutral", "anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")
CLASSES_7 = ("anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")
CLASSES_6 = ("anger", "disgust", "fear", "happy", "sadness", "surprise")  # the basic emotions

# The 118 subjects that have emotion-labelled sequences (5 of CK+'s 123 have none). The folds are
# subject-level, by the rule of Emotion-FAN's published list (CK+_10-fold_sample_IDascendorder_step10.txt,
# which emotion_fan_folds.json holds): the i-th of these ids, sorted, is in fold i % 10. Folds hold
# 11 or 12 subjects, 22 to 40 sequences; no subject is in two folds. A subject with a labelled
# sequence that is not listed here is not CK+'s: it is skipped (reason "unknown_subject"), never
# placed in a fold by guess.
LABELLED_SUBJECTS: tuple[str, ...] = tuple("""
    S005 S010 S011 S014 S022 S026 S028 S029 S032 S034 S035 S037
    S042 S044 S045 S046 S050 S051 S052 S053 S054 S055 S056 S057
    S058 S059 S060 S061 S062 S063 S064 S065 S066 S067 S068 S069
    S070 S071 S072 S073 S074 S075 S076 S077 S078 S079 S080 S081
    S082 S083 S084 S085 S086 S087 S088 S089 S090 S091 S092 S093
    S094 S095 S096 S097 S098 S099 S100 S101 S102 S105 S106 S107
    S108 S109 S110 S111 S112 S113 S114 S115 S116 S117 S119 S122
    S124 S125 S126 S127 S128 S129 S130 S131 S132 S133 S134 S135
    S136 S137 S138 S139 S147 S148 S149 S151 S154 S155 S156 S157
    S158 S160 S501 S502 S503 S504 S505 S506 S895 S999
""".split())
NUM_FOLDS = 10
FOLDS: tuple[tuple[str, ...], ...] = tuple(LABELLED_SUBJECTS[f::NUM_FOLDS] for f in range(NUM_FOLDS))
FOLD_OF_SUBJECT = {subject: fold for fold, subjects in enumerate(FOLDS) for subject in subjects}

IMAGES_DIR, EMOTION_DIR = "cohn-kanade-images", "Emotion"
HOMEPAGE = "https://www.jeffcohn.net/Resources/"


def fold_name(fold: int) -> str:
    return f"fold{fold}"


def cross_validation_splits(val_fold: int) -> tuple[str, str]:
    """(train split, validation split) of one cross-validation round: nine folds against one."""
    if not 0 <= val_fold < NUM_FOLDS:
        raise ConfigError(f"CK+ has folds 0..{NUM_FOLDS - 1}, not {val_fold}")
    train = "+".join(fold_name(f) for f in range(NUM_FOLDS) if f != val_fold)
    return train, fold_name(val_fold)


def parse_emotion_file(path: str | pathlib.Path) -> int:
    """The CK+ code (0..7) in an emotion file, e.g. "   3.0000000e+00"; InputError "bad_label"
    when the file holds anything else (empty, text, several numbers, a fraction, out of range)."""
    try:
        text = pathlib.Path(path).read_text(errors="replace")
    except OSError as e:
        raise InputError(path, "bad_label", f"emotion file cannot be read ({e.strerror})") from None
    fields = text.split()
    if len(fields) != 1:
        raise InputError(path, "bad_label", f"expected one number (e.g. 3.0000000e+00), found {len(fields)} fields")
    try:
        value = float(fields[0])
    except ValueError:
        raise InputError(path, "bad_label", f"{fields[0][:40]!r} is not a number (e.g. 3.0000000e+00)") from None
    if not (value.is_integer() and 0 <= value < len(CODES)):
        raise InputError(path, "bad_label", f"{fields[0]} is not a CK+ emotion code 0..{len(CODES) - 1}")
    return int(value)


def find_sequences(root: pathlib.Path, class_names, report: common.BuildReport) -> dict[str, list[common.ClipItem]]:
    """{fold name: ClipItems} of the labelled sequences under `root` whose class is in
    `class_names`. Sequences without an emotion file, or with a code outside the classes
    (neutral, contempt in the 6-class config), are counted in report.excluded; label problems,
    unknown subjects and labels without images are skipped (report.skipped)."""
    images, emotions = root / IMAGES_DIR, root / EMOTION_DIR
    if not images.is_dir() or not emotions.is_dir():
        raise ConfigError(
            f"{root}: expected the folders {IMAGES_DIR}/ and {EMOTION_DIR}/ in --manual-dir. "
            + Builder.MANUAL_DOWNLOAD_INSTRUCTIONS
        )
    items: dict[str, list[common.ClipItem]] = {fold_name(f): [] for f in range(NUM_FOLDS)}
    labels = {p.parent.relative_to(emotions).as_posix(): p for p in sorted(emotions.glob("*/*/*_emotion.txt"))}
    sequences = sorted(p for p in images.glob("*/*") if p.is_dir())
    for key in sorted(set(labels) - {s.relative_to(images).as_posix() for s in sequences}):
        fold = FOLD_OF_SUBJECT.get(key.split("/")[0])
        message = f"{labels[key].name} labels a sequence whose frames are missing"
        report.add_skip("none" if fold is None else fold_name(fold), InputError(images / key, "missing", message))
    for folder in sequences:
        key = folder.relative_to(images).as_posix()  # "S005/001": no user path in the key
        subject = folder.parent.name
        label_files = sorted((emotions / key).glob("*_emotion.txt"))
        if not label_files:
            report.excluded["unlabelled"] += 1  # 266 of the 593 sequences: CK+ labels only prototypic ones
            continue
        fold = FOLD_OF_SUBJECT.get(subject)
        if fold is None:
            message = f"{subject} is not one of the 118 CK+ subjects with labelled sequences, so it has no fold; is this CK+?"
            report.add_skip("none", InputError(folder, "unknown_subject", message))
            continue
        try:
            if len(label_files) > 1:
                raise InputError(emotions / key, "bad_label", f"{len(label_files)} emotion files for one sequence")
            code = parse_emotion_file(label_files[0])
        except InputError as e:
            report.add_skip(fold_name(fold), e)
            continue
        if CODES[code] not in class_names:
            report.excluded[f"label_{CODES[code]}"] += 1
            continue
        items[fold_name(fold)].append(common.ClipItem(key, str(folder), class_names.index(CODES[code]), subject))
    return items


class Builder(base.ClipCorpusBuilder):
    """CK+ sequences (onset -> apex) as aligned-face clips, in 10 subject-independent folds."""

    HOMEPAGE = HOMEPAGE
    BUILDER_CONFIGS = [
        base.ClipCorpusConfig(
            name="gray64_t8",
            description="7 classes (with contempt); 8 frames of 64x64 grey aligned faces (3D-CNN + ConvLSTM input).",
            clip=base.GRAY64_T8,
            class_names=CLASSES_7,
        ),
        base.ClipCorpusConfig(
            name="gray64_t8_6class",
            description="6 basic emotions (contempt left out); 8 frames of 64x64 grey aligned faces.",
            clip=base.GRAY64_T8,
            class_names=CLASSES_6,
        ),
        base.ClipCorpusConfig(
            name="lemhi",
            description="7 classes; up to 32 frames of 112x112 grey faces with a frame mask, and their LEMHI.",
            clip=base.LEMHI,
            class_names=CLASSES_7,
        ),
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        f"CK+ is distributed by its owners after signing their agreement ({HOMEPAGE}). Unzip "
        "extended-cohn-kanade-images.zip and Emotion_labels.zip into one folder and pass it as "
        "--manual-dir; it must hold cohn-kanade-images/S005/001/S005_001_00000001.png ... and "
        "Emotion/S005/001/S005_001_00000011_emotion.txt ... (FACS/ and Landmarks/ may sit beside them, unused)."
    )

    def find_clips(self, manual_dir, report):
        return find_sequences(manual_dir, self.class_names, report)

    def empty_split_error(self, empty, report):
        return ConfigError(
            f"no usable sequence in {', '.join(empty)}; every fold needs some of its subjects "
            f"(see FOLDS in {__name__}). Is the corpus complete? Skipped: {report.to_dict()['skipped_by_reason']}"
        )
