"""`fer-jax zoo`: every entry fits the records its corpus stores, and the command trains, fuses and
reports end to end (a few steps on a confusable corpus of four identities, so it cannot rot)."""

import json

import pytest
from flax import nnx

import data_builders
from data_builders.demo_av import synth
from fer_jax import zoo
from fer_jax.cli import main
from fer_jax.errors import ConfigError
from fer_jax.models.registry import build_model
from fer_jax.train.tasks import record_keys_of


# What each entry's model must read, stated apart from the zoo: an ablation reads only its own
# modality, a video network no sound, and every full audio-visual model both.
READS = {
    "cnn3d_convlstm": {"frames"}, "lemhi_cnn": {"lemhi"}, "cnn_ctslstm": {"frames"},
    "msff_cnn_blstm": {"frames"}, "msff_c3d": {"frames"}, "msff_audio": {"log_mel_deltas"},
    "av_attention_video": {"frames"}, "av_attention_audio": {"log_mel_deltas"},
    "av_attention_fbp": {"frames", "log_mel_deltas"},
    "av_image_face": {"frames"}, "av_image_waveform": {"waveform_image"}, "av_image": {"frames", "waveform_image"},
}


@pytest.mark.parametrize("entry", [e for e in zoo.ENTRIES if isinstance(e, zoo.Entry)], ids=lambda e: e.name)
def test_every_entry_reads_what_its_corpus_stores_and_nothing_else(entry):
    model = nnx.eval_shape(lambda: build_model(entry.model, num_classes=7, rngs=nnx.Rngs(0), **entry.model_kwargs))
    config = data_builders.builder(entry.dataset).builder_config
    spec = config.clip.record_spec()
    keys = record_keys_of(model)
    assert set(keys.inputs) <= set(spec), (entry.name, keys.inputs, sorted(spec))
    assert set(keys.inputs) == READS[entry.name] and set(keys.optional) <= {"frame_mask"}, (entry.name, keys)
    # The confusable corpus is where fusion is measured.
    audio_visual = {e.method for e in zoo.ENTRIES if e.role in (zoo.VIDEO_ONLY, zoo.AUDIO_ONLY)}
    assert getattr(config, "confusable", False) == entry.method.startswith(tuple(audio_visual))


def test_selection_brings_what_a_late_fusion_needs_and_rejects_unknown_names():
    assert [e.name for e in zoo.select(["hu2019_late_fusion"])] == ["lemhi_cnn", "cnn_ctslstm", "hu2019_late_fusion"]
    assert [e.name for e in zoo.select(["msff"])] == ["msff_cnn_blstm", "msff_c3d", "msff_audio", "msff"]
    assert [e.name for e in zoo.select()] == list(zoo.NAMES)
    with pytest.raises(ConfigError, match="msf"):
        zoo.select(["msf"])


@pytest.fixture(scope="module")
def confusable_waveform_corpus(tmp_path_factory):
    """demo_av/confusable_face_waveform built from four identities' clips (21 train, 7 validation)."""
    identities, _ = synth.load_identities()
    raw = tmp_path_factory.mktemp("confusable_raw")
    synth.write_demo_corpus(raw, val_fraction=0.25, num_workers=2, identities=identities[:4], confusable=True)
    data_dir = tmp_path_factory.mktemp("tfds")
    data_builders.build(zoo.CONFUSABLE_FACE_WAVEFORM, str(data_dir), str(raw))
    return str(data_dir)


def test_zoo_command_trains_the_ablations_and_the_fusion_and_reports_them(confusable_waveform_corpus, tmp_path, capsys,
                                                                          monkeypatch):
    """The image method's three entries, and a late fusion of its two ablations (the path Hu et al.'s
    and MSFF's fusions take, for the cost of scoring seven clips twice)."""
    late = zoo.LateFusion("image_late_fusion", "late fusion of the image ablations", "face; waveform image",
                          ("av_image_face", "av_image_waveform"))
    monkeypatch.setattr(zoo, "ENTRIES", (*zoo.ENTRIES, late))
    monkeypatch.setattr(zoo, "NAMES", (*zoo.NAMES, late.name))
    workdir, out = tmp_path / "zoo", tmp_path / "zoo.json"
    names = ["av_image_face", "av_image_waveform", "av_image", late.name]
    argv = ["zoo", "--only", *names, "--workdir", str(workdir), "--data-dir", confusable_waveform_corpus,
            "--json", str(out), "--set", "train.max_steps=2", "--set", "data.global_batch_size=4"]
    assert main(argv) == 0
    report = json.loads(out.read_text())
    assert [r["name"] for r in report["rows"]] == names
    assert [r["role"] for r in report["rows"]] == [zoo.VIDEO_ONLY, zoo.AUDIO_ONLY, zoo.FULL, zoo.FULL]
    for row in report["rows"]:
        assert row["num_val_clips"] == 7 and 0 <= row["val_accuracy"] <= 1 and row["parameters"] > 0
        assert sum(map(sum, row["val_confusion"])) == 7
    face, waveform, fused = report["rows"][0], report["rows"][1], report["rows"][3]
    assert fused["parameters"] == face["parameters"] + waveform["parameters"] and len(fused["weights"]) == 2
    assert fused["train_seconds"] == face["train_seconds"] + waveform["train_seconds"]
    assert [m["accuracy"] for m in fused["models"].values()] == [face["val_accuracy"], waveform["val_accuracy"]]
    printed = capsys.readouterr().out
    assert "Face + waveform image" in printed and "whole zoo" in printed
    assert (workdir / "zoo_confusions.png").stat().st_size > 10_000
