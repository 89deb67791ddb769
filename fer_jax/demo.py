"""`fer-jax demo`: build the demo corpus if missing, train the 3D-CNN + ConvLSTM, evaluate, report."""

from __future__ import annotations

import json
import pathlib
import time

from fer_jax.config import AugmentConfig, DataConfig, ExperimentConfig, ModelConfig, TrainConfig

DEMO_DATASET = "demo_av/gray64_t8"
# The paper's layers, narrowed (see demo_config); `fer-jax zoo` trains the same model.
DEMO_MODEL = {"conv_features": [8, 16, 32], "dropout": 0.3, "standardize_clips": True}
DEMO_LEARNING_RATE, DEMO_EPOCHS = 2e-3, 7


def demo_config(workdir: str = "workdir/demo", data_dir: str = "") -> ExperimentConfig:
    """The paper's model and training recipe, narrowed to fit a 2-core CPU in a few minutes.

    Same layer structure, input (8 frames of 64x64 grayscale aligned faces), Adam and augmentation
    as the paper; fewer convolution filters, clips standardised to zero mean and unit variance, and
    a higher learning rate, because the demo must train in about two minutes without a GPU.
    """
    return ExperimentConfig(
        name="demo_av_cnn3d_convlstm",
        workdir=workdir,
        data=DataConfig(dataset=DEMO_DATASET, data_dir=data_dir, num_classes=7, global_batch_size=32),
        model=ModelConfig(name="cnn3d_convlstm", kwargs=dict(DEMO_MODEL)),
        augment=AugmentConfig(),
        train=TrainConfig(learning_rate=DEMO_LEARNING_RATE, num_epochs=DEMO_EPOCHS, eval_every_epochs=DEMO_EPOCHS,
                          log_every_steps=8),
    )


def run_demo(workdir: str, data_dir: str | None = None, overrides=()) -> dict:
    # The demo is the one command that reaches across the flow: corpus -> records -> training.
    import data_builders
    from fer_jax.config import apply_overrides
    from fer_jax.train.loop import train

    start = time.perf_counter()
    data_dir = data_dir or data_builders.DEFAULT_DATA_DIR
    report = data_builders.build(DEMO_DATASET, data_dir)
    build_seconds = time.perf_counter() - start
    config = apply_overrides(demo_config(workdir, data_dir), overrides)
    results, _ = train(config)
    results.update(build_seconds=build_seconds, total_seconds=time.perf_counter() - start,
                   build_skipped=report.get("skipped", 0), corpus_already_built=report["already_built"])
    (pathlib.Path(workdir) / "results.json").write_text(json.dumps(results, indent=2))
    return results
