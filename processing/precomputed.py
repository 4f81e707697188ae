"""Preprocessing handed over by upstream pipeline steps, read from the ``model_artifacts_input`` channel.

- ``USE_PRECOMPUTED_IMPUTATION`` / ``USE_PRECOMPUTED_RISK_TABLES`` true: ``impute_dict`` /
  ``risk_table_map`` come from that folder instead of being fitted on train. ``.json`` is read
  when present, else ``.pkl`` through :class:`PlainDataUnpickler`, which builds nothing but
  containers, strings and numbers, so a pickle from another step cannot run code here. A flag set
  with its artifact missing is an error: refitting silently would train a model whose
  preprocessing differs from the rest of the pipeline's.
- An upstream step may already have *applied* its risk tables to the split files. Such a column
  holds the tables' rates instead of categories; :class:`GivenRiskTables` passes it through
  instead of mapping it a second time. Imputation needs no such check: it only fills missing
  values, so a column imputed upstream has nothing left to fill.
- ``selected_features.json``, when present, keeps only the fields it names in ``tab_field_list``
  and ``cat_field_list``. Its format: a JSON list of column names, or an object whose
  ``"selected_features"`` entry is that list (other entries are ignored).
"""

from __future__ import annotations

import io
import json
import logging
import math
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from contracts import ConfigError, DataError, RunSwitches
from hyperparams import Config, validate_config
from processing.tabular import RiskTableEncoder, category_keys

log = logging.getLogger(__name__)

IMPUTATION = "impute_dict"
RISK_TABLES = "risk_table_map"
SELECTED_FEATURES = "selected_features.json"
# Rates read back from CSV or float32 differ from the table's in the last digits only.
RATE_TOLERANCE = 1e-6


class PlainDataUnpickler(pickle.Unpickler):
    """Unpickles containers, strings and numbers (numpy scalars included); refuses every other class
    or function, which is how a pickle would otherwise run code while loading."""

    ALLOWED = {
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("collections", "OrderedDict"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"it references {module}.{name}")


def load_plain_pickle(path: Path) -> Any:
    try:
        return PlainDataUnpickler(io.BytesIO(path.read_bytes())).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise DataError(
            f"{path} was not loaded: {exc}. Only plain dicts, lists, strings and numbers are read from a pickle; "
            f"write the artifact as {path.with_suffix('.json').name} instead."
        ) from None


def find_artifact(directory: Path, stem: str) -> Path | None:
    """``stem.json`` when it exists (preferred: it cannot run code), else ``stem.pkl``, else None."""
    for suffix in (".json", ".pkl"):
        path = directory / f"{stem}{suffix}"
        if path.is_file():
            return path
    return None


def load_artifact(path: Path) -> Any:
    if path.suffix == ".pkl":
        return load_plain_pickle(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path} is not valid UTF-8 JSON ({exc}); rewrite it or remove it.") from None


def read_selected_features(directory: Path) -> list[str] | None:
    path = directory / SELECTED_FEATURES
    if not path.is_file():
        return None
    data = load_artifact(path)
    names = data.get("selected_features") if isinstance(data, dict) else data
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise DataError(
            f"{path} must hold a JSON list of column names, or an object whose \"selected_features\" is that list."
        )
    return names


def apply_pipeline_inputs(config: Config, directory: Path, switches: RunSwitches) -> Config:
    """The config with the upstream feature selection applied and precomputed artifacts filled in."""
    selected = read_selected_features(directory)
    if selected is not None:
        config = restrict_to_selection(config, selected, directory / SELECTED_FEATURES)
    given: dict[str, Any] = {}
    if switches.use_precomputed_imputation:
        path = _required_artifact(directory, IMPUTATION, "USE_PRECOMPUTED_IMPUTATION", config, "imputation_dict")
        given["imputation_dict"] = _imputation_values(load_artifact(path), path, config)
    else:
        _note_unused(directory, IMPUTATION, "USE_PRECOMPUTED_IMPUTATION")
    if switches.use_precomputed_risk_tables:
        path = _required_artifact(directory, RISK_TABLES, "USE_PRECOMPUTED_RISK_TABLES", config, "risk_tables")
        given["risk_tables"] = _risk_tables(load_artifact(path), path, config)
    else:
        _note_unused(directory, RISK_TABLES, "USE_PRECOMPUTED_RISK_TABLES")
    for field, values in given.items():
        log.info("Using precomputed %s for %s instead of fitting on train", field, sorted(values))
    return config.model_copy(update=given)


def pipeline_input_files(directory: Path, switches: RunSwitches) -> list[Path]:
    """The files of ``directory`` that ``apply_pipeline_inputs`` reads under ``switches``, for the lineage."""
    read = [directory / SELECTED_FEATURES]
    if switches.use_precomputed_imputation:
        read.append(find_artifact(directory, IMPUTATION))
    if switches.use_precomputed_risk_tables:
        read.append(find_artifact(directory, RISK_TABLES))
    return [path for path in read if path is not None and path.is_file()]


def restrict_to_selection(config: Config, selected: list[str], path: Path) -> Config:
    """Keep only the selected tabular fields (in full_field_list too, so the split files need not
    hold the dropped ones); text, id and label columns are never dropped."""
    keep = set(selected)
    tabular = [*config.tab_field_list, *config.cat_field_list]
    updates: dict[str, Any] = {
        name: [f for f in getattr(config, name) if f in keep] for name in ("tab_field_list", "cat_field_list")
    }
    if config.categorical_features_to_encode is not None:
        updates["categorical_features_to_encode"] = [f for f in config.categorical_features_to_encode if f in keep]
    dropped = [f for f in tabular if f not in keep]
    updates["full_field_list"] = [f for f in config.full_field_list if f not in dropped]
    if config.uses_tabular and not (updates["tab_field_list"] or updates["cat_field_list"]):
        raise ConfigError(
            f"{path} selects none of the tabular fields {tabular} of model_class {config.model_class}; "
            "select at least one of them, remove the file, or use model_class bert or lstm for text only."
        )
    if dropped and config.input_tab_dim is not None:
        updates["input_tab_dim"] = None
        log.info("input_tab_dim=%d no longer applies after the selection; it is derived again", config.input_tab_dim)
    log.info("Feature selection %s keeps %s; drops %s", path, [f for f in tabular if f in keep], dropped or "nothing")
    unknown = [f for f in selected if f not in tabular]
    if unknown:
        log.warning(
            "Feature selection %s names %s, which are not in tab_field_list or cat_field_list; ignored", path, unknown
        )
    try:
        return validate_config({**config.model_dump(), **updates})
    except ConfigError as exc:
        raise ConfigError(f"After applying {path}: {exc}") from None


def _required_artifact(directory: Path, stem: str, flag: str, config: Config, field: str) -> Path:
    if getattr(config, field) is not None:
        raise ConfigError(
            f"{flag} is true and the hyperparameter {field} is set too; remove {field} or set {flag}=false."
        )
    path = find_artifact(directory, stem)
    if path is None:
        raise DataError(
            f"{flag} is true but {directory} has no {stem}.json or {stem}.pkl; add the upstream step's output to "
            f"the model_artifacts_input channel, or set {flag}=false to fit on train."
        )
    return path


def _note_unused(directory: Path, stem: str, flag: str) -> None:
    path = find_artifact(directory, stem)
    if path is not None:
        log.info("%s is present but %s is false; fitting on train instead", path, flag)


def _imputation_values(data: Any, path: Path, config: Config) -> dict[str, float]:
    if not isinstance(data, Mapping):
        raise DataError(
            f"{path} must map each numeric field to its imputation value, not hold a {type(data).__name__}."
        )
    needed = [*config.tab_field_list, *config.passthrough_categorical_fields] if config.uses_tabular else []
    _require_fields(data, needed, path, "an imputation value")
    return {field: _number(data[field], path, field) for field in needed}


def _risk_tables(data: Any, path: Path, config: Config) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise DataError(f"{path} must map each categorical field to {{'bins': {{...}}, 'default_bin': rate}}.")
    needed = config.encoded_categorical_fields if config.uses_tabular else []
    _require_fields(data, needed, path, "a risk table")
    tables = {}
    for field in needed:
        table = data[field]
        problem = _risk_table_problem(table)
        if problem:
            raise DataError(
                f"The risk table for {field!r} in {path} {problem}; it must look like "
                "{'bins': {category: rate}, 'default_bin': rate}."
            )
        keys = category_keys(pd.Series(list(table["bins"]))).tolist()
        rates = [_rate(v, path, field) for v in table["bins"].values()]
        tables[field] = {"bins": dict(zip(keys, rates)), "default_bin": _rate(table["default_bin"], path, field)}
    return tables


def _risk_table_problem(table: Any) -> str | None:
    if not isinstance(table, Mapping):
        return f"is a {type(table).__name__}"
    if "bins" not in table or "default_bin" not in table:
        return f"has no {' and no '.join(repr(k) for k in ('bins', 'default_bin') if k not in table)}"
    if not isinstance(table["bins"], Mapping):
        return f"has 'bins' as a {type(table['bins']).__name__}, not a mapping"
    return None


def _require_fields(data: Mapping, needed: list[str], path: Path, what: str) -> None:
    missing = [f for f in needed if f not in data]
    if missing:
        raise DataError(f"{path} has no entry for {missing}; the upstream step must provide {what} for each of them.")


def _number(value: Any, path: Path, field: str) -> float:
    if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
        if math.isfinite(value):
            return float(value)
        raise DataError(
            f"{path}: the value for {field!r} is {value!r}; it must be a finite number, so fix the upstream step."
        )
    raise DataError(f"{path}: the value for {field!r} must be a number, not {value!r}.")


def _rate(value: Any, path: Path, field: str) -> float | list[float]:
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_number(v, path, field) for v in value]
    return _number(value, path, field)


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
