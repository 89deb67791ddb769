"""Pictures a person would rather look at than read."""

from __future__ import annotations

import pathlib

import matplotlib

matplotlib.use("Agg")  # files only; no display on training machines
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _draw_confusion(ax, confusion, class_names, title: str = "") -> None:
    """Row-normalised confusion matrix with its counts, on `ax`."""
    confusion = np.asarray(confusion)
    support = confusion.sum(axis=1, keepdims=True)
    normalised = np.divide(confusion, support, out=np.zeros(confusion.shape, float), where=support > 0)
    n = len(class_names)
    ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            colour = "white" if normalised[i, j] > 0.6 else "black"
            ax.text(j, i, f"{confusion[i, j]}", ha="center", va="center", color=colour, fontsize=9)
    ax.set_xticks(range(n), class_names, rotation=45, ha="right")
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title)


def plot_confusion(confusion, class_names, path: str | pathlib.Path, title: str = "") -> pathlib.Path:
    """Row-normalised confusion matrix with counts, saved as PNG."""
    n = len(class_names)
    fig, ax = plt.subplots(figsize=(1.0 + 0.8 * n, 0.8 + 0.7 * n), dpi=110)
    _draw_confusion(ax, confusion, class_names, title)
    fig.tight_layout()
    path = pathlib.Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_confusion_grid(rows: list[list[tuple[str, object]]], class_names, path: str | pathlib.Path) -> pathlib.Path:
    """Confusion matrices side by side, one figure: `rows` of (title, confusion) panels, saved as PNG."""
    n, width = len(class_names), max(len(row) for row in rows)
    fig, axes = plt.subplots(len(rows), width, figsize=(width * (1.0 + 0.8 * n), len(rows) * (0.8 + 0.7 * n)),
                             dpi=90, squeeze=False)
    for r, row in enumerate(rows):
        for c in range(width):
            if c < len(row):
                _draw_confusion(axes[r][c], row[c][1], class_names, row[c][0])
            else:
                axes[r][c].axis("off")
    fig.tight_layout()
    path = pathlib.Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
