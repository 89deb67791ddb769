"""Property-based tests (hypothesis): the preprocessing functions over random shapes, dtypes and
values, and every builder's label / file-name parser over random names and file contents.

Preprocessing: right shape and dtype, finite values, and agreement with an independent float64 or
exact-arithmetic reference where there is a formula. Parsers: a label, or InputError with the
parser's reason; never another exception. Examples are few (hypothesis keeps the failing ones in
its database) and there is no deadline: the machine is shared.
"""

from __future__ import annotations

import math
import pathlib
import tempfile
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from data_builders.afew import afew_dataset_builder as afew
from data_builders.casme2 import casme2_dataset_builder as casme2
from data_builders.ck_plus import ck_plus_dataset_builder as ck_plus
from data_builders.crema_d import crema_d_dataset_builder as crema_d
from data_builders.fer2013 import parse as fer2013
from data_builders.mmi import mmi_dataset_builder as mmi
from data_builders.common import BuildReport as CorpusReport
from data_builders.ravdess import ravdess_dataset_builder as ravdess
from data_builders.savee import savee_dataset_builder as savee
from data_builders.send import layout as send
from fer_jax.errors import InputError
from fer_jax.preprocess import align, audio, mhi, photometric, temporal

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SCRATCH = pathlib.Path(tempfile.mkdtemp(prefix="fer_jax_fuzz_"))  # one folder for the file-reading parsers


def _file(name: str, content: bytes | str) -> pathlib.Path:
    path = SCRATCH / name
    path.write_bytes(content.encode("utf-8", "surrogatepass") if isinstance(content, str) else content)
    return path


# ------------------------------------------------------------------------------------ preprocessing


@FUZZ
@given(st.integers(1, 2000), st.integers(1, 64))
@example(16, 23)  # an exact half that floating-point linspace used to round down
def test_sample_indices_round_half_up_exactly(num_frames, length):
    indices = temporal.sample_indices(num_frames, length)
    # Exact rational reference of round-half-up(linspace(0, n - 1, length)).
    expected = [0] if length == 1 else [math.floor(Fraction(i * (num_frames - 1), length - 1) + Fraction(1, 2))
                                         for i in range(length)]
    assert indices.dtype == np.int64 and indices.tolist() == expected
    assert indices[0] == 0 and (length == 1 or indices[-1] == num_frames - 1)


@FUZZ
@given(st.integers(-5, 0), st.integers(-5, 5))
def test_sample_indices_rejects_empty_clips_and_lengths(num_frames, length):
    with pytest.raises(ValueError):
        temporal.sample_indices(num_frames, length)


def _landmarks(width, height):
    coordinate = st.floats(-2.0, 3.0, allow_nan=False)
    return hnp.arrays(np.float64, (68, 2), elements=coordinate).map(lambda a: a * [width, height])


@FUZZ
@given(st.data(), st.integers(1, 48), st.integers(1, 48), st.sampled_from([None, 1, 3]), st.integers(4, 40),
       st.booleans(), st.floats(0.5, 2.0))
def test_align_face_any_frame_any_landmarks(data, height, width, channels, size, grayscale, box_scale):
    shape = (height, width) if channels is None else (height, width, channels)
    frame = data.draw(hnp.arrays(np.uint8, shape))
    landmarks = data.draw(_landmarks(width, height))
    left, right = align.eye_centers(landmarks)
    assume(np.linalg.norm(right - left) > 1e-3 * max(width, height))  # dlib never puts both eyes on one point
    crop, points = align.align_face(frame, landmarks, size, grayscale, box_scale)
    assert crop.shape == (size, size, 1 if grayscale else 3) and crop.dtype == np.uint8
    assert points.shape == (68, 2) and points.dtype == np.float32 and np.isfinite(points).all()
    # The eyes land on their canonical spots (float64 reference of the similarity transform).
    want_left, want_right = align.canonical_eye_positions(size, box_scale)
    got_left, got_right = align.eye_centers(points)
    np.testing.assert_allclose(np.stack([got_left, got_right]), np.stack([want_left, want_right]), atol=1e-2 * size)
    if frame.min() == frame.max():  # a flat frame stays flat, whatever the warp (border replicated)
        assert (crop == crop.flat[0]).all()


@settings(FUZZ, max_examples=25)  # librosa is the slow part
@given(hnp.arrays(np.float32, st.integers(0, 2000), elements=st.floats(-1e3, 1e3, width=32)),
       st.sampled_from([8000, 16000, 22050]), st.integers(4, 64))
def test_log_mel_any_wave(wave, sample_rate, n_mels):
    hop = audio.frame_params(sample_rate, 25, 10)[2]
    mel = audio.log_mel(wave, sample_rate, n_mels)
    assert mel.shape == (1 + wave.size // hop, n_mels) and mel.dtype == np.float32 and np.isfinite(mel).all()
    fitted, real = audio.fit_length(mel, 50)
    assert fitted.shape == (50, n_mels) and real == min(50, mel.shape[0])
    np.testing.assert_array_equal(fitted[:real], mel[:real])
    for order in (1, 2):
        d = audio.deltas(mel, order)
        assert d.shape == mel.shape and np.isfinite(d).all()


@FUZZ
@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 3), st.integers(1, 40)), elements=st.floats(-1e6, 1e6)))
def test_log_mel_rejects_anything_but_mono(wave):
    if wave.shape[0] == 1:
        wave = wave.reshape(1, 1, -1)
    with pytest.raises(ValueError, match="mono"):
        audio.log_mel(wave)


@FUZZ
@given(st.data(), st.integers(1, 6), st.integers(4, 32), st.booleans(), st.floats(0, 60), st.floats(0, 3),
       st.floats(0.5, 5))
def test_lemhi_any_clip(data, count, size, channel_axis, threshold, alpha, sigma):
    frames = data.draw(hnp.arrays(np.uint8, (count, size, size, 1) if channel_axis else (count, size, size)))
    landmarks = data.draw(hnp.arrays(np.float32, (count, 68, 2), elements=st.floats(-size, 2 * size, width=32)))
    image = mhi.lemhi(frames, landmarks, threshold=threshold, alpha=alpha, sigma=sigma)
    assert image.shape == (size, size, 1) and image.dtype == np.uint8
    if count == 1:  # one frame has no motion
        assert not image.any()


@FUZZ
@given(hnp.arrays(np.uint8, hnp.array_shapes(min_dims=0, max_dims=4, max_side=6)), st.floats(0.05, 20))
def test_gamma_equals_float64_formula(image, gamma):
    reference = np.clip(np.rint(255.0 * (image.astype(np.float64) / 255.0) ** (1.0 / gamma)), 0, 255)
    out = photometric.apply_gamma(image, gamma)
    assert out.dtype == np.uint8 and out.shape == image.shape
    np.testing.assert_array_equal(out, reference.astype(np.uint8))


@FUZZ
@given(hnp.arrays(hnp.scalar_dtypes().filter(lambda d: d != np.uint8), hnp.array_shapes(max_dims=3, max_side=4)))
def test_gamma_rejects_other_dtypes(image):
    with pytest.raises(ValueError, match="uint8"):
        photometric.apply_gamma(image, 1.5)


@FUZZ
@given(st.lists(hnp.arrays(np.uint8, st.tuples(st.integers(1, 12), st.integers(1, 12), st.just(3))),
                min_size=1, max_size=4))
def test_mean_luma_is_bt601(frames):
    weights = np.array([0.299, 0.587, 0.114])
    pixels = sum(f.shape[0] * f.shape[1] for f in frames)
    reference = sum((f.astype(np.float64) @ weights).sum() for f in frames) / pixels
    assert photometric.mean_luma(frames) == pytest.approx(reference, abs=0.5)  # OpenCV rounds each pixel


# ----------------------------------------------------------------------------------------- parsers


def label_or_input_error(parse, *args, reasons):
    """parse(*args), or None if it raised an InputError with one of `reasons` (anything else fails)."""
    try:
        return parse(*args)
    except InputError as e:
        assert e.reason in reasons, e
        assert str(e.path) in str(e) and e.message
        return None


NAME_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00")
names = st.text(NAME_CHARS, min_size=1, max_size=30)


@FUZZ
@given(st.one_of(names, st.sampled_from(afew.EMOTION_FOLDERS + ("Contempt", "happy", ""))), names)
@example("Happy", "clip 01.avi")
def test_afew_label(folder, name):
    label = label_or_input_error(afew.label_of, pathlib.PurePath("Train", folder or "x", name), reasons={"bad_label"})
    assert label is None or afew.EMOTION_FOLDERS[label] == folder


two_digits = st.integers(0, 99).map(lambda n: f"{n:02d}")


@FUZZ
@given(st.one_of(names, st.lists(two_digits, min_size=7, max_size=7).map("-".join)),
       st.sampled_from([".mp4", ".wav", ".MP4", ".avi", ""]))
@example("01-01-06-01-02-01-12", ".mp4")  # valid names, so the label path is always exercised
@example("03-02-03-02-01-02-07", ".wav")
def test_ravdess_name(stem, suffix):
    parsed = label_or_input_error(ravdess.parse_name, stem + suffix, reasons={"bad_name"})
    if parsed is not None:
        codes = [int(c) for c in stem.split("-")]
        assert parsed.label == codes[2] - 1 and parsed.actor == codes[6] and 0 <= parsed.label < len(ravdess.CLASSES)


crema_stems = st.tuples(st.integers(990, 1100), st.sampled_from(crema_d.SENTENCES + ("XYZ",)),
                        st.sampled_from(crema_d.EMOTIONS + ("CAL",)), st.sampled_from(tuple(crema_d.LEVELS) + ("ZZ",)))


@FUZZ
@given(st.one_of(names, crema_stems.map(lambda t: "_".join(map(str, t)))), st.sampled_from([".flv", ".mp4", ""]))
@example("1001_IEO_ANG_HI", ".flv")
@example("1091_DFA_NEU_XX", ".flv")
def test_crema_d_name(stem, suffix):
    parsed = label_or_input_error(crema_d.parse_name, stem + suffix, reasons={"bad_name"})
    if parsed is not None:
        assert crema_d.EMOTIONS[parsed.label] == stem.split("_")[2]


@FUZZ
@given(st.one_of(names, st.sampled_from(savee.SPEAKERS)),
       st.one_of(names, st.tuples(st.sampled_from(savee.CODES + ("x",)), st.one_of(two_digits, st.integers(0, 9).map(str)))
                 .map("".join).map("{}.avi".format)))
@example("DC", "sa03.avi")
@example("DC", "sa3.avi")
@example("KL", "n30.avi")
def test_savee_name(speaker, name):
    parsed = label_or_input_error(savee.parse_name, pathlib.PurePath(speaker, name), reasons={"bad_name"})
    if parsed is not None:
        code, digits = name[:-4].rstrip("0123456789"), name[:-4].lstrip("adfhnsu")
        assert parsed[0] == speaker and savee.CODES[parsed[1]] == code and int(digits) == parsed[2] <= 30


@FUZZ
@given(st.one_of(st.text(max_size=40), st.floats(allow_nan=True).map(lambda v: f"   {v:.7e}"),
                 st.binary(max_size=40)))
@example("   3.0000000e+00\n")
def test_ck_plus_emotion_file(content):
    path = _file("S005_001_emotion.txt", content)
    code = label_or_input_error(ck_plus.parse_emotion_file, path, reasons={"bad_label"})
    assert code is None or 0 <= code <= 7


def _session(name_value) -> str:
    name, value = name_value
    value = value.replace("&", "").replace("<", "").replace('"', "")
    return f'<session><metatag Name="{name}" Value="{value}"/></session>'


@FUZZ
@given(st.one_of(st.text(max_size=60), st.sampled_from(["", "<a/>", "<metatag Name='Emotion' Value='3'/>"]),
                 st.tuples(st.sampled_from(["Emotion", "emotion", "Other"]),
                           st.text(NAME_CHARS, max_size=5)).map(_session)))
def test_mmi_emotion_metadata(content):
    value = label_or_input_error(mmi.parse_emotion, _file("S001-001.xml", content), reasons={"bad_label"})
    assert value is None or isinstance(value, int)


cells = st.one_of(st.text(max_size=8), st.integers(-5, 200).map(str),
                  st.sampled_from(["/", "4b6", "1e400", "nan", "12.0"]))
emotions = st.one_of(st.sampled_from(casme2.CLASSES + ("fear",)), names)


@FUZZ
@given(st.fixed_dictionaries({"subject": cells, "filename": st.one_of(names, st.just("EP02_01f")), "onset": cells,
                              "apex": cells, "offset": cells, "emotion": emotions}))
def test_casme2_sheet_row(row):
    report = CorpusReport()
    item = label_or_input_error(casme2.clip_item, SCRATCH / "frames", "sheet.xlsx:row 2", row, report,
                                reasons={"bad_label", "missing"})
    assert item is None  # no clip folder exists, so no row can give a clip


def _fer_row(fields) -> str:
    emotion, usage, quarters = fields
    return f"{emotion},{' '.join(['7'] * (quarters * 768))},{usage}"  # 4 quarters: the 2304 pixels of 48x48


fer_rows = st.tuples(st.integers(-2, 9), st.sampled_from(list(fer2013.SPLIT_OF_USAGE) + ["Foo"]), st.integers(0, 3))
fer_lines = st.one_of(st.text(max_size=30), fer_rows.map(_fer_row),
                      st.sampled_from(['0,"7 7\x00', "\x00", '"', "9" * 140_000]))  # the last: over csv's field limit


@FUZZ
@given(st.lists(fer_lines, max_size=5), st.sampled_from(["emotion,pixels,Usage", "pixels,emotion", ""]),
       st.sampled_from(["\n", "\r\n", "\r"]), st.binary(max_size=3))
@example(["0," + " ".join(["7"] * 2304) + ",Training"], "emotion,pixels,Usage", "\n", b"")  # one good row
def test_fer2013_file(lines, header, newline, junk):
    """The whole file as read_fer2013 reads it, with any text, line ending, NUL bytes or non-UTF-8 junk."""
    path = SCRATCH / "fer2013.csv"
    path.write_bytes((newline.join([header, *lines]) + newline).encode("utf-8", "surrogatepass") + junk)
    try:
        rows, bad = fer2013.read_fer2013(path)
    except InputError as e:
        assert e.reason == "bad_header" and header != "emotion,pixels,Usage"
        return
    for row in (r for split_rows in rows.values() for r in split_rows):
        assert row.image.shape == (48, 48) and 0 <= row.label < len(fer2013.CLASSES)
    assert all(row.reason in fer2013.REASONS for row in bad)
    good = sum(len(v) for v in rows.values())
    if lines == ["0," + " ".join(["7"] * 2304) + ",Training"] and not junk:
        assert good == 1 and not bad


@FUZZ
@given(st.one_of(st.text(max_size=80),
                 st.lists(st.tuples(st.one_of(st.floats(-1, 10), st.just(math.nan)),
                                    st.one_of(st.floats(-10, 110), st.just(math.inf))), max_size=6).map(
                     lambda rows: "time,evaluatorWeightedEstimate\n" + "\n".join(f"{t},{v}" for t, v in rows))))
def test_send_ratings(content):
    path = _file("results_ID1_vid_1.csv", content)
    ratings = label_or_input_error(send.read_ratings, path, reasons={"malformed_ratings"})
    if ratings is not None:
        assert np.isfinite(ratings.valence).all() and (np.abs(ratings.valence) <= 1).all()


def test_fer2013_unreadable_line_is_one_bad_row_and_the_rows_after_it_are_kept():
    good = "0," + " ".join(["7"] * 2304) + ",Training"
    path = SCRATCH / "fer2013.csv"
    path.write_text("\n".join(["emotion,pixels,Usage", good, "9" * 140_000, good]) + "\n")
    rows, bad = fer2013.read_fer2013(path)
    assert len(rows["train"]) == 2 and [(b.line, b.reason) for b in bad] == [(3, "unreadable_line")]
    assert "field larger than field limit" in bad[0].message
