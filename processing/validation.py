"""Checks on the loaded split files, over every row, run before any tokenization or training.

A problem in row 900,000 of the test file should stop the job in seconds, not after hours of
training; so every check here reads whole columns of every split.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping

import numpy as np
import pandas as pd

from contracts import DataError
from hyperparams import Config
from processing.labels import LabelEncoder
from processing.tabular import parse_numeric

COLUMNS_SHOWN = 30  # present columns listed in a message; wide files would push the fix past SageMaker's 1024 characters


def validate_splits(config: Config, frames: Mapping[str, pd.DataFrame], files: Mapping[str, object]) -> None:
    """Columns exist and splits have rows; labels are known classes and train has two of them;
    numeric columns parse."""
    check_columns(config, frames, files)
    labels = LabelEncoder(config.class_labels)
    for split, frame in frames.items():
        label_ids = labels.transform(frame[config.label_name], split)
        if split == "train":
            check_training_labels(label_ids, config.class_labels, files[split])
        if config.uses_tabular:
            parse_numeric(frame, config.numeric_fields, split, config.passthrough_categorical_fields)


def column_roles(config: Config) -> dict[str, str]:
    """The columns the job reads from every split, in a stable order, with the field naming each."""
    roles = {config.id_name: "id_name", config.label_name: "label_name"}
    for role, column in config.text_fields.items():
        roles[column] = "text_name" if role == "text" else f"{role}_text_name"
    if config.uses_tabular:
        roles.update(dict.fromkeys(config.tab_field_list, "tab_field_list"))
        roles.update(dict.fromkeys(config.cat_field_list, "cat_field_list"))
    return roles


def check_columns(config: Config, frames: Mapping[str, pd.DataFrame], files: Mapping[str, object]) -> None:
    """Every configured column exists in every split, and no split is empty."""
    roles = column_roles(config)
    for split, frame in frames.items():
        present = [str(c) for c in frame.columns]
        missing = [c for c in roles if c not in frame.columns]
        if missing:
            described = "; ".join(_describe_missing(c, roles[c], present) for c in missing)
            shown = present[:COLUMNS_SHOWN] + ([f"... {len(present) - COLUMNS_SHOWN} more"] if len(present) > COLUMNS_SHOWN else [])
            raise DataError(
                f"The {split} file {files[split]} lacks {len(missing)} configured column(s): {described}. "
                f"Its columns are {shown}. Fix the column names in the file or in the hyperparameters."
            )
        if len(frame) == 0:
            raise DataError(f"The {split} file {files[split]} has a header but no rows; every split needs data.")


def check_training_labels(labels: np.ndarray, class_labels: list, file: object) -> None:
    """Training needs examples of at least two classes."""
    present = np.unique(labels)
    if len(present) < 2:
        only = class_labels[int(present[0])] if len(present) else "none"
        raise DataError(
            f"The train file {file} has only one class ({only!r}) in its labels; a classifier needs at least two, "
            "so add rows of another class or check label_name."
        )


def _describe_missing(column: str, field: str, present: list[str]) -> str:
    guess = difflib.get_close_matches(column, present, n=1, cutoff=0.75)
    hint = f", did you mean {guess[0]!r}?" if guess else ""
    return f"{column!r} ({field}{hint})"
