"""Final metrics with scikit-learn, on the full validation and test sets.

Binary tasks score the probability of class index 1 (label 1, or the second of two
``multiclass_categories``) against a decision threshold; multiclass tasks take the arg-max and
report macro averages plus per-class values.

A metric that cannot be computed (one class only, no positive predictions) is reported under
``missing`` with the reason, never as 0. Macro averages follow scikit-learn's defaults: they run
over the classes that occur in the labels or the predictions, and a class whose own value is
undefined there counts as 0 (so a model that never predicts a class is not rewarded for it); that
class's own value is reported as missing.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn import metrics as skm
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.preprocessing import label_binarize

from inference.outputs import DEFAULT_THRESHOLD

RANKING_METRICS = ("auroc", "average_precision")


@dataclass
class MetricReport:
    values: dict[str, float] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    per_class: dict[str, dict[str, float | None]] = field(default_factory=dict)
    threshold: float | None = None
    rows: int = 0

    def to_dict(self) -> dict:
        out: dict = {**self.values}
        if self.threshold is not None:
            out["threshold"] = self.threshold
        out["rows"] = self.rows
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
    """``names`` (from ``metric_choices``) for class indices ``y_true`` and probabilities [rows, classes]."""
    if probs.shape[1] == 2:
        report = _binary(y_true, probs[:, 1], names, class_labels, threshold)
    else:
        report = _multiclass(y_true, probs, names, class_labels)
    report.rows = len(y_true)
    return report


def best_f1_threshold(y_true: np.ndarray, positive_probs: np.ndarray) -> float | None:
    """The probability threshold with the highest F1 (None when F1 is undefined)."""
    if y_true.max(initial=0) == 0:
        return None
    precision, recall, thresholds = skm.precision_recall_curve(y_true, positive_probs)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return float(thresholds[int(np.argmax(f1[:-1]))])


def _binary(
    y_true: np.ndarray, scores: np.ndarray, names: Sequence[str], class_labels: Sequence, threshold: float
) -> MetricReport:
    report = MetricReport(threshold=threshold)
    predicted = (scores >= threshold).astype(int)
    present = np.unique(y_true)
    positive = class_labels[1]
    for name in names:
        if name in RANKING_METRICS and len(present) < 2:
            only = class_labels[int(present[0])] if len(present) else "none"
            report.missing[name] = f"the labels hold only class {only!r}; {name} needs both classes"
        elif name == "auroc":
            report.values[name] = float(skm.roc_auc_score(y_true, scores))
        elif name == "average_precision":
            report.values[name] = float(skm.average_precision_score(y_true, scores))
        elif name == "accuracy":
            report.values[name] = float(skm.accuracy_score(y_true, predicted))
        else:
            value = _undefined_as_nan(name, y_true, predicted, average="binary")
            if np.isnan(value):
                report.missing[name] = _binary_reason(name, positive)
            else:
                report.values[name] = float(value)
    return report


def _binary_reason(name: str, positive) -> str:
    if name == "precision":
        return f"no sample is predicted as the positive class {positive!r}"
    if name == "recall":
        return f"no sample has the positive label {positive!r}"
    return f"no sample has the positive label {positive!r} and none is predicted as it"


def _multiclass(y_true: np.ndarray, probs: np.ndarray, names: Sequence[str], class_labels: Sequence) -> MetricReport:
    report = MetricReport()
    k = probs.shape[1]
    classes = list(range(k))
    predicted = probs.argmax(axis=1)
    onehot = label_binarize(y_true, classes=classes)
    absent = [class_labels[i] for i in classes if not onehot[:, i].any()]
    for name in names:
        if name in RANKING_METRICS and absent:
            report.missing[name] = f"class(es) {absent} do not occur in these labels; macro {name} needs every class"
        elif name == "auroc":
            macro = skm.roc_auc_score(y_true, probs, multi_class="ovr", average="macro", labels=classes)
            report.values[name] = float(macro)
            report.per_class[name] = _per_class(class_labels, skm.roc_auc_score(onehot, probs, average=None))
        elif name == "average_precision":
            report.values[name] = float(skm.average_precision_score(onehot, probs, average="macro"))
            report.per_class[name] = _per_class(class_labels, skm.average_precision_score(onehot, probs, average=None))
        elif name == "accuracy":
            report.values[name] = float(skm.accuracy_score(y_true, predicted))
        else:
            per_class = _undefined_as_nan(name, y_true, predicted, average=None, labels=classes)
            seen = np.isin(classes, np.union1d(y_true, predicted))
            report.values[name] = float(np.nan_to_num(per_class[seen], nan=0.0).mean())
            report.per_class[name] = _per_class(class_labels, per_class)
            for i in (i for i in classes if np.isnan(per_class[i])):
                report.missing[f"{name}/{class_labels[i]}"] = _class_reason(name, class_labels[i], seen[i])
    return report


def _class_reason(name: str, label, seen: bool) -> str:
    if not seen:
        return f"class {label!r} occurs in neither the labels nor the predictions; the macro {name} leaves it out"
    if name == "precision":
        return f"no sample is predicted as class {label!r}; the macro precision counts this class as 0"
    return f"no sample has the label {label!r}; the macro {name} counts this class as 0"


_THRESHOLDED = {"f1_score": skm.f1_score, "precision": skm.precision_score, "recall": skm.recall_score}


def _undefined_as_nan(name: str, y_true, predicted, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        return _THRESHOLDED[name](y_true, predicted, zero_division=np.nan, **kwargs)


def _per_class(class_labels: Sequence, values) -> dict[str, float | None]:
    return {str(label): (None if np.isnan(v) else float(v)) for label, v in zip(class_labels, values)}
