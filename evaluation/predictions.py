"""Prediction files: one row per input row, in the input file's format.

Columns: the id column, the true label as it was in the input, ``prob_<class>`` per class, and
``prediction`` (the predicted class label; for binary tasks at the reported threshold).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from processing.files import write_table


def prediction_frame(
    ids: pd.Series,
    labels: pd.Series | None,
    probs: np.ndarray,
    class_labels: Sequence,
    id_name: str,
    label_name: str,
    threshold: float = 0.5,
) -> pd.DataFrame:
    columns: dict[str, object] = {id_name: ids.to_numpy()}
    if labels is not None:
        columns[label_name] = labels.to_numpy()
    for k, label in enumerate(class_labels):
        columns[f"prob_{label}"] = probs[:, k]
    if probs.shape[1] == 2:
        chosen = (probs[:, 1] >= threshold).astype(int)
    else:
        chosen = probs.argmax(axis=1)
    columns["prediction"] = np.asarray(class_labels, dtype=object)[chosen]
    frame = pd.DataFrame(columns)
    if all(isinstance(c, (int, np.integer)) for c in class_labels):
        frame["prediction"] = frame["prediction"].astype("int64")
    return frame


def write_predictions(frame: pd.DataFrame, output_dir: Path, split: str, input_file: Path) -> Path:
    path = output_dir / f"{split}_predictions{input_file.suffix.lower()}"
    write_table(frame, path)
    return path
