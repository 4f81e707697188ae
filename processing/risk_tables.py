"""Risk tables (target encoding) of categorical columns, fitted on the training split only.

Risk of a category c, per class k: ``risk = (n_c * rate_c + S * rate_global) / (n_c + S)`` with
``S = smooth_factor * rows``; categories seen fewer than ``count_threshold`` times, and categories
never seen in training, get the default (the global rate). Binary tasks keep one rate (of the
positive class); multiclass tasks keep one rate per class (``hyperparams.rules.risk_rate_columns``).

``RiskTableEncoder`` follows scikit-learn's manner: ``fit`` learns ``tables_``, ``transform``
applies them, and using it before fitting raises ``NotFittedError``. The tables round-trip through
the ``risk_table_map`` artifact ``{field: {"bins": {category: rate}, "default_bin": rate}}``.

Out-of-fold encoding of the training rows (``fit_transform``, as scikit-learn's ``TargetEncoder``
cross-fits): applied to the rows it was fitted on, a table hands each row a rate that contains the
row's own label, and for a category seen once (an id, a SKU) the rate *is* the label; the model
learns to read the label from it, and on new rows every such value is unseen. So ``fit_transform``
splits the rows into ``folds`` stratified folds (shuffled with ``seed``: the same split on every
rank and every run) and encodes each fold with tables fitted, smoothing and ``count_threshold``
included, on the other folds alone; ``tables_``, which encode every other row and are saved, are
fitted on all rows, exactly as ``fit`` fits them.
``GivenRiskTables`` applies tables fitted by an upstream step, and passes through a column that
that step has already encoded.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import StratifiedKFold

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

    def __init__(
        self,
        fields: Sequence[str],
        num_classes: int,
        smooth_factor: float = 0.0,
        count_threshold: int = 0,
        folds: int = 1,
        seed: int = 0,
    ):
        self.fields = list(fields)
        self.num_classes = num_classes
        self.smooth_factor = smooth_factor
        self.count_threshold = count_threshold
        self.folds = folds
        self.seed = seed

    @property
    def width(self) -> int:
        """Encoded columns per field."""
        return risk_rate_columns(self.num_classes)

    def fit(self, frame: pd.DataFrame, labels: np.ndarray) -> RiskTableEncoder:
        targets = self._targets(labels)
        self.tables_: dict[str, dict[str, Any]] = {}
        for field in self.fields:
            rates, prior = self._rates(category_keys(frame[field]).to_numpy(), targets)
            bins = {str(key): _as_value(risk) for key, risk in zip(rates.index, rates.to_numpy())}
            self.tables_[field] = {"bins": bins, "default_bin": _as_value(prior)}
        return self

    def fit_transform(self, frame: pd.DataFrame, labels: np.ndarray) -> np.ndarray:
        """Fit ``tables_`` on every row, and return the rows' out-of-fold encoding (with ``folds`` 1,
        or too few rows to split, their in-sample encoding: ``transform`` of the rows just fitted)."""
        self.fit(frame, labels)
        splits = fold_split(labels, self.folds, self.seed)
        if not self.fields or len(splits) < 2:
            return self.transform(frame)
        targets = self._targets(labels)
        encoded = np.empty((len(frame), self.width * len(self.fields)), dtype=np.float32)
        for position, field in enumerate(self.fields):
            keys = category_keys(frame[field]).to_numpy()
            columns = slice(position * self.width, (position + 1) * self.width)
            for rest, held_out in splits:
                rates, prior = self._rates(keys[rest], targets[rest])
                encoded[held_out, columns] = rates.reindex(keys[held_out]).fillna(dict(enumerate(prior))).to_numpy()
        return encoded

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

    def _rates(self, keys: np.ndarray, targets: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
        """The smoothed rate(s) of each category seen at least ``count_threshold`` times among these
        rows (one row per category, one column per rate), and their prior: the default."""
        prior = targets.mean(axis=0)
        pseudo_counts = self.smooth_factor * len(targets)
        grouped = pd.DataFrame(targets).groupby(keys)
        counts = grouped.size()
        risks = (grouped.sum().to_numpy() + pseudo_counts * prior) / (counts.to_numpy()[:, None] + pseudo_counts)
        kept = counts.to_numpy() >= self.count_threshold
        return pd.DataFrame(risks[kept], index=counts.index[kept]), prior

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


def fold_split(labels: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(other rows, held-out rows) of each of ``folds`` stratified folds, shuffled with ``seed``.

    The split depends on the labels, their order and the seed alone, never on a global random
    state, so every rank and every rerun gets the same one. There are never more folds than the
    largest class has rows; a single fold (no split) comes back as an empty list.
    """
    folds = min(folds, int(np.bincount(labels).max(initial=0)))
    if folds < 2:
        return []
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # a class rarer than the folds is simply absent from some of them
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        return list(splitter.split(np.zeros((len(labels), 1)), labels))


def _all_close(values: np.ndarray, sorted_rates: np.ndarray) -> bool:
    """Every value lies within RATE_TOLERANCE of some rate (both sorted, unique)."""
    right = np.clip(np.searchsorted(sorted_rates, values), 0, len(sorted_rates) - 1)
    left = np.clip(right - 1, 0, len(sorted_rates) - 1)
    close = np.isclose(values, sorted_rates[right], rtol=RATE_TOLERANCE, atol=1e-9)
    return bool(np.all(close | np.isclose(values, sorted_rates[left], rtol=RATE_TOLERANCE, atol=1e-9)))


def _as_value(rates: np.ndarray) -> float | list[float]:
    """One float for a binary rate, a list for multiclass rates (plain JSON either way)."""
    return float(rates[0]) if len(rates) == 1 else [float(r) for r in rates]
