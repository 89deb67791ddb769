"""Classification metrics of the field: WAR (accuracy), UAR (mean per-class recall), confusion."""

from __future__ import annotations

import numpy as np


def confusion_matrix(labels, predictions, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) int64 counts; rows are true classes, columns predictions."""
    labels = np.asarray(labels, np.int64)
    predictions = np.asarray(predictions, np.int64)
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


def per_class_recall(confusion: np.ndarray) -> np.ndarray:
    """Recall of each class; NaN for a class with no examples (it is left out of UAR)."""
    support = confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(confusion) / support, np.nan)


def classification_summary(labels, predictions, num_classes: int, class_names=()) -> dict:
    """WAR, UAR, per-class recall and the confusion matrix, as plain JSON-friendly values."""
    confusion = confusion_matrix(labels, predictions, num_classes)
    recall = per_class_recall(confusion)
    total = confusion.sum()
    names = list(class_names) or [str(i) for i in range(num_classes)]
    return {
        "accuracy": float(np.trace(confusion) / total) if total else float("nan"),  # WAR
        "uar": float(np.nanmean(recall)) if np.isfinite(recall).any() else float("nan"),
        "per_class_recall": {n: (None if np.isnan(r) else float(r)) for n, r in zip(names, recall)},
        "confusion": confusion.tolist(),
        "num_examples": int(total),
    }
