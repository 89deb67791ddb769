"""experiments/*.py, the paper protocols: each config loads and agrees with its builder's records;
each trains on its builder's dummy corpus, shrunk only by `--set` overrides a user could type, and
(for one config per method) its loss falls on that small set; `fer-jax cv` repeats runs with new seeds and reports the best
epoch; `fer-jax fuse` fuses the two Hu et al. models fold by fold; the x14 augmentation draws its
14 copies alike; the README's parameter counts are the models' own."""

from __future__ import annotations

import json
import pathlib
import re

import jax
import numpy as np
import pytest

import data_builders
from fer_jax.config import load_config
from fer_jax.train.loop import train

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"
CONFIGS = sorted(p.stem for p in EXPERIMENTS.glob("[!_]*.py") if p.stem != "demo_av")  # demo: tests/test_demo*


def config_path(name: str) -> pathlib.Path:
    return EXPERIMENTS / f"{name}.py"


@pytest.fixture(autouse=True)
def _rbg_keys():
    """rbg keys compile to far less code than threefry's (two heavy smoke tests: 116 -> 84 CPU
    seconds); what is under test here is the configs, not the random streams."""
    with jax.default_prng_impl("rbg"):
        yield


# --------------------------------------------------------------------------------------------------
# Dummy corpora, each builder config built once for the module.


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    """build(dataset) -> data dir holding `dataset` built from its builder's dummy_data."""
    data_dir = tmp_path_factory.mktemp("experiments_tfds")
    built = set()

    def build(dataset: str) -> str:
        if dataset not in built:
            corpus = dataset.split("/")[0]
            # A dummy corpus (fewer than 32 clips) builds in this process, not in Beam worker processes.
            data_builders.build(dataset, str(data_dir), str(ROOT / "data_builders" / corpus / "dummy_data"))
            built.add(dataset)
        return str(data_dir)

    return build


# --------------------------------------------------------------------------------------------------
# Every config, without data.


class _Source:
    def __init__(self, features):
        self.dataset_info = type("Info", (), {"features": features})


@pytest.mark.parametrize("name", CONFIGS)
def test_config_reads_what_its_builder_writes(name):
    from fer_jax.data.sources import check_source_matches
    from fer_jax.models import build_model
    from fer_jax.train.tasks import input_keys_of, task_of
    from flax import nnx

    config = load_config(config_path(name))
    assert config.name == name and config.workdir == f"workdir/{name}"
    features = data_builders.builder(config.data.dataset, "/nonexistent").info.features
    kwargs = {k: v for k, v in config.model.kwargs.items() if k != "pretrained"}  # the same parameters, no file read
    model = nnx.eval_shape(lambda: build_model(config.model.name, num_classes=config.data.num_classes,
                                               rngs=nnx.Rngs(0), **kwargs))
    keys = input_keys_of(model) + task_of(model).target_keys
    check_source_matches(config.data, _Source(features), config.data.train_split, keys)  # raises if not
    params = sum(int(np.prod(v.shape)) for _, v in nnx.to_flat_state(nnx.state(model, nnx.Param)))
    assert readme_parameter_counts()[name] == params, f"README's experiments table: {name} has {params:,} parameters"
    assert config.train.learning_rate == 1e-4
    if config.data.cv_runs:
        assert (config.data.train_split, config.data.val_split) == config.data.cv_runs[0][1:]
    docstring = config_path(name).read_text().split('"""')[1]
    assert "Published:" in docstring, f"{name}: name the published figure to compare with"


def test_the_protocols_of_the_papers():
    ck = load_config(config_path("cnn3d_convlstm_ck_plus"))
    assert [run[2] for run in ck.data.cv_runs] == [f"fold{k}" for k in range(10)]
    assert all(f"fold{k}" not in run[1].split("+") for k, run in enumerate(ck.data.cv_runs))
    # 80 paper epochs over 14 augmented copies = 80 x 14 passes, evaluated once per paper epoch.
    assert (ck.train.num_epochs, ck.train.eval_every_epochs, ck.model.name) == (1120, 14, "cnn3d_convlstm")
    savee = load_config(config_path("cnn3d_convlstm_savee"))
    assert savee.data.cv_runs == tuple((f"run{k}", "train", "test") for k in range(5))
    afew = load_config(config_path("cnn3d_convlstm_afew"))
    assert afew.model.kwargs["pretrained"] is True
    assert len(load_config(config_path("av_attention_fbp_ravdess")).data.cv_runs) == 6
    assert len(load_config(config_path("av_attention_fbp_crema_d")).data.cv_runs) == 5
    # --set edits a nested option of one config without leaking into another that shares it.
    load_config(config_path("av_attention_fbp_ravdess"), ["model.kwargs.frame_backbone_kwargs.width=0.5"])
    assert load_config(config_path("av_attention_fbp_afew")).model.kwargs["frame_backbone_kwargs"]["width"] == 1.0


def test_x14_augmentation_draws_each_of_the_14_copies_alike():
    """Identify which of the 14 copies (7 orientations x flip) each augmented clip is, by matching
    it against rotate_clip's and a flip's outputs, over many draws."""
    from fer_jax.train.augment import augment_batch, rotate_clip

    augment = load_config(config_path("cnn3d_convlstm_ck_plus")).augment
    clip = np.random.default_rng(0).random((1, 9, 9, 1)).astype(np.float32)
    angles = (0.0, 5.0, -5.0, 10.0, -10.0, 15.0, -15.0)
    copies = []
    for angle in angles:
        rotated = np.asarray(rotate_clip(clip, angle)) if angle else clip
        copies += [rotated, rotated[:, :, ::-1]]
    n = 1400
    out = np.asarray(augment_batch(np.broadcast_to(clip, (n, *clip.shape)), jax.random.key(1), augment))
    distance = np.stack([np.abs(out - c).reshape(n, -1).max(-1) for c in copies], axis=1)  # (n, 14)
    assert np.all(distance.min(axis=1) < 1e-5)  # every output is one of the 14 copies
    counts = np.bincount(distance.argmin(axis=1), minlength=14)
    # Binomial(1400, 1/14): mean 100, sd 9.6; 4.5 sd either way.
    assert np.all(np.abs(counts - n / 14) < 44), counts


# --------------------------------------------------------------------------------------------------
# Every config trains on its builder's dummy corpus.

# What a user would --set to run a config on a dozen clips on a CPU: a batch of all the training
# clips (2 for the 16 x 224 x 224 RGB configs, slow on a CPU: an epoch is then two steps), a higher
# learning rate, few steps, no augmentation or dropout, and the configs' width knobs turned down
# where a full-size model is slow on a CPU.
SHRINK = {
    "cnn3d_convlstm_ck_plus": (9, 3e-3, ["model.kwargs.dropout=0"]),
    "cnn3d_convlstm_savee": (4, 3e-3, ["model.kwargs.dropout=0"]),
    "cnn3d_convlstm_afew": (4, 3e-3, ["model.kwargs.dropout=0"]),
    "cnn3d_convlstm_avec2013": (4, 3e-3, ["model.kwargs.dropout=0"]),
    "msff_afew": (2, 1e-2, [
        "model.kwargs.cnn_blstm.backbone_options.width=0.0625", "model.kwargs.cnn_blstm.lstm_hidden=8",
        "model.kwargs.cnn_blstm.dropout=0", "model.kwargs.c3d.conv_blocks=[[4],[8],[8,8],[8,8],[8,8]]",
        "model.kwargs.c3d.fc_features=[16,16]", "model.kwargs.c3d.dropout=0",
        "model.kwargs.audio.conv_blocks=[[4,4],[8,8],[8,8],[8,8]]", "model.kwargs.audio.lstm_hidden=8",
        "model.kwargs.audio.dropout=0"]),
    "av_attention_fbp_afew": (2, 1e-2, []),
    "av_attention_fbp_ravdess": (2, 1e-2, []),
    "av_attention_fbp_crema_d": (2, 1e-2, []),
    "av_attention_fbp_dfew": (2, 1e-2, []),
    "av_attention_fbp_mafw": (2, 1e-2, []),
    "cnn3d_convlstm_dfew": (4, 3e-3, ["model.kwargs.dropout=0"]),
    "cnn3d_convlstm_mafw": (4, 3e-3, ["model.kwargs.dropout=0"]),
    "lemhi_cnn_mmi": (9, 3e-3, ["model.kwargs.backbone_kwargs.width=0.0625", "model.kwargs.dropout=0"]),
    "lemhi_cnn_afew": (4, 3e-3, ["model.kwargs.backbone_kwargs.width=0.0625", "model.kwargs.dropout=0"]),
    "cnn_ctslstm_mmi": (9, 3e-3, ["model.kwargs.backbone_kwargs.width=0.0625", "model.kwargs.lstm_hidden=16",
                                  "model.kwargs.dropout=0"]),
    "cnn_ctslstm_afew": (4, 3e-3, ["model.kwargs.backbone_kwargs.width=0.0625", "model.kwargs.lstm_hidden=16",
                                   "model.kwargs.dropout=0"]),
    "av_image_ravdess": (5, 1e-2, ["model.kwargs.image_size=64", "model.kwargs.stage_filters=[8,16,16]",
                                 "model.kwargs.dropout=0"]),
    "av_image_bp4d_plus": (3, 1e-2, ["model.kwargs.image_size=64", "model.kwargs.stage_filters=[8,16,16]",
                                 "model.kwargs.dropout=0"]),
    "send_valence": (3, 3e-3, ["model.kwargs.frame_backbone_kwargs.width=0.0625", "model.kwargs.projection_dim=8",
                               "model.kwargs.lstm_hidden=8", "model.kwargs.dropout=0"]),
}
for _name in ("av_attention_fbp_afew", "av_attention_fbp_ravdess", "av_attention_fbp_crema_d"):
    SHRINK[_name][2].extend([
        "model.kwargs.frame_backbone_kwargs.width=0.0625", "model.kwargs.audio_blocks=[[4,4],[8,8],[8,8],[8,8]]",
        "model.kwargs.fusion_kwargs.out_dim=8", "model.kwargs.dropout=0", "model.kwargs.fusion_kwargs.dropout=0"])
for _name in ("av_attention_fbp_dfew", "av_attention_fbp_mafw"):  # the AFEW model's shrink, on DFEW and MAFW
    SHRINK[_name][2].extend(SHRINK["av_attention_fbp_afew"][2])
STEPS = 8
# One config per method shows its loss falling (Hu et al.'s two models: test_hu2019_... below); the
# method's other configs differ only in records and class count, so two steps show they run.
LEARNS = ("cnn3d_convlstm_ck_plus", "cnn3d_convlstm_afew", "msff_afew", "av_attention_fbp_afew", "send_valence",
          "av_image_ravdess")
SMOKE_STEPS = 2
# Training clips of each dummy corpus in the configs' first run (data_builders/*/README.md).
TRAIN_CLIPS = {"ck_plus": 9, "mmi": 9, "savee": 4, "afew": 4, "ravdess": 5, "crema_d": 4, "send": 3,
               "bp4d_plus": 3}
TRAIN_CLIPS.update(dfew=4, mafw=4)  # folds 1-4 of data_builders/{dfew,mafw}/dummy_data
TRAIN_CLIPS["avec2013"] = 4  # windows: two recordings of two 2 s windows each
# Hu et al.'s two CK+ models: trained through `fer-jax cv` in test_fuse_... below.
CV_FUSED = ("lemhi_cnn_ck_plus", "cnn_ctslstm_ck_plus")


def overrides(name: str, workdir, data_dir, steps: int = STEPS) -> list[str]:
    batch, lr, extra = SHRINK[name]
    return [f"workdir={workdir}", f"data.data_dir={data_dir}", f"data.global_batch_size={batch}",
            "data.eval_batch_size=2", f"train.learning_rate={lr}", f"train.max_steps={steps}",
            "train.log_every_steps=1", "train.eval_every_epochs=100000", "augment.enabled=false", *extra]


def train_losses(workdir) -> list[float]:
    rows = [json.loads(line) for line in (pathlib.Path(workdir) / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if r["split"] == "train"]


def assert_loss_falls(losses: list[float], name: str, steps_per_epoch: int):
    """The mean loss of the last epoch is at least 10% below the first epoch's: each epoch sees the
    same clips (no augmentation or dropout), so an untrained model's would stay where it starts."""
    assert np.all(np.isfinite(losses)), (name, losses)
    first, last = np.mean(losses[:steps_per_epoch]), np.mean(losses[-steps_per_epoch:])
    assert len(losses) >= 2 * steps_per_epoch and last < 0.9 * first, (name, losses)


def test_every_config_has_a_smoke_test():
    assert set(CONFIGS) == set(SHRINK) | set(CV_FUSED) and set(LEARNS) <= set(SHRINK)


@pytest.mark.parametrize("name", sorted(SHRINK))
def test_config_trains_on_its_dummy_corpus_and_the_loss_falls(name, corpora, tmp_path):
    dataset = load_config(config_path(name)).data.dataset
    config = load_config(config_path(name), overrides(name, tmp_path, corpora(dataset)))
    built_splits = set(data_builders.builder(dataset, config.data.data_dir).info.splits)
    for _, train_split, val_split in config.data.cv_runs:  # every run of `fer-jax cv` reads built splits
        assert set(train_split.split("+")) | {val_split} <= built_splits, (name, train_split, val_split)
    num_train_clips = TRAIN_CLIPS[config.data.dataset.split("/")[0]]
    if name not in LEARNS:
        # Two steps, stopped as a preempted job stops (so no evaluation step to compile): it runs.
        results, _ = train(config, devices=jax.devices()[:1], stop_after_steps=SMOKE_STEPS)
        assert results["steps"] == SMOKE_STEPS and results["num_train_clips"] == num_train_clips
        losses = train_losses(tmp_path)
        assert len(losses) == SMOKE_STEPS and np.all(np.isfinite(losses)), losses
        return
    results, _ = train(config, devices=jax.devices()[:1])
    assert results["steps"] == STEPS and results["num_train_clips"] == num_train_clips
    score = "val_ccc" if name == "send_valence" else "val_accuracy"
    assert (-1.0 if score == "val_ccc" else 0.0) <= results[score] <= 1.0
    assert_loss_falls(train_losses(tmp_path), name, num_train_clips // SHRINK[name][0])


# --------------------------------------------------------------------------------------------------
# fer-jax cv: repeated runs, best epoch; fer-jax fuse: Hu et al.'s late fusion, fold by fold.


def test_cv_gives_repeated_runs_their_own_seeds_and_reports_the_best_epoch(tmp_path):
    import dataclasses

    from fer_jax.train.cv import format_cv_table, run_cross_validation

    seen = []

    def fake_train(config):  # stands in for train(): logs two evaluations, the first the better
        seen.append((config.data.train_split, config.train.seed, config.data.shuffle_seed))
        workdir = pathlib.Path(config.workdir)
        workdir.mkdir(parents=True)
        rows = [{"step": 5, "split": "val", "accuracy": 0.9, "uar": 0.8}, {"step": 10, "split": "val", "accuracy": 0.6, "uar": 0.5}]
        (workdir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        return {"val_accuracy": 0.6, "val_uar": 0.5, "best_step": 5, "num_train_clips": 4, "num_val_clips": 4}, None

    config = load_config(config_path("cnn3d_convlstm_savee"), [f"workdir={tmp_path}", "train.seed=7"])
    config = dataclasses.replace(config, data=dataclasses.replace(
        config.data, cv_runs=config.data.cv_runs[:3] + (("other", "fold1", "fold0"),)))
    summary = run_cross_validation(config, train_fn=fake_train)
    assert seen == [("train", 7, 0), ("train", 8, 1), ("train", 9, 2), ("fold1", 7, 0)]
    assert summary["best_val_accuracy_mean"] == pytest.approx(0.9) and summary["val_accuracy_mean"] == pytest.approx(0.6)
    assert "best_val_accuracy" in format_cv_table(summary)


def test_hu2019_protocol_cv_both_models_then_fuse(corpora, tmp_path):
    """The CK+ protocol of experiments/_common.hu2019 on two folds: `fer-jax cv` each model, then
    `fer-jax fuse`; the fused per-model scores are those `fer-jax eval` gives the same checkpoints."""
    from fer_jax import cli
    from fer_jax.errors import ConfigError
    from fer_jax.runs.evaluate import evaluate_checkpoint
    from fer_jax.runs.fuse import fuse_runs

    data_dir = corpora("ck_plus/lemhi")
    runs = json.dumps([["fold0", "+".join(f"fold{k}" for k in range(1, 10)), "fold0"],
                       ["fold1", "+".join(f"fold{k}" for k in range(10) if k != 1), "fold1"]])
    workdirs = []
    for name in CV_FUSED:
        workdir = tmp_path / name
        extra = ["model.kwargs.backbone_kwargs.width=0.0625", "model.kwargs.dropout=0"]
        if name.startswith("cnn_ctslstm"):
            extra.append("model.kwargs.lstm_hidden=16")
        argv = ["cv", "--config", str(config_path(name)), "--set", f"workdir={workdir}", "--set", f"data.data_dir={data_dir}",
                "--set", f"data.cv_runs={runs}", "--set", "data.global_batch_size=4", "--set", "data.eval_batch_size=4",
                "--set", "train.learning_rate=3e-3", "--set", "train.max_steps=8", "--set", "train.log_every_steps=1",
                "--set", "augment.enabled=false"] + [a for e in extra for a in ("--set", e)]
        assert cli.main(argv) == 0
        folds = json.loads((workdir / "cv_results.json").read_text())["folds"]
        # fold0 holds S005's two sequences and S035's
        assert [f["fold"] for f in folds] == ["fold0", "fold1"] and [f["num_val_clips"] for f in folds] == [3, 1]
        assert_loss_falls(train_losses(workdir / "fold0"), name, 9 // 4)
        workdirs.append(workdir)

    out = tmp_path / "fused"
    assert cli.main(["fuse", *map(str, workdirs), "--out", str(out), "--trials", "200"]) == 0
    summary = json.loads((out / "fuse_results.json").read_text())
    assert [f["fold"] for f in summary["folds"]] == ["fold0", "fold1"]
    for fold in summary["folds"]:
        weights = np.asarray(fold["weights"])
        assert weights.shape == (2,) and np.all(weights >= 0) and weights.sum() == pytest.approx(1.0)
        # Equal weights and each model alone are candidates: the fusion is never worse on this split.
        assert fold["fused"]["accuracy"] >= max(m["accuracy"] for m in fold["models"])
        confusion = np.asarray(fold["fused"]["confusion"])  # rows: true class, as `fer-jax zoo` plots it
        assert confusion.sum() == fold["num_val_clips"] and np.trace(confusion) / confusion.sum() == pytest.approx(
            fold["fused"]["accuracy"])
        for model in fold["models"]:
            ev = evaluate_checkpoint(model["workdir"], step=model["step"])
            assert model["accuracy"] == pytest.approx(ev["accuracy"]) and model["uar"] == pytest.approx(ev["uar"])
    assert summary["fused_accuracy_mean"] == pytest.approx(np.mean([f["fused"]["accuracy"] for f in summary["folds"]]))
    # A cv workdir and a single run have no runs in common: named, not guessed.
    with pytest.raises(ConfigError, match=r"its runs \[''\] are not"):
        fuse_runs([workdirs[0], workdirs[1] / "fold0"])


# --------------------------------------------------------------------------------------------------
# README: the experiments table's parameter counts are the configs' models'.


def readme_parameter_counts() -> dict[str, int]:
    section = (ROOT / "README.md").read_text().split("## Experiments", 1)[1].split("\n## ", 1)[0]
    counts = {}
    for row in section.splitlines():
        match = re.search(r"`experiments/([\w{},]+)\.py`", row)
        if not row.startswith("|") or not match:
            continue
        stem = match.group(1)
        names = ([stem.split("{")[0] + c for c in stem.split("{")[1].rstrip("}").split(",")] if "{" in stem else [stem])
        cell = row.rstrip(" |").rsplit("|", 1)[1]
        numbers = [int(n.replace(",", "")) for n in re.findall(r"\d{1,3}(?:,\d{3})+|\d+", cell.split("(")[0])]
        mmi = re.search(r"MMI: ([\d,]+)", cell)
        for name in names:
            counts[name] = int(mmi.group(1).replace(",", "")) if mmi and name.endswith("_mmi") else numbers[0]
    return counts


def test_readme_lists_every_config():
    assert set(readme_parameter_counts()) == set(CONFIGS)  # each one's count: test_config_reads_what_...
