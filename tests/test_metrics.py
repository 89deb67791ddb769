"""WAR, UAR and the confusion matrix against scikit-learn."""

import numpy as np
import sklearn.metrics

from fer_jax.eval.metrics import classification_summary


def test_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 7, 500)
    # Imbalanced, partly right predictions so WAR and UAR differ.
    predictions = np.where(rng.uniform(size=500) < 0.6, labels, rng.integers(0, 7, 500))
    labels[:200] = 3
    summary = classification_summary(labels, predictions, 7)
    assert np.isclose(summary["accuracy"], sklearn.metrics.accuracy_score(labels, predictions))
    assert np.isclose(summary["uar"], sklearn.metrics.balanced_accuracy_score(labels, predictions))
    np.testing.assert_array_equal(summary["confusion"], sklearn.metrics.confusion_matrix(labels, predictions, labels=range(7)))
    recall = sklearn.metrics.recall_score(labels, predictions, average=None, labels=range(7))
    np.testing.assert_allclose(list(summary["per_class_recall"].values()), recall)


def test_absent_class_is_left_out_of_uar():
    summary = classification_summary([0, 0, 1, 1], [0, 1, 1, 1], 3, ["a", "b", "c"])
    assert summary["per_class_recall"] == {"a": 0.5, "b": 1.0, "c": None}
    assert np.isclose(summary["uar"], 0.75)
    assert np.isclose(summary["accuracy"], 0.75)
