"""Checks on the loaded split files, over every row, run before any tokenization or training.

A problem in row 900,000 of the test file should stop the job in seconds, not after hours of
training; so every check here reads whole columns of every split.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Mapping

import numpy as np
import pandas as pd

from contracts.errors import DataError
from hyperparams.config import Config
from processing.labels import LabelEncoder
from processing.numeric import parse_numeric

log = logging.getLogger(__name__)

COLUMNS_SHOWN = (
    30  # present columns listed in a message; wide files would push the fix past SageMaker's 1024 characters
)


def validate_splits(config: Config, frames: Mapping[str, pd.DataFrame], files: Mapping[str, object]) -> None:
    """Columns exist and splits have rows; labels are known classes and train has two of them;
    numeric columns parse; text columns hold some text. Duplicate ids are only a warning."""
    check_columns(config, frames, files)
    labels = LabelEncoder(config.class_labels)
    for split, frame in frames.items():
        label_ids = labels.transform(frame[config.label_name], split)
        if split == "train":
            check_training_labels(label_ids, config.class_labels, files[split])
        if config.uses_tabular:
            parse_numeric(frame, config.numeric_fields, split, config.passthrough_categorical_fields)
        check_text_present(config, frame, split, files[split])
        warn_duplicate_ids(frame[config.id_name], config.id_name, split)


def column_roles(config: Config) -> dict[str, str]:
    """The columns the job reads from every split, in a stable order, with the field naming each."""
    roles = {config.id_name: "id_name", config.label_name: "label_name"}
    for role, column in config.text_fields.items():
        roles[column] = "text_name" if role == "text" else f"{role}_text_name"
    if config.uses_tabular:
        roles.update(dict.fromkeys(config.tab_field_list, "tab_field_list"))
        roles.update(dict.fromkeys(config.cat_field_list, "cat_field_list"))
    return roles


def declared_columns(config: Config) -> dict[str, str]:
    """Every column of full_field_list with the field naming it: the columns read (``column_roles``)
    first, then the tabular fields a text-only model ignores and the columns listed only there."""
    roles = column_roles(config)
    for column in config.full_field_list:
        listed = [name for name in ("tab_field_list", "cat_field_list") if column in getattr(config, name)]
        roles.setdefault(column, listed[0] if listed else "full_field_list")
    return roles


def check_columns(config: Config, frames: Mapping[str, pd.DataFrame], files: Mapping[str, object]) -> None:
    """Every column of full_field_list exists in every split, and no split is empty."""
    roles = declared_columns(config)
    for split, frame in frames.items():
        present = [str(c) for c in frame.columns]
        missing = [c for c in roles if c not in frame.columns]
        if missing:
            described = "; ".join(_describe_missing(c, roles[c], present) for c in missing)
            shown = present[:COLUMNS_SHOWN] + (
                [f"... {len(present) - COLUMNS_SHOWN} more"] if len(present) > COLUMNS_SHOWN else []
            )
            raise DataError(
                f"The {split} file {files[split]} lacks {len(missing)} configured column(s): {described}. "
                f"Its columns are {shown}. Fix the column names in the file or in the hyperparameters."
            )
        if len(frame) == 0:
            raise DataError(f"The {split} file {files[split]} has a header but no rows; every split needs data.")


def check_text_present(config: Config, frame: pd.DataFrame, split: str, file: object) -> None:
    """A text column may have empty rows (each becomes one empty message), but not only empty rows:
    that is a wrong column or a broken export, and the model would learn nothing from the text."""
    for role, column in config.text_fields.items():
        text = frame[column].dropna().astype(str)
        if not text.str.contains(r"\S", regex=True).any():
            field = "text_name" if role == "text" else f"{role}_text_name"
            raise DataError(
                f"Text column {column!r} ({field}) is empty in all {len(frame)} rows of the {split} file {file}; "
                f"check {field} and the file's export (some empty rows are fine, an empty column is not)."
            )


def warn_duplicate_ids(ids: pd.Series, id_name: str, split: str) -> None:
    """Repeated ids do not affect training; they only make the prediction files ambiguous to join by id."""
    repeated = ids[ids.duplicated(keep=False) & ids.notna()]
    if len(repeated):
        examples = ", ".join(repr(v) for v in repeated.unique()[:3])
        log.warning(
            "The %s file has %d rows whose %s is not unique (e.g. %s); the job goes on, but its prediction files "
            "repeat these ids, so join predictions back by row order rather than by %s",
            split,
            len(repeated),
            id_name,
            examples,
            id_name,
        )


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
