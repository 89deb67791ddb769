"""The tiny training run (3D-CNN + ConvLSTM on the tiny motion corpus) and comparing its states."""

import jax
import numpy as np

from fer_jax.config import AugmentConfig, DataConfig, ExperimentConfig, ModelConfig, TrainConfig

TINY_MODEL = {"frames": 8, "size": 16, "conv_features": [4, 8, 8], "convlstm_filters": 4, "dropout": 0.2}


def tiny_config(tiny_dataset, workdir, **train_kwargs) -> ExperimentConfig:
    """Two epochs of 12 steps (batches of 8) unless `train_kwargs` say otherwise."""
    data_dir, name = tiny_dataset
    return ExperimentConfig(
        name="tiny",
        workdir=str(workdir),
        data=DataConfig(dataset=name, data_dir=data_dir, num_classes=3, frames=8, size=16, global_batch_size=8,
                        eval_batch_size=16),
        model=ModelConfig(kwargs=dict(TINY_MODEL)),
        augment=AugmentConfig(),
        train=TrainConfig(**{"learning_rate": 3e-3, "num_epochs": 2, "log_every_steps": 4, **train_kwargs}),
    )


def params_of(steps) -> list[np.ndarray]:
    """Every leaf of the model + optimizer state (RNG keys as their raw data) as NumPy."""
    def raw(x):
        return jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x

    return [np.asarray(raw(x)) for x in jax.tree.leaves(steps.state)]


def assert_same_params(a, b, **tol):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, **tol)
