"""Final metrics with scikit-learn, on the full validation and test sets.

Binary tasks score the probability of class index 1 (label 1, or the second of two
``multiclass_categories``) against a decision threshold; multiclass tasks take the arg-max and
report macro averages plus per-class values. A metric that cannot be computed (one class only,
no positive predictions) is reported as missing with a reason, never as 0.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn import metrics as skm
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.preprocessing import label_binarize

DEFAULT_THRESHOLD = 0.5


@dataclass
class MetricReport:
    values: dict[str, float] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    per_class: dict[str, dict[str, float | None]] = field(default_factory=dict)
    threshold: float | None = None

    def to_dict(self) -> dict:
        out: dict = {**self.values}
        if self.threshold is not None:
            out["threshold"] = self.threshold
        if self.missing:
            out["missing"] = dict(self.missing)
        if self.per_class:
            out["per_class"] = self.per_class
        return out


def compute_metrics(
    y_true: np.ndarray,
    probs: np.ndarray,
    names: Sequence[str],
    class_labels: Sequence,
    threshold: float = DEFAULT_THRESHOLD,
) -> MetricReport:
    if probs.shape[1] == 2:
        return _binary(y_true, probs[:, 1], names, threshold)
    return _multiclass(y_true, probs, names, class_labels)


def best_f1_threshold(y_true: np.ndarray, positive_probs: np.ndarray) -> float | None:
    """The probability threshold with the highest F1 (None when F1 is undefined)."""
    if y_true.max(initial=0) == 0:
        return None
    precision, recall, thresholds = skm.precision_recall_curve(y_true, positive_probs)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return float(thresholds[int(np.argmax(f1[:-1]))])


def _binary(y_true: np.ndarray, scores: np.ndarray, names: Sequence[str], threshold: float) -> MetricReport:
    report = MetricReport(threshold=threshold)
    predicted = (scores >= threshold).astype(int)
    one_class = len(np.unique(y_true)) < 2
    for name in names:
        if name in ("auroc", "average_precision") and one_class:
            report.missing[name] = f"the labels hold only class {int(y_true[0])}; {name} needs both classes"
        elif name == "auroc":
            report.values[name] = float(skm.roc_auc_score(y_true, scores))
        elif name == "average_precision":
            report.values[name] = float(skm.average_precision_score(y_true, scores))
        elif name == "accuracy":
            report.values[name] = float(skm.accuracy_score(y_true, predicted))
        else:
            _thresholded(report, name, y_true, predicted, average="binary")
    return report


def _multiclass(y_true: np.ndarray, probs: np.ndarray, names: Sequence[str], class_labels: Sequence) -> MetricReport:
    report = MetricReport()
    k = probs.shape[1]
    predicted = probs.argmax(axis=1)
    onehot = label_binarize(y_true, classes=list(range(k)))
    absent = [class_labels[i] for i in range(k) if not onehot[:, i].any()]
    for name in names:
        if name in ("auroc", "average_precision") and absent:
            report.missing[name] = f"class(es) {absent} do not occur in these labels; macro {name} needs every class"
        elif name == "auroc":
            report.values[name] = float(skm.roc_auc_score(y_true, probs, multi_class="ovr", average="macro", labels=list(range(k))))
            report.per_class[name] = _per_class(class_labels, skm.roc_auc_score(onehot, probs, average=None))
        elif name == "average_precision":
            report.values[name] = float(skm.average_precision_score(onehot, probs, average="macro"))
            report.per_class[name] = _per_class(class_labels, skm.average_precision_score(onehot, probs, average=None))
        elif name == "accuracy":
            report.values[name] = float(skm.accuracy_score(y_true, predicted))
        else:
            _thresholded(report, name, y_true, predicted, average="macro", labels=list(range(k)))
            per_class = _undefined_as_nan(name, y_true, predicted, average=None, labels=list(range(k)))
            report.per_class[name] = _per_class(class_labels, per_class)
    return report


_THRESHOLDED = {"f1_score": skm.f1_score, "precision": skm.precision_score, "recall": skm.recall_score}


def _thresholded(report: MetricReport, name: str, y_true, predicted, **kwargs) -> None:
    value = _undefined_as_nan(name, y_true, predicted, **kwargs)
    if np.isnan(value):
        reason = "no sample is predicted positive" if name == "precision" else "no sample has the positive label"
        if kwargs.get("average") == "macro":
            reason = "it is undefined for a class with no predicted and no true samples"
        report.missing[name] = reason
    else:
        report.values[name] = float(value)


def _undefined_as_nan(name: str, y_true, predicted, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        return _THRESHOLDED[name](y_true, predicted, zero_division=np.nan, **kwargs)


def _per_class(class_labels: Sequence, values) -> dict[str, float | None]:
    return {str(label): (None if np.isnan(v) else float(v)) for label, v in zip(class_labels, values)}
