"""FER2013 builder: the csv parser keeps good rows and names bad ones, both CLIs build the dummy
csv (fer-jax exiting 3 with the bad rows in build_report.json), records open with tfds.data_source
and feed the trainer, and the aligned config re-detects faces and skips images without one."""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from data_builders import common
from data_builders.fer2013 import fer2013_dataset_builder, make_dummy_data, parse
from fer_jax import cli
from fer_jax.errors import InputError
from helpers.builds import build_in_process, tfds_builder_test_case

DUMMY = pathlib.Path(fer2013_dataset_builder.__file__).parent / "dummy_data"
CSV = DUMMY / "fer2013.csv"
PIXELS = " ".join(["7"] * 2304)
# The dummy csv's malformed rows (make_dummy_data appends one per reason after 41 good rows).
BAD_LINES = {
    43: "wrong_pixel_count", 44: "bad_label", 45: "bad_label", 46: "unknown_usage",
    47: "bad_pixels", 48: "bad_pixels", 49: "wrong_column_count",
}
KEPT = {"train": 25, "validation": 8, "test": 8}


def _parse(*rows, header="emotion,pixels,Usage"):
    return list(parse.parse_rows([header, *rows], "x.csv"))


def test_parser_reads_good_rows_into_images_and_splits():
    values = np.arange(2304) % 256
    rows = _parse(f"3,{' '.join(map(str, values))},PublicTest", f"6,{PIXELS},Training", "", f"0,{PIXELS},PrivateTest")
    assert [(r.line, r.label, r.split) for r in rows] == [(2, 3, "validation"), (3, 6, "train"), (5, 0, "test")]
    np.testing.assert_array_equal(rows[0].image, values.reshape(48, 48).astype(np.uint8))  # row-major 48x48
    assert rows[0].image.dtype == np.uint8
    # Columns are found by name, whatever their order.
    (row,) = _parse(f"Training,{PIXELS},5", header="Usage,pixels,emotion")
    assert (row.label, row.split) == (5, "train")


@pytest.mark.parametrize(
    "row, reason, detail",
    [
        (f"3,{' '.join(['7'] * 2303)},Training", "wrong_pixel_count", "2303"),
        (f"7,{PIXELS},Training", "bad_label", "'7'"),
        (f"-1,{PIXELS},Training", "bad_label", "'-1'"),
        (f",{PIXELS},Training", "bad_label", "''"),
        (f"2,{PIXELS},Validation", "unknown_usage", "'Validation'"),
        (f"2,{PIXELS.replace('7', '300', 1)},Training", "bad_pixels", "300"),
        (f"2,{PIXELS.replace('7', '-4', 1)},Training", "bad_pixels", "-4"),
        (f"2,{PIXELS.replace('7', '7.5', 1)},Training", "bad_pixels", "'7.5'"),
        (f"2,{PIXELS}", "wrong_column_count", "2 fields"),
        (f"2,{PIXELS},Training,extra", "wrong_column_count", "4 fields"),
    ],
)
def test_parser_names_each_malformed_row(row, reason, detail):
    (bad,) = _parse(f"0,{PIXELS},Training", row)[1:]
    assert isinstance(bad, parse.BadRow) and bad.reason == reason and bad.line == 3
    assert detail in bad.message


def test_parser_rejects_a_file_that_is_not_fer2013(tmp_path):
    with pytest.raises(InputError, match="lacks column") as info:
        _parse(f"0,{PIXELS}", header="label,pixels")
    assert info.value.reason == "bad_header"
    with pytest.raises(InputError, match="fer2013.tar.gz"):
        parse.find_csv(str(tmp_path))
    (tmp_path / "fer2013").mkdir()
    (tmp_path / "fer2013" / "fer2013.csv").write_text("emotion,pixels,Usage\n")  # as the archive unpacks
    assert parse.find_csv(str(tmp_path)) == str(tmp_path / "fer2013" / "fer2013.csv")


def test_icml_face_data_csv_is_read_when_there_is_no_fer2013_csv(tmp_path):
    """The competition's later download: icml_face_data.csv, header "emotion, Usage, pixels" (another
    order, a space after each comma, as Kaggle ships it), the same rows."""
    values = np.arange(2304) % 256
    (tmp_path / "icml_face_data.csv").write_text(
        f"emotion, Usage, pixels\n3,PublicTest,{' '.join(map(str, values))}\n6,Training,{PIXELS}\n0,PrivateTest,{PIXELS}\n")
    path = parse.find_csv(str(tmp_path))
    assert path == str(tmp_path / "icml_face_data.csv")
    rows, bad = parse.read_fer2013(path)
    assert bad == [] and {split: [r.label for r in found] for split, found in rows.items()} == {
        "train": [6], "validation": [3], "test": [0]}
    np.testing.assert_array_equal(rows["validation"][0].image, values.reshape(48, 48).astype(np.uint8))
    (tmp_path / "fer2013.csv").write_text("emotion,pixels,Usage\n")  # fer2013.csv, when there, comes first
    assert parse.find_csv(str(tmp_path)) == str(tmp_path / "fer2013.csv")


def test_build_without_the_csv_says_where_to_get_it(tmp_path, capsys):
    assert cli.main(["build", "fer2013/raw48", "--data-dir", str(tmp_path / "a")]) == 2  # no --manual-dir
    assert "kaggle.com" in capsys.readouterr().err
    (tmp_path / "empty" / "x").mkdir(parents=True)
    assert cli.main(["build", "fer2013/raw48", "--manual-dir", str(tmp_path / "empty"), "--data-dir", str(tmp_path / "b")]) == 2
    assert "no fer2013.csv" in capsys.readouterr().err


def test_dummy_csv_is_what_its_generator_writes(tmp_path):
    make_dummy_data.main(str(tmp_path / "fer2013.csv"))
    assert (tmp_path / "fer2013.csv").read_bytes() == CSV.read_bytes()
    assert CSV.stat().st_size < 1_500_000


# TFDS's own builder checks on the cheap config.
Fer2013Raw48Test = tfds_builder_test_case(fer2013_dataset_builder.Builder, DUMMY, "raw48", KEPT)


@pytest.fixture(scope="module")
def raw48(tmp_path_factory):
    """(data_dir, fer-jax build exit status) of raw48 built from the dummy csv with the fer-jax CLI."""
    return build_in_process(tmp_path_factory, "fer2013/raw48", DUMMY)


def test_fer_jax_build_exits_3_and_reports_each_bad_row(raw48):
    data_dir, status = raw48
    assert status == 3  # built, with skips
    report = json.loads((data_dir / "fer2013" / "raw48" / "1.1.0" / "build_report.json").read_text())
    assert report["kept"] == KEPT
    lines = {int(s["path"].rsplit(":line ", 1)[1]): s["reason"] for s in report["skipped_files"]}
    assert lines == BAD_LINES
    assert all(s["path"].startswith(str(CSV)) for s in report["skipped_files"])


def test_records_open_with_data_source_and_hold_the_csv_pixels(raw48):
    data_dir, _ = raw48
    source = tfds.data_source("fer2013/raw48", split="validation", data_dir=str(data_dir), download=False)
    rows, _ = parse.read_fer2013(CSV)
    expected = {f"line{r.line}": r for r in rows["validation"]}
    assert len(source) == len(expected) == KEPT["validation"]
    for record in source:
        row = expected[record["clip_id"].decode()]
        assert record["image"].shape == (48, 48, 1) and record["frames"].shape == (1, 48, 48, 1)
        np.testing.assert_array_equal(record["image"][..., 0], row.image)
        np.testing.assert_array_equal(record["frames"][0], record["image"])
        assert record["label"] == row.label


def test_records_feed_training(raw48, tmp_path):
    """Two training steps and an evaluation on the raw48 records through the trainer, with a tiny
    cnn3d_convlstm reading "frames" (B, 1, 48, 48, 1): its pooling windows keep the one frame."""
    import jax

    from fer_jax.config import AugmentConfig, DataConfig, ExperimentConfig, ModelConfig, TrainConfig
    from fer_jax.train.loop import train

    data_dir, _ = raw48
    tiny = {"frames": 1, "size": 48, "conv_features": [4, 8, 8], "pool_windows": [[1, 2, 2]] * 3,
            "convlstm_filters": 4, "dropout": 0.2}
    config = ExperimentConfig(
        name="fer2013_tiny",
        workdir=str(tmp_path),
        data=DataConfig(dataset="fer2013/raw48", data_dir=str(data_dir), num_classes=7, frames=1, size=48,
                        channels=1, global_batch_size=8, eval_batch_size=8),
        model=ModelConfig(name="cnn3d_convlstm", kwargs=tiny),
        augment=AugmentConfig(enabled=False),
        train=TrainConfig(learning_rate=1e-3, max_steps=2, log_every_steps=1),  # the loop checks each loss is finite
    )
    with jax.default_prng_impl("rbg"):  # rbg keys compile to less code; the records are under test
        results, _ = train(config)
    assert results["steps"] == 2 and results["num_train_clips"] == KEPT["train"]
    assert results["num_val_clips"] == KEPT["validation"] and 0.0 <= results["val_accuracy"] <= 1.0
    assert len(results["val_per_class_recall"]) == 7  # scored over FER2013's 7 classes


def test_tfds_build_command_builds_the_folder(tmp_path):
    """`tfds build data_builders/fer2013 --config raw48 --manual_dir ... --data_dir ...`.

    Run through the CLI's `build` command: the `tfds` entry point itself also imports its
    convert_format command, which needs apache_beam (not installed here)."""
    runner = (
        "from absl import app; from tensorflow_datasets.scripts.cli import build, cli_utils; "
        "app.run(lambda args: args.execute(), flags_parser=cli_utils.make_flags_parser(build.Args, 'tfds build'))"
    )
    root = pathlib.Path(__file__).parents[1]
    command = [sys.executable, "-c", runner, "data_builders/fer2013", "--config", "raw48",
               "--manual_dir", str(DUMMY), "--data_dir", str(tmp_path)]
    done = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    built = tmp_path / "fer2013" / "raw48" / "1.1.0"
    assert sorted(p.name for p in built.glob("*.array_record-*")) == [
        f"fer2013-{split}.array_record-00000-of-00001" for split in ("test", "train", "validation")
    ]
    report = json.loads((built / "build_report.json").read_text())  # written by the builder itself
    assert report["kept"] == KEPT and report["skipped"] == len(BAD_LINES)


def test_aligned_config_realigns_faces_and_skips_faceless_images(tmp_path):
    """aligned64 runs process_frames (upsample=2) per row: a face comes out as a 64x64 aligned crop
    with landmarks; one of the LFW subset's non-face patches is skipped as "no_face"."""
    config = fer2013_dataset_builder.Builder.builder_configs["aligned64"].clip
    rows, _ = parse.read_fer2013(CSV)
    by_line = {r.line: r for split in rows.values() for r in split}
    face, not_face = by_line[2], by_line[2 + make_dummy_data.NUM_LFW_FACES + 1]  # an LFW face, a non-face patch
    items = [common.ClipItem(f"line{r.line}", f"fer2013.csv:line {r.line}", r.label, "unknown", frames=r.image[None])
             for r in (face, not_face)]
    _, example, error, _ = common.preprocess_item(items[0], config)
    assert error is None and example["frames"].shape == (1, 64, 64, 1)
    assert np.isfinite(example["landmarks"]).all() and example["landmarks"].shape == (1, 68, 2)
    # The eyes land near their canonical spots of a 64 px crop (the alignment did run).
    eyes = example["landmarks"][0, 36:48].reshape(2, 6, 2).mean(1)
    assert abs(eyes[0, 1] - eyes[1, 1]) < 3 and 15 < eyes[1, 0] - eyes[0, 0] < 40
    _, example, error, _ = common.preprocess_item(items[1], config)
    assert example is None and error["reason"] == "no_face" and error["path"].endswith(f":line {not_face.line}")
    # The aligned records' layout (what the builder declares) accepts the example plus its "image".
    _, example, _, _ = common.preprocess_item(items[0], config)
    builder = fer2013_dataset_builder.Builder(data_dir=str(tmp_path), config="aligned64")
    builder.info.features.encode_example({**example, "image": example["frames"][-1]})
