"""The ``model_artifacts_input`` channel: what upstream pipeline steps hand over to the job.

- ``USE_PRECOMPUTED_IMPUTATION`` / ``USE_PRECOMPUTED_RISK_TABLES`` true: ``impute_dict`` /
  ``risk_table_map`` come from that folder instead of being fitted on train. ``.json`` is read
  when present, else ``.pkl`` through :mod:`processing.safe_pickle`, so a pickle from another step
  cannot run code here. A flag set with its artifact missing is an error: refitting silently would
  train a model whose preprocessing differs from the rest of the pipeline's.
- An upstream step may already have *applied* its risk tables to the split files; see
  :class:`processing.risk_tables.GivenRiskTables`. Imputation needs no such check: it only fills
  missing values, so a column imputed upstream has nothing left to fill.
- ``selected_features.json``, when present, keeps only the fields it names in ``tab_field_list``
  and ``cat_field_list``. Its format: a JSON list of column names, or an object whose
  ``"selected_features"`` entry is that list (other entries are ignored).

The result is a new, validated Config: the given artifacts become its ``imputation_dict`` and
``risk_tables``, so the rest of the job reads one configuration.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from contracts.environment import RunSwitches
from contracts.errors import ConfigError, DataError
from hyperparams.config import Config
from hyperparams.loading import validate_config
from processing.risk_tables import category_keys
from processing.safe_pickle import load_plain_pickle

log = logging.getLogger(__name__)

IMPUTATION = "impute_dict"
RISK_TABLES = "risk_table_map"
SELECTED_FEATURES = "selected_features.json"


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


@dataclass(frozen=True)
class UpstreamInputs:
    config: Config  # with the feature selection applied and the given artifacts filled in
    files: list[Path]  # every file of the channel that was read, for the lineage


def apply_upstream_inputs(config: Config, directory: Path, switches: RunSwitches) -> UpstreamInputs:
    """The config with the upstream feature selection applied and precomputed artifacts filled in."""
    read: list[Path] = []
    selected = read_selected_features(directory)
    if selected is not None:
        read.append(directory / SELECTED_FEATURES)
        config = restrict_to_selection(config, selected, directory / SELECTED_FEATURES)
    given: dict[str, Any] = {}
    artifacts = (  # (switched on, file stem, its switch, the Config field it fills, its reader)
        (switches.use_precomputed_imputation, IMPUTATION, "USE_PRECOMPUTED_IMPUTATION", "imputation_dict",
         _imputation_values),
        (switches.use_precomputed_risk_tables, RISK_TABLES, "USE_PRECOMPUTED_RISK_TABLES", "risk_tables", _risk_tables),
    )
    for wanted, stem, flag, field, parse in artifacts:
        if not wanted:
            _note_unused(directory, stem, flag)
            continue
        path = _required_artifact(directory, stem, flag, config, field)
        given[field] = parse(load_artifact(path), path, config)
        read.append(path)
    for field, values in given.items():
        log.info("Using precomputed %s for %s instead of fitting on train", field, sorted(values))
    return UpstreamInputs(revalidated(config, given, f"the upstream artifacts in {directory}"), read)


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
    return revalidated(config, updates, str(path))


def revalidated(config: Config, updates: dict[str, Any], source: str) -> Config:
    """The config with ``updates``, checked by every rule of the Config again."""
    if not updates:
        return config
    try:
        return validate_config({**config.model_dump(exclude_unset=True), **updates})
    except ConfigError as exc:
        raise ConfigError(f"After applying {source}: {exc}") from None


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
