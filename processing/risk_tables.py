"""Risk tables (target encoding) of categorical columns, fitted on the training split only.

Risk of a category c, per class k: ``risk = (n_c * rate_c + S * rate_global) / (n_c + S)`` with
``S = smooth_factor * rows``; categories seen fewer than ``count_threshold`` times, and categories
never seen in training, get the default (the global rate). Binary tasks keep one rate (of the
positive class); multiclass tasks keep one rate per class (``hyperparams.rules.risk_rate_columns``).

``RiskTableEncoder`` follows scikit-learn's manner: ``fit`` learns ``tables_``, ``transform``
applies them, and using it before fitting raises ``NotFittedError``. The tables round-trip through
the ``risk_table_map`` artifact ``{field: {"bins": {category: rate}, "default_bin": rate}}``.
``GivenRiskTables`` applies tables fitted by an upstream step, and passes through a column that
that step has already encoded.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.exceptions import NotFittedError

from contracts.errors import DataError
from hyperparams.rules import risk_rate_columns

log = logging.getLogger(__name__)

MISSING_CATEGORY = "__missing__"
# Rates read back from CSV or float32 differ from the table's in the last digits only.
RATE_TOLERANCE = 1e-6


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


class RiskTableEncoder:
    """Categories replaced by their smoothed label rate(s); see the module docstring."""

    def __init__(self, fields: Sequence[str], num_classes: int, smooth_factor: float = 0.0, count_threshold: int = 0):
        self.fields = list(fields)
        self.num_classes = num_classes
        self.smooth_factor = smooth_factor
        self.count_threshold = count_threshold

    @property
    def width(self) -> int:
        """Encoded columns per field."""
        return risk_rate_columns(self.num_classes)

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
                raise DataError(
                    f"The risk table for {field!r} must look like {{'bins': {{...}}, 'default_bin': value}}."
                )
            encoder.tables_[field] = {
                "bins": {str(k): v for k, v in table["bins"].items()},
                "default_bin": table["default_bin"],
            }
        return encoder

    def _targets(self, labels: np.ndarray) -> np.ndarray:
        onehot = np.eye(self.num_classes)[labels]
        return onehot[:, 1:] if self.num_classes == 2 else onehot

    def _check_fitted(self) -> None:
        if not hasattr(self, "tables_"):
            raise NotFittedError("RiskTableEncoder is not fitted; call fit() or from_artifact() first")


class GivenRiskTables(RiskTableEncoder):
    """Risk tables fitted elsewhere; a column that already holds their rates passes through unchanged."""

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        encoded = super().transform(frame)
        for position, field in enumerate(self.fields):
            if self._holds_rates(frame[field], field):
                if self.width != 1:
                    raise DataError(
                        f"Column {field!r} already holds risk rates, but a multiclass task needs one rate per class; "
                        "give the raw categories and let the job apply risk_table_map."
                    )
                default = float(self.tables_[field]["default_bin"])
                encoded[:, position] = pd.to_numeric(frame[field]).fillna(default).to_numpy(np.float32)
                log.info("%s: %d rows already hold risk rates (mapped upstream); passed through", field, len(frame))
        return encoded

    def _holds_rates(self, column: pd.Series, field: str) -> bool:
        """True for a column of the table's rates, False for categories (seen or unseen)."""
        present = column.dropna()
        table = self.tables_[field]
        if present.empty or category_keys(present).isin(list(table["bins"])).all():
            return False
        numbers = pd.to_numeric(present, errors="coerce")
        if numbers.isna().any():
            return False
        values = np.unique(numbers.to_numpy(np.float64))
        every_rate = [*table["bins"].values(), table["default_bin"]]
        rates = np.unique(np.hstack([np.ravel(v) for v in every_rate]).astype(np.float64))
        if _all_close(values, rates):
            return True
        if np.array_equal(values, np.round(values)):
            return False
        strays = [float(v) for v in values if not _all_close(np.array([v]), rates)][:3]
        raise DataError(
            f"Column {field!r} holds fractional numbers that are neither categories nor rates of its risk table "
            f"(e.g. {strays}); it looks encoded with a different risk_table_map. Give the raw categories, or the "
            "risk_table_map that encoded it."
        )


def _all_close(values: np.ndarray, sorted_rates: np.ndarray) -> bool:
    """Every value lies within RATE_TOLERANCE of some rate (both sorted, unique)."""
    right = np.clip(np.searchsorted(sorted_rates, values), 0, len(sorted_rates) - 1)
    left = np.clip(right - 1, 0, len(sorted_rates) - 1)
    close = np.isclose(values, sorted_rates[right], rtol=RATE_TOLERANCE, atol=1e-9)
    return bool(np.all(close | np.isclose(values, sorted_rates[left], rtol=RATE_TOLERANCE, atol=1e-9)))


def _as_value(rates: np.ndarray) -> float | list[float]:
    """One float for a binary rate, a list for multiclass rates (plain JSON either way)."""
    return float(rates[0]) if len(rates) == 1 else [float(r) for r in rates]
