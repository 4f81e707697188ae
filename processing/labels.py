"""Labels -> class indices, strictly: a value that is not a known class is an error, never a guess."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from contracts.errors import DataError
from processing.risk_tables import MISSING_CATEGORY, category_keys

BLANK = {MISSING_CATEGORY, ""}  # keys of missing and empty labels


class LabelEncoder:
    """Maps label values to class indices in the order of ``classes`` (0 and 1 for plain binary).

    Values match by their text form, so 1, 1.0 and "1" are the same class, and True/False count
    as 1/0.
    """

    def __init__(self, classes: Sequence[int | str]):
        self.classes = list(classes)
        self.index_ = {str(c).strip(): i for i, c in enumerate(self.classes)}

    def transform(self, labels: pd.Series, split: str) -> np.ndarray:
        keys = category_keys(labels.astype("int64") if pd.api.types.is_bool_dtype(labels) else labels)
        codes = keys.map(self.index_)
        unknown = keys[codes.isna()]
        if len(unknown):
            counts = unknown.value_counts()
            shown = ", ".join(f"{_show(k)} ({n} rows)" for k, n in counts.head(5).items())
            more = f" and {len(counts) - 5} more" if len(counts) > 5 else ""
            raise DataError(
                f"The {split} file has label values that are not classes of this task: {shown}{more}; "
                f"expected one of {self.classes} ({self._fix(keys, counts.index)})."
            )
        return codes.to_numpy(dtype=np.int64)

    def _fix(self, keys: pd.Series, unknown: pd.Index) -> str:
        """The likely fix: label the missing rows, or name the classes the file uses (when it uses no
        more of them than the task has, they are probably the classes under other names)."""
        if all(k in BLANK for k in unknown):
            return "give those rows a label or remove them"
        used = sorted({_as_label(k) for k in set(keys.unique()) - BLANK}, key=lambda v: (isinstance(v, str), v))
        if len(used) <= len(self.classes):
            return (
                f"if this file's labels {used} are the classes, set multiclass_categories to them in class-index "
                "order, the negative class first for a binary task"
            )
        return "set multiclass_categories/num_classes to match, or clean the labels"


def _as_label(key: str) -> int | str:
    return int(key) if key.lstrip("-").isdigit() else key


def _show(key: str) -> str:
    return {MISSING_CATEGORY: "missing", "": "blank"}.get(key, repr(key))
