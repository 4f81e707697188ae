"""Find, merge and validate the job's hyperparameters.

Two files can hold them: ``code/hyperparams/hyperparameters.json`` (shipped with the code) and
``input/config/hyperparameters.json`` (written by SageMaker for the job). When both exist the
job's values override the shipped ones key by key, so a training job or tuning job can change a
few values of a shipped configuration. The platform's own keys (``sagemaker_*`` and
``_tuning_objective_metric``, see ``contracts.platform``) are set aside and logged.
"""

from __future__ import annotations

import difflib
import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from contracts.errors import ConfigError
from contracts.paths import ContractPaths
from contracts.platform import is_platform_key
from hyperparams.config import Config

log = logging.getLogger(__name__)



def load_config(paths: ContractPaths) -> Config:
    """Read the hyperparameter files of the contract and return a validated Config."""
    return validate_config(read_hyperparameters([paths.code_hyperparameters, paths.job_hyperparameters]))


def read_hyperparameters(candidates: Iterable[Path]) -> dict[str, Any]:
    """Merge the existing files in order (later files win), without the platform's keys."""
    merged: dict[str, Any] = {}
    found = []
    for path in candidates:
        if not path.is_file():
            continue
        found.append(path)
        merged.update(_read_json_object(path))
    if not found:
        names = " or ".join(str(p) for p in candidates)
        raise ConfigError(f"No hyperparameters file found; write one to {names}.")
    log.info("Hyperparameters from %s", ", ".join(str(p) for p in found))
    platform = sorted(k for k in merged if is_platform_key(k))
    if platform:
        log.info("Ignoring the platform's own hyperparameters: %s", ", ".join(platform))
    return {k: v for k, v in merged.items() if not is_platform_key(k)}


def validate_config(raw: dict[str, Any]) -> Config:
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem, the first one first; each names the field and what to do."""
    problems = [_describe(errors) for errors in _group_by_field(exc.errors(include_url=False))]
    head = problems[0]
    if len(problems) > 1:
        head += f" ({len(problems) - 1} more problem{'s' if len(problems) > 2 else ''} listed below)"
    return "\n".join([head, *problems[1:]])


# What to write instead, for errors whose message says only what is wrong.
_TYPE_HINTS = {
    "bool_parsing": "use true or false",
    "bool_type": "use true or false",
    "int_parsing": "use a whole number, e.g. 32",
    "int_type": "use a whole number, e.g. 32",
    "int_from_float": "use a whole number, e.g. 32",
    "float_parsing": "use a number, e.g. 2e-05",
    "float_type": "use a number, e.g. 2e-05",
    "list_type": 'use a JSON list, e.g. ["a", "b"]',
    "dict_type": 'use a JSON object, e.g. {"a": 1}',
    "string_type": 'use a text value, e.g. "name"',
}


def _group_by_field(errors: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """A value that fits none of a union's types yields one error per type: keep them together."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for error in errors:
        groups.setdefault(_field_path(error["loc"]), []).append(error)
    return list(groups.values())


def _describe(errors: list[dict[str, Any]]) -> str:
    error = errors[0]
    loc = error["loc"]
    field = _field_path(loc)
    kind = error["type"]
    if kind == "extra_forbidden":
        guess = difflib.get_close_matches(str(loc[0]), Config.model_fields, n=1)
        hint = f"did you mean {guess[0]!r}? " if guess else ""
        return f"Unknown hyperparameter {field!r}: {hint}Remove it or fix its spelling."
    if kind == "missing":
        return f"Required hyperparameter {field!r} is missing; add it to hyperparameters.json."
    message = error["msg"].removeprefix("Value error, ")
    if not loc:
        return f"Invalid hyperparameters: {message}."
    alternatives = [e["msg"].removeprefix("Input should be ") for e in errors[1:]]
    if alternatives:
        message = f"{message}, or {' or '.join(alternatives)}"
    elif kind in _TYPE_HINTS:
        message = f"{message}; {_TYPE_HINTS[kind]}"
    return f"Invalid hyperparameter {field!r} = {_show(error.get('input'))}: {message}."


def _field_path(loc: tuple) -> str:
    path = str(loc[0]) if loc else ""
    for part in loc[1:]:
        if isinstance(part, int):
            path += f"[{part}]"
        elif not str(part).startswith(("literal[", "int", "str", "float", "function-", "bool")):
            path += f".{part}"
    return path


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _read_json_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"Hyperparameters file {path} is not UTF-8 text ({exc.reason}); save it as UTF-8 JSON."
        ) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"Hyperparameters file {path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}."
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"Hyperparameters file {path} must hold a JSON object of name: value pairs, not {type(data).__name__}."
        )
    return data
