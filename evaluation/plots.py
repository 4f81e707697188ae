"""ROC and precision-recall figures: validation and test on one figure each."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn import metrics as skm  # noqa: E402

SplitScores = Mapping[str, tuple[np.ndarray, np.ndarray]]  # split -> (y_true, probs [N, K])


def roc_figure(scores: SplitScores, class_labels: Sequence) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(7, 6))
    for split, label, y, p in _curves(scores, class_labels):
        if len(np.unique(y)) < 2:
            continue
        fpr, tpr, _ = skm.roc_curve(y, p)
        ax.plot(fpr, tpr, label=f"{split}{label} (AUC {skm.auc(fpr, tpr):.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="chance")
    _finish(ax, "ROC curve", "False positive rate", "True positive rate", "lower right")
    return fig


def pr_figure(scores: SplitScores, class_labels: Sequence) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(7, 6))
    for split, label, y, p in _curves(scores, class_labels):
        if y.sum() == 0:
            continue
        precision, recall, _ = skm.precision_recall_curve(y, p)
        ap = skm.average_precision_score(y, p)
        ax.plot(recall, precision, label=f"{split}{label} (AP {ap:.3f})")
    _finish(ax, "Precision-recall curve", "Recall", "Precision", "lower left")
    return fig


def save_figure(fig: plt.Figure, path) -> None:
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def _curves(scores: SplitScores, class_labels: Sequence):
    """(split, label suffix, binary truth, score) per curve: one per split for binary tasks,
    one per class and split (one-vs-rest) for multiclass."""
    for split, (y_true, probs) in scores.items():
        if probs.shape[1] == 2:
            yield split, "", (y_true == 1).astype(int), probs[:, 1]
        else:
            for k, label in enumerate(class_labels):
                yield split, f" class {label}", (y_true == k).astype(int), probs[:, k]


def _finish(ax, title: str, xlabel: str, ylabel: str, legend_loc: str) -> None:
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc=legend_loc, fontsize="small")
