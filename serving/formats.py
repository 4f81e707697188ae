"""Request bodies into rows, prediction rows into response bodies, by content type.

Requests hold rows shaped like the training files; the label column may be there and is ignored.

- ``text/csv``: with a header row, or without one (what batch transform with ``SplitType=Line``
  sends), the values then in ``row_columns`` order (id, text columns, numeric fields, categorical
  fields; the id may be left out), checked by count. A header is recognised when the first row
  names every column the model reads, or at least two of the row's columns (a header that misses
  some: they are then reported by name); ``header=present`` or ``header=absent`` in the content
  type decides it instead.
- ``application/json``: a list of records, or ``{"instances": [...]}`` of records (objects keyed
  by column) or of lists in ``row_columns`` order.
- ``application/jsonlines``: one record (or list) per line.
- Parquet (``application/x-parquet``).

Responses, chosen by ``Accept`` (JSON by default): ``application/json``
``{"predictions": [{...}, ...]}``; ``application/jsonlines``, one object per line; ``text/csv``,
one line per row without a header (so batch transform's ``AssembleWith=Line`` joins the output
line by line to its input) unless ``header=present`` is asked for. Line formats end at their last
row: batch transform adds the newline after each response itself, and a second one would leave a
blank line between mini-batches. Each row holds the id when the request had one, ``prob_<class>``
for every class and ``prediction``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence

import numpy as np
import pandas as pd

CSV = "text/csv"
JSON = "application/json"
JSONLINES = "application/jsonlines"
PARQUET = "application/x-parquet"
ALIASES = {
    "application/x-jsonlines": JSONLINES,
    "application/jsonl": JSONLINES,
    "application/vnd.apache.parquet": PARQUET,
    "application/parquet": PARQUET,
}
REQUEST_TYPES = (CSV, JSON, JSONLINES, PARQUET)
RESPONSE_TYPES = (JSON, JSONLINES, CSV)


class BadRequest(Exception):
    """A request the server cannot read; ``status`` is the HTTP status it gets."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def media_type(header: str | None) -> tuple[str, dict[str, str]]:
    """``text/csv; header=present`` -> (``text/csv``, {"header": "present"}), aliases resolved."""
    kind, _, rest = (header or "").partition(";")
    params = {}
    for part in rest.split(";"):
        key, _, value = part.partition("=")
        if key.strip():
            params[key.strip().lower()] = value.strip().strip('"').lower()
    kind = kind.strip().lower()
    return ALIASES.get(kind, kind), params


def read_rows(
    body: bytes, content_type: str | None, row_columns: Sequence[str], text_columns: Sequence[str]
) -> pd.DataFrame:
    """The rows of a request body; ids and text stay text, as the training job read them.
    ``row_columns`` starts with the id column."""
    kind, params = media_type(content_type)
    if kind not in REQUEST_TYPES:
        raise BadRequest(
            f"Content type {content_type or '(none)'!r} is not one this endpoint reads; "
            f"send {', '.join(REQUEST_TYPES)}.",
            status=415,
        )
    if not body.strip():
        raise BadRequest("The request body is empty; send at least one row.")
    if kind == CSV:
        return _csv(body, params.get("header"), row_columns, text_columns)
    if kind == PARQUET:
        try:
            return pd.read_parquet(io.BytesIO(body))
        except (ValueError, OSError) as exc:
            raise BadRequest(f"The body is not a readable Parquet file ({str(exc).splitlines()[0]}).") from None
    return _records(_json_values(body, kind), row_columns, text_columns)


def _csv(body: bytes, header: str | None, row_columns: Sequence[str], text_columns: Sequence[str]) -> pd.DataFrame:
    try:
        text = body.decode("utf-8")
        first = next(csv.reader(io.StringIO(text)), [])
    except (UnicodeDecodeError, csv.Error) as exc:
        raise BadRequest(f"The CSV body could not be read ({exc}); send UTF-8 CSV.") from None
    named = {field.strip() for field in first} & set(row_columns)
    # a header names what the model reads; one that names only some of it is still a header (the
    # missing columns are then reported by name), where a row of values names at most one by chance
    has_header = header == "present" or (header != "absent" and (set(row_columns[1:]) <= named or len(named) >= 2))
    strings = dict.fromkeys([row_columns[0], *text_columns], str)
    try:
        if has_header:
            return pd.read_csv(io.StringIO(text), dtype=strings)
        frame = pd.read_csv(io.StringIO(text), header=None, dtype=str)
    except (ValueError, pd.errors.ParserError) as exc:
        raise BadRequest(f"The CSV body could not be read: {str(exc).splitlines()[0]}.") from None
    return _positional(frame, row_columns, "CSV row")


def _positional(frame: pd.DataFrame, row_columns: Sequence[str], what: str) -> pd.DataFrame:
    """Rows without column names: their values in ``row_columns`` order, with or without the id."""
    with_id, without_id = list(row_columns), list(row_columns[1:])
    if frame.shape[1] == len(with_id):
        frame.columns = with_id
    elif frame.shape[1] == len(without_id):
        frame.columns = without_id
    else:
        raise BadRequest(
            f"A {what} without column names has {frame.shape[1]} values, and this model reads {len(with_id)} in this "
            f"order: {', '.join(with_id)} (the first, the id, may be left out); send a header row (or records) "
            "to name the columns instead."
        )
    return frame


def _json_values(body: bytes, kind: str) -> list:
    try:
        if kind == JSONLINES:
            return [json.loads(line) for line in body.decode("utf-8").splitlines() if line.strip()]
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest(f"The body is not valid JSON{' lines' if kind == JSONLINES else ''}: {exc}.") from None
    if isinstance(data, dict) and "instances" in data:
        data = data["instances"]
    if not isinstance(data, list):
        raise BadRequest('JSON bodies hold a list of records, or {"instances": [records]}.')
    return data


def _records(values: list, row_columns: Sequence[str], text_columns: Sequence[str]) -> pd.DataFrame:
    if not values:
        raise BadRequest("The request holds no rows; send at least one.")
    if all(isinstance(v, dict) for v in values):
        frame = pd.DataFrame.from_records(values)
    elif all(isinstance(v, list) for v in values):
        widths = {len(v) for v in values}
        if len(widths) != 1:
            raise BadRequest(
                f"The rows given as lists have different lengths {sorted(widths)}; give every row the same."
            )
        frame = _positional(pd.DataFrame(values), row_columns, "row given as a list")
    else:
        raise BadRequest("Each row is an object keyed by column name, or a list of values in the model's order.")
    for column in (c for c in [row_columns[0], *text_columns] if c in frame.columns):
        frame[column] = frame[column].map(lambda v: v if v is None or isinstance(v, str) else str(v))
    return frame


def render(predictions: pd.DataFrame, accept: str | None) -> tuple[bytes, str]:
    """The response body and its content type for ``Accept`` (JSON when absent or ``*/*``)."""
    wanted = [media_type(part) for part in (accept or JSON).split(",")]
    for kind, params in wanted:
        if kind in ("*/*", "application/*", ""):
            kind = JSON
        if kind == JSON:
            return json.dumps({"predictions": _plain(predictions)}).encode(), JSON
        if kind == JSONLINES:
            return "\n".join(json.dumps(row) for row in _plain(predictions)).encode(), JSONLINES
        if kind == CSV:
            header = params.get("header") == "present"
            return predictions.to_csv(index=False, header=header, lineterminator="\n").removesuffix("\n").encode(), CSV
    raise BadRequest(
        f"Accept {accept!r} asks for nothing this endpoint writes; accept one of {', '.join(RESPONSE_TYPES)}.",
        status=406,
    )


def _plain(predictions: pd.DataFrame) -> list[dict]:
    """Rows as JSON-ready dicts (numpy numbers as Python numbers)."""
    rows = predictions.to_dict(orient="records")
    return [{k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()} for row in rows]
