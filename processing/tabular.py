"""Tabular encoders, fitted on the training split only: mean imputation and risk tables.

Both follow scikit-learn's manner: ``fit`` learns state into trailing-underscore attributes,
``transform`` applies it, and using an encoder before fitting is an error. Both round-trip
through plain-JSON artifacts so an inference process (or an upstream pipeline step) can supply
them.

Risk table (target encoding) of a category c, per class k:
``risk = (n_c * rate_c + S * rate_global) / (n_c + S)`` with ``S = smooth_factor * rows``;
categories seen fewer than ``count_threshold`` times, and categories never seen in training,
get the default (the global rate). Binary tasks keep one rate (of the positive class); multiclass
tasks keep one rate per class.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from contracts import DataError

MISSING_CATEGORY = "__missing__"


class NotFittedError(RuntimeError):
    pass


def parse_numeric(
    frame: pd.DataFrame, fields: Sequence[str], split: str, passthrough: Collection[str] = ()
) -> pd.DataFrame:
    """Columns as float64; a value that is present but not a finite number is a DataError that shows
    it and its rows. ``passthrough`` names the categorical fields read as numbers (encoded upstream),
    so the message gives their role and fix rather than tab_field_list's."""
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
            f"Column {field!r} in the {split} file has {int(infinite.sum())} infinite value(s) "
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
            f"Column {field!r} in the {split} file must hold one number per row ({role}) but holds lists or structs, "
            f"{where}; flatten it upstream into one numeric column per value, or remove it from {listed}."
        )
    return (
        f"Column {field!r} in the {split} file must be numeric ({role}) but has {len(values)} non-numeric value(s), "
        f"{where}; clean them, or {other}."
    )


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


def category_keys(column: pd.Series) -> pd.Series:
    """Categories as strings, the same for 3, 3.0 and "3"; missing values share one key."""
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        numbers = column.astype("float64")
        integral = numbers.notna() & (numbers == np.round(numbers))
        keys = numbers.astype(str)
        keys[integral] = numbers[integral].astype("int64").astype(str)
    else:
        keys = column.astype(str).str.strip()
    return keys.where(column.notna(), MISSING_CATEGORY)


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
            raise DataError(f"The imputation values have no entry for {missing}; supply one per field in tab_field_list.")
        imputer = cls(fields)
        imputer.statistics_ = {f: float(values[f]) for f in fields}
        return imputer

    def _check_fitted(self) -> None:
        if not hasattr(self, "statistics_"):
            raise NotFittedError("NumericImputer is not fitted; call fit() or from_artifact() first")


class RiskTableEncoder:
    """Categories replaced by their smoothed label rate(s); see the module docstring."""

    def __init__(self, fields: Sequence[str], num_classes: int, smooth_factor: float = 0.0, count_threshold: int = 0):
        self.fields = list(fields)
        self.num_classes = num_classes
        self.smooth_factor = smooth_factor
        self.count_threshold = count_threshold

    @property
    def width(self) -> int:
        """Encoded columns per field: the positive rate (binary) or one rate per class."""
        return 1 if self.num_classes == 2 else self.num_classes

    def fit(self, frame: pd.DataFrame, labels: np.ndarray) -> RiskTableEncoder:
        targets = pd.DataFrame(self._targets(labels))
        prior = targets.mean(axis=0).to_numpy()
        pseudo_counts = self.smooth_factor * len(labels)
        self.tables_: dict[str, dict[str, Any]] = {}
        for field in self.fields:
            grouped = targets.groupby(category_keys(frame[field]).to_numpy())
            counts = grouped.size()
            risks = (grouped.sum().to_numpy() + pseudo_counts * prior) / (counts.to_numpy()[:, None] + pseudo_counts)
            kept = counts.to_numpy() >= self.count_threshold
            bins = {str(key): _as_value(risk) for key, risk in zip(counts.index[kept], risks[kept])}
            self.tables_[field] = {"bins": bins, "default_bin": _as_value(prior)}
        return self

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        self._check_fitted()
        columns = [np.zeros((len(frame), 0))]
        for field in self.fields:
            table = self.tables_[field]
            bins = pd.DataFrame(
                [np.atleast_1d(v) for v in table["bins"].values()], index=list(table["bins"]), dtype="float64"
            ).reindex(columns=range(self.width))
            default = np.broadcast_to(np.asarray(table["default_bin"], dtype=np.float64), (self.width,))
            encoded = bins.reindex(category_keys(frame[field]).to_numpy())
            columns.append(encoded.fillna(dict(enumerate(default))).to_numpy())
        return np.concatenate(columns, axis=1).astype(np.float32)

    def to_artifact(self) -> dict[str, dict[str, Any]]:
        self._check_fitted()
        return self.tables_

    @classmethod
    def from_artifact(cls, tables: Mapping[str, Any], fields: Sequence[str], num_classes: int) -> RiskTableEncoder:
        missing = [f for f in fields if f not in tables]
        if missing:
            raise DataError(f"The risk tables have no entry for {missing}; supply one per encoded categorical field.")
        encoder = cls(fields, num_classes)
        encoder.tables_ = {}
        for field in fields:
            table = tables[field]
            if not isinstance(table, Mapping) or "bins" not in table or "default_bin" not in table:
                raise DataError(f"The risk table for {field!r} must look like {{'bins': {{...}}, 'default_bin': value}}.")
            encoder.tables_[field] = {"bins": {str(k): v for k, v in table["bins"].items()}, "default_bin": table["default_bin"]}
        return encoder

    def _targets(self, labels: np.ndarray) -> np.ndarray:
        onehot = np.eye(self.num_classes)[labels]
        return onehot[:, 1:] if self.num_classes == 2 else onehot

    def _check_fitted(self) -> None:
        if not hasattr(self, "tables_"):
            raise NotFittedError("RiskTableEncoder is not fitted; call fit() or from_artifact() first")


def _as_value(rates: np.ndarray) -> float | list[float]:
    """One float for a binary rate, a list for multiclass rates (plain JSON either way)."""
    return float(rates[0]) if len(rates) == 1 else [float(r) for r in rates]
