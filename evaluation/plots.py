"""Evaluation figures: ROC, precision-recall, confusion matrix and reliability (calibration).

Validation and test share each figure, so a gap between them shows at a glance. Binary tasks
draw the positive class (class index 1); multiclass tasks draw one-vs-rest curves per class plus
the macro average, with a colour per class and a line style per split. Legends carry the same
AUC and AP values as ``metrics.json``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve

SplitScores = Mapping[str, tuple[np.ndarray, np.ndarray]]  # split -> (y_true class indices, probs [N, K])

SPLIT_STYLES = {"val": "--", "test": "-"}
SPLIT_COLOURS = {"val": "tab:orange", "test": "tab:blue"}
CALIBRATION_BINS = 10
_GRID = np.linspace(0.0, 1.0, 201)


@dataclass
class _Curve:
    split: str
    name: str  # "" for a binary task's positive class, the class label, or "macro"
    truth: np.ndarray  # 1 where the sample belongs to the class
    score: np.ndarray
    colour: str

    @property
    def style(self) -> dict:
        return {"linestyle": SPLIT_STYLES.get(self.split, "-"), "color": self.colour}

    @property
    def legend(self) -> str:
        return f"{self.split} class {self.name}" if self.name else self.split


def roc_figure(scores: SplitScores, class_labels: Sequence) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(7, 6))
    for split, curves in _curves_by_split(scores, class_labels):
        drawn = [c for c in curves if len(np.unique(c.truth)) == 2]
        areas = []
        for c in drawn:
            fpr, tpr, _ = skm.roc_curve(c.truth, c.score)
            areas.append((fpr, tpr, skm.auc(fpr, tpr)))
            ax.plot(fpr, tpr, **c.style, label=f"{c.legend} (AUC {areas[-1][2]:.3f})")
        if len(curves) > 1 and len(drawn) == len(curves):
            mean_tpr = np.mean([np.interp(_GRID, fpr, tpr) for fpr, tpr, _ in areas], axis=0)
            auc = np.mean([a for _, _, a in areas])
            ax.plot(_GRID, mean_tpr, **_macro_style(split), label=f"{split} macro (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", linewidth=1, label="chance")
    _finish(ax, _title("ROC curve", class_labels), "False positive rate", "True positive rate (recall)", "lower right")
    return fig


def pr_figure(scores: SplitScores, class_labels: Sequence) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(7, 6))
    for split, curves in _curves_by_split(scores, class_labels):
        drawn = [c for c in curves if c.truth.any()]
        interpolated, precisions = [], []
        for c in drawn:
            precision, recall, _ = skm.precision_recall_curve(c.truth, c.score)
            ap = skm.average_precision_score(c.truth, c.score)
            precisions.append(ap)
            interpolated.append(np.interp(_GRID, recall[::-1], precision[::-1]))
            ax.plot(recall, precision, **c.style, drawstyle="steps-post", label=f"{c.legend} (AP {ap:.3f})")
        if len(curves) > 1 and len(drawn) == len(curves):
            macro = np.mean(interpolated, axis=0)
            ax.plot(_GRID, macro, **_macro_style(split), label=f"{split} macro (AP {np.mean(precisions):.3f})")
    _finish(ax, _title("Precision-recall curve", class_labels), "Recall", "Precision", "lower left")
    return fig


def confusion_figure(
    truth: Mapping[str, np.ndarray],
    predicted: Mapping[str, np.ndarray],
    class_labels: Sequence,
    threshold: float | None,
) -> plt.Figure:
    """Counts per (true, predicted) class, one panel per split."""
    splits = list(truth)
    k = len(class_labels)
    side = max(4.0, 0.6 * k + 2.5)
    fig, axes = plt.subplots(1, len(splits), figsize=(side * len(splits), side), squeeze=False)
    for ax, split in zip(axes[0], splits):
        display = skm.ConfusionMatrixDisplay(
            skm.confusion_matrix(truth[split], predicted[split], labels=list(range(k))),
            display_labels=[str(c) for c in class_labels],
        )
        display.plot(ax=ax, cmap="Blues", colorbar=False, values_format="d")
        accuracy = float(np.mean(truth[split] == predicted[split])) if len(truth[split]) else float("nan")
        ax.set_title(f"{split}: {len(truth[split])} rows, accuracy {accuracy:.3f}")
        ax.set_xlabel("Predicted class")
        ax.set_ylabel("True class")
    if threshold is None:
        fig.suptitle("Confusion matrix (predicted: the arg-max class)")
    else:
        positive = class_labels[1]
        fig.suptitle(f"Confusion matrix (predicted: class {positive!r} when its probability ≥ {threshold:.2f})")
    fig.tight_layout()
    return fig


def calibration_figure(scores: SplitScores, class_labels: Sequence) -> plt.Figure:
    """Reliability diagram: observed frequency against predicted probability, with the
    distribution of predictions below. Binary: the positive class; multiclass: the top class's
    probability against accuracy."""
    binary = len(class_labels) == 2
    fig, (ax, hist) = plt.subplots(2, 1, figsize=(7, 8), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", linewidth=1, label="perfectly calibrated")
    for split, (y_true, probs) in scores.items():
        if binary:
            hit, confidence = (y_true == 1).astype(int), probs[:, 1]
        else:
            hit, confidence = (probs.argmax(axis=1) == y_true).astype(int), probs.max(axis=1)
        if not len(hit):
            continue
        colour = SPLIT_COLOURS.get(split, "tab:green")
        observed, mean_predicted = calibration_curve(hit, confidence, n_bins=CALIBRATION_BINS, strategy="uniform")
        brier = skm.brier_score_loss(hit, confidence)
        ax.plot(mean_predicted, observed, "o" + SPLIT_STYLES.get(split, "-"), color=colour,
                label=f"{split} (Brier {brier:.3f})")
        hist.hist(confidence, bins=CALIBRATION_BINS, range=(0, 1), histtype="step", color=colour, label=split)
    if binary:
        _finish(ax, f"Reliability of P(class {class_labels[1]!r})", "", f"Observed share of class {class_labels[1]!r}",
                "upper left")
        hist.set_xlabel(f"Predicted probability of class {class_labels[1]!r}")
    else:
        _finish(ax, "Reliability of the predicted class (top-label)", "", "Accuracy", "upper left")
        hist.set_xlabel("Probability of the predicted class")
    hist.set_ylabel("Rows")
    hist.grid(alpha=0.3)
    hist.legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    return fig


def save_figure(fig: plt.Figure, path) -> None:
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def _curves_by_split(scores: SplitScores, class_labels: Sequence) -> Iterator[tuple[str, list[_Curve]]]:
    """Per split, one curve for a binary task, or one per class (one-vs-rest) for multiclass."""
    for split, (y_true, probs) in scores.items():
        if probs.shape[1] == 2:
            colour = SPLIT_COLOURS.get(split, "tab:green")
            yield split, [_Curve(split, "", (y_true == 1).astype(int), probs[:, 1], colour)]
        else:
            palette = plt.get_cmap("tab10" if len(class_labels) <= 10 else "tab20")
            yield split, [
                _Curve(split, str(label), (y_true == k).astype(int), probs[:, k], palette(k % palette.N))
                for k, label in enumerate(class_labels)
            ]


def _macro_style(split: str) -> dict:
    return {"linestyle": SPLIT_STYLES.get(split, "-"), "color": "black", "linewidth": 2.2}


def _title(kind: str, class_labels: Sequence) -> str:
    if len(class_labels) == 2:
        return f"{kind}: class {class_labels[1]!r} vs {class_labels[0]!r}"
    return f"{kind}: each class vs the rest, and macro average"


def _finish(ax, title: str, xlabel: str, ylabel: str, legend_loc: str) -> None:
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc=legend_loc, fontsize="small")
