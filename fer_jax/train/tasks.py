"""What a model is trained to do: the targets it reads, its loss, its predictions, its scores.

The trainer is written against this small interface, so a classifier (emotion categories), a
regressor of a sequence (continuous valence per time step) and a regressor of a value per video
read in windows (AVEC2013's BDI-II) share one loop, one step and one checkpoint policy.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from fer_jax.data.sources import RecordKeys
from fer_jax.eval.metrics import classification_summary


class Classification:
    """Softmax cross-entropy over `label`; scored by WAR (accuracy), UAR and the confusion matrix."""

    name = "classification"
    target_keys = ("label",)
    score_name = "accuracy"  # what picks the best checkpoint

    def loss(self, outputs: jax.Array, batch: dict) -> tuple[jax.Array, dict]:
        """outputs: logits (B, C) -> (mean loss, per-step metrics)."""
        loss = optax.softmax_cross_entropy_with_integer_labels(outputs, batch["label"]).mean()
        return loss, {"accuracy": (outputs.argmax(-1) == batch["label"]).mean()}

    def predict(self, outputs: jax.Array) -> jax.Array:
        return outputs.argmax(-1)

    def summarize(self, predictions: np.ndarray, targets: dict, num_classes: int, class_names) -> dict:
        return classification_summary(targets["label"], predictions, num_classes, class_names)


class Regression:
    """A value per time step (valence), trained with 1 - CCC and scored by the mean per-video CCC."""

    name = "regression"
    target_keys = ("valence", "valence_mask")
    score_name = "ccc"

    def loss(self, outputs: jax.Array, batch: dict) -> tuple[jax.Array, dict]:
        """outputs: (B, T) predictions for the (B, T) targets where `valence_mask` is set."""
        from fer_jax.eval.ccc import ccc_loss

        loss = ccc_loss(outputs, batch["valence"], batch["valence_mask"])
        return loss, {"ccc": 1.0 - loss}

    def predict(self, outputs: jax.Array) -> jax.Array:
        return outputs

    def summarize(self, predictions: np.ndarray, targets: dict, num_classes: int, class_names) -> dict:
        from fer_jax.eval.ccc import mean_ccc_per_video

        ccc = mean_ccc_per_video(predictions, targets["valence"], targets["valence_mask"])
        return {"ccc": float(ccc), "num_examples": int(len(predictions))}


class VideoScore:
    """A value per clip (`score`), the clips being windows of longer videos (`video_index`):
    trained with the squared error per window, scored by MAE and RMSE per video after averaging each
    video's window predictions (`fer_jax.eval.regression`). The best checkpoint is the one with the
    lowest per-video RMSE (AVEC2013's ranking metric), kept as the highest `neg_rmse`."""

    name = "score"
    target_keys = ("score", "video_index")
    score_name = "neg_rmse"

    def loss(self, outputs: jax.Array, batch: dict) -> tuple[jax.Array, dict]:
        """outputs: (B, 1) -> (mean squared error, {"neg_rmse": of this batch's windows})."""
        mse = jnp.mean((outputs[:, 0] - batch["score"].astype(jnp.float32)) ** 2)
        return mse, {"neg_rmse": -jnp.sqrt(mse)}

    def predict(self, outputs: jax.Array) -> jax.Array:
        return outputs[:, 0]

    def summarize(self, predictions: np.ndarray, targets: dict, num_classes: int, class_names) -> dict:
        from fer_jax.eval.regression import video_scores

        scores = video_scores(predictions, targets["score"], targets["video_index"])
        return {**scores, "neg_rmse": -scores["rmse"], "num_examples": int(len(predictions))}


TASKS = {"classification": Classification(), "regression": Regression(), "score": VideoScore()}


def task_of(model) -> Classification | Regression:
    """Models declare `task = "regression"` or `"score"`; classification is the default."""
    return TASKS[getattr(model, "task", "classification")]


def input_keys_of(model) -> tuple[str, ...]:
    return tuple(getattr(model, "input_keys", ("frames",)))


def optional_input_keys_of(model) -> tuple[str, ...]:
    """Features a model uses when the records have them (e.g. "frame_mask")."""
    return tuple(getattr(model, "optional_input_keys", ()))


def record_keys_of(model) -> RecordKeys:
    """The record features `model` reads (some only when the records have them) and its targets."""
    return RecordKeys(input_keys_of(model), optional_input_keys_of(model), task_of(model).target_keys)


def model_inputs(batch: dict, keys) -> dict:
    """Record arrays -> model inputs: uint8 images become float32 in [0, 1]; masks stay bool."""
    inputs = {}
    for key in keys:
        x = batch[key]
        if x.dtype == jnp.uint8:
            x = x.astype(jnp.float32) / 255.0
        elif x.dtype != jnp.bool_:
            x = x.astype(jnp.float32)
        inputs[key] = x
    return inputs
