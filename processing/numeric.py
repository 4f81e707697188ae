"""Numeric columns: parsed strictly, then missing values imputed with the training mean.

``NumericImputer`` follows scikit-learn's manner (``SimpleImputer(strategy="mean")``): ``fit``
learns ``statistics_``, ``transform`` applies them, and using it before fitting raises
``NotFittedError``. It round-trips through the plain-JSON ``impute_dict`` artifact, so an
inference process (or an upstream pipeline step) can supply the values.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.exceptions import NotFittedError

from contracts.errors import DataError

REQUEST = "request"  # the rows of an endpoint request, which came in no file


def parse_numeric(
    frame: pd.DataFrame, fields: Sequence[str], split: str, passthrough: Collection[str] = ()
) -> pd.DataFrame:
    """Columns as float64; a value that is present but not a finite number is a DataError that shows
    it and its rows, in ``split``'s file (or, for ``REQUEST``, in the endpoint's request).
    ``passthrough`` names the categorical fields read as numbers (encoded upstream), so the message
    gives their role and fix rather than tab_field_list's."""
    return pd.DataFrame(
        {field: _numbers(frame[field], field, split, field in passthrough) for field in fields}, index=frame.index
    )


def _numbers(column: pd.Series, field: str, split: str, passthrough: bool) -> pd.Series:
    numbers = pd.to_numeric(column, errors="coerce").astype("float64")
    unparsed = numbers.isna().to_numpy() & column.notna().to_numpy()
    unparsed[unparsed] = column[unparsed].astype(str).str.strip().to_numpy() != ""
    if unparsed.any():
        raise DataError(_unparsed_message(column, unparsed, field, split, passthrough))
    infinite = np.isinf(numbers.to_numpy())
    if infinite.any():
        raise DataError(
            f"Column {field!r} in {_source(split)} has {int(infinite.sum())} infinite value(s) "
            f"({_examples(column[infinite])}) at {_rows(infinite)}; a model cannot learn from infinity: replace them "
            "with finite numbers, or empty the cells to have them imputed."
        )
    return numbers


def _unparsed_message(column: pd.Series, unparsed: np.ndarray, field: str, split: str, passthrough: bool) -> str:
    """What is wrong with the values, the field's role (why they must be numbers) and the ways out."""
    values = column[unparsed]
    if passthrough:
        role = (
            "it is in cat_field_list but not in categorical_features_to_encode, so it must hold codes encoded upstream"
        )
        other = "add it to categorical_features_to_encode to risk-encode its categories here"
    else:
        role, other = "it is in tab_field_list", "move the field to cat_field_list if it is a category"
    where = f"e.g. {_examples(values)} at {_rows(unparsed)}"
    if values.map(lambda v: isinstance(v, (list, tuple, dict, np.ndarray))).any():
        listed = "cat_field_list" if passthrough else "tab_field_list"
        return (
            f"Column {field!r} in {_source(split)} must hold one number per row ({role}) but holds lists or structs, "
            f"{where}; flatten it upstream into one numeric column per value, or remove it from {listed}."
        )
    return (
        f"Column {field!r} in {_source(split)} must be numeric ({role}) but has {len(values)} non-numeric value(s), "
        f"{where}; clean them, or {other}."
    )


def _source(split: str) -> str:
    return "the request" if split == REQUEST else f"the {split} file"


def _examples(values: pd.Series, limit: int = 5) -> str:
    shown: dict[str, None] = {}
    for value in values:
        shown.setdefault(repr(value.tolist() if isinstance(value, np.ndarray) else value))
        if len(shown) == limit:
            break
    return ", ".join(shown)


def _rows(mask: np.ndarray, limit: int = 5) -> str:
    """Where the flagged values are, as data-row numbers a user finds in the file (first row after the header = 1)."""
    rows = np.flatnonzero(mask)
    more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
    return f"row(s) {', '.join(str(r + 1) for r in rows[:limit])}{more} (first data row = 1)"


class NumericImputer:
    """Missing numeric values replaced by the training mean (or by given values)."""

    def __init__(self, fields: Sequence[str]):
        self.fields = list(fields)

    def fit(self, numbers: pd.DataFrame) -> NumericImputer:
        means = numbers[self.fields].mean()
        empty = [f for f in self.fields if np.isnan(means[f])]
        if empty:
            raise DataError(
                f"Numeric column(s) {empty} have no values in the train file, so there is nothing to impute "
                "from; fill them or remove them from tab_field_list."
            )
        self.statistics_ = {f: float(means[f]) for f in self.fields}
        return self

    def transform(self, numbers: pd.DataFrame) -> np.ndarray:
        self._check_fitted()
        filled = numbers[self.fields].fillna(self.statistics_)
        return filled.to_numpy(dtype=np.float32)

    def to_artifact(self) -> dict[str, float]:
        self._check_fitted()
        return dict(self.statistics_)

    @classmethod
    def from_artifact(cls, values: Mapping[str, Any], fields: Sequence[str]) -> NumericImputer:
        missing = [f for f in fields if f not in values]
        if missing:
            raise DataError(
                f"The imputation values have no entry for {missing}; supply one per field in tab_field_list."
            )
        imputer = cls(fields)
        imputer.statistics_ = {f: float(values[f]) for f in fields}
        return imputer

    def _check_fitted(self) -> None:
        if not hasattr(self, "statistics_"):
            raise NotFittedError("NumericImputer is not fitted; call fit() or from_artifact() first")
