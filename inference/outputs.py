"""What a prediction looks like: the decision rule and the prediction rows.

Prediction rows: the id column when the rows have one, the true label as it was read when present (strings stay strings,
numbers stay numbers), ``prob_<class>`` per class, and ``prediction`` (the predicted class label;
for binary tasks at the decision threshold). Integer class labels give an integer ``prediction``
column; any other labels give text.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

DEFAULT_THRESHOLD = 0.5


def predicted_classes(probs: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """Class indices: for binary tasks class 1 when its probability reaches ``threshold``, else the arg-max."""
    if probs.shape[1] == 2:
        return (probs[:, 1] >= threshold).astype(np.int64)
    return probs.argmax(axis=1)


def prediction_frame(
    ids: pd.Series | None,
    labels: pd.Series | None,
    probs: np.ndarray,
    class_labels: Sequence,
    id_name: str,
    label_name: str,
    threshold: float = DEFAULT_THRESHOLD,
) -> pd.DataFrame:
    """The prediction rows; the id and label columns only when given."""
    columns: dict[str, object] = {}
    if ids is not None:
        columns[id_name] = ids.reset_index(drop=True)
    if labels is not None:
        columns[label_name] = labels.reset_index(drop=True)
    for k, label in enumerate(class_labels):
        columns[f"prob_{label}"] = probs[:, k]
    columns["prediction"] = class_label_array(class_labels)[predicted_classes(probs, threshold)]
    return pd.DataFrame(columns)


def class_label_array(class_labels: Sequence) -> np.ndarray:
    """The labels as one typed array (int64, or text when any label is not an integer), so that
    every file format can store the ``prediction`` column."""
    if all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in class_labels):
        return np.asarray(class_labels, dtype=np.int64)
    return np.asarray([str(c) for c in class_labels], dtype=object)
