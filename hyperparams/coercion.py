"""Turn hyperparameter values as SageMaker delivers them into Python values.

SageMaker writes every hyperparameter as a string: framework estimators JSON-encode values
(``"\\"uid\\""``, ``"[\\"a\\", \\"b\\"]"``, ``"true"``) and the generic estimator uses ``str()``
(``"False"``, ``"['a', 'b']"``). Strings are parsed with ``json.loads`` or ``ast.literal_eval``
only; nothing is evaluated as code. A field that expects text keeps its string unless the string
is itself a JSON-quoted string.
"""

from __future__ import annotations

import ast
import json
from typing import Any

_BOOLEANS = {"true": True, "false": False}
_NONES = {"none", "null"}


def coerce_text(value: Any) -> Any:
    """For text fields: unwrap a JSON-quoted string (``'"uid"'`` -> ``'uid'``), keep anything else."""
    if isinstance(value, str):
        stripped = value.strip()
        if len(stripped) >= 2 and stripped[0] == stripped[-1] == '"':
            try:
                decoded = json.loads(stripped)
            except ValueError:
                return value
            if isinstance(decoded, str):
                return decoded
    return value


def coerce_literal(value: Any) -> Any:
    """For non-text fields: parse a string into the bool, number, list, dict or None it spells.

    Strings that parse as nothing are returned unchanged so validation can report them as they
    were given.
    """
    if not isinstance(value, str):
        return value
    stripped = value.strip()
    lowered = stripped.lower()
    if lowered in _BOOLEANS:
        return _BOOLEANS[lowered]
    if lowered in _NONES:
        return None
    for parse in (json.loads, ast.literal_eval):
        try:
            parsed = parse(stripped)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        return parsed
    return value
