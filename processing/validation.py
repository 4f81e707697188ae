"""Checks on the loaded split files, run before any tokenization or training."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from contracts import DataError
from hyperparams import Config


def required_columns(config: Config) -> list[str]:
    """The columns the job reads from every split, in a stable order."""
    columns = [config.id_name, config.label_name, *config.text_fields.values()]
    if config.uses_tabular:
        columns += [*config.tab_field_list, *config.cat_field_list]
    return list(dict.fromkeys(columns))


def check_columns(config: Config, frames: Mapping[str, pd.DataFrame], files: Mapping[str, object]) -> None:
    """Every configured column exists in every split, and no split is empty."""
    needed = required_columns(config)
    for split, frame in frames.items():
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise DataError(
                f"The {split} file {files[split]} has no column(s) {missing}; it has {list(frame.columns)}. "
                "Fix the column names in the file or in the hyperparameters."
            )
        if len(frame) == 0:
            raise DataError(f"The {split} file {files[split]} has a header but no rows; every split needs data.")


def check_training_labels(labels: np.ndarray, class_labels: list, file: object) -> None:
    """Training needs examples of at least two classes."""
    present = np.unique(labels)
    if len(present) < 2:
        only = class_labels[int(present[0])] if len(present) else "none"
        raise DataError(
            f"The train file {file} has only one class ({only!r}) in its labels; a classifier needs at least two."
        )
