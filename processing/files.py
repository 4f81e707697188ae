"""Reading and writing the split files (CSV, TSV, Parquet), keeping each file's format."""

from __future__ import annotations

import codecs
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from contracts.errors import DataError
from hyperparams.config import Config

FORMATS = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet"}
SEPARATORS = {"csv": ",", "tsv": "\t"}
SEPARATOR_NAMES = {",": "commas", "\t": "tabs", ";": "semicolons", "|": "'|'"}


def find_data_file(directory: Path, configured_name: str | None, split: str) -> Path:
    """The configured file, or the first .csv/.tsv/.parquet file in sorted order."""
    if not directory.is_dir():
        raise DataError(f"The {split} data folder {directory} does not exist; put the {split} split there.")
    if configured_name:
        path = directory / configured_name
        if not path.is_file():
            present = sorted(p.name for p in directory.iterdir())
            raise DataError(
                f"{split}_filename is {configured_name!r} but {directory} holds only {present}; fix the name."
            )
        file_format(path)
        return path
    for path in sorted(directory.iterdir()):
        if path.is_file() and path.suffix.lower() in FORMATS:
            return path
    present = sorted(p.name for p in directory.iterdir())
    raise DataError(
        f"No .csv, .tsv or .parquet file in the {split} folder {directory} (found {present or 'nothing'}); "
        f"add the {split} split there or set {split}_filename."
    )


def file_format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(f"{path.name} is not a .csv, .tsv or .parquet file; convert it to one of those.")
    return fmt


def read_table(path: Path, string_columns: list[str] = ()) -> pd.DataFrame:
    """Read a split file; an empty or unreadable file is a DataError naming the file and the fix.

    ``string_columns`` (ids, text) are read as text from CSV/TSV, so ``00123`` keeps its zeros.
    """
    fmt = file_format(path)
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty; it must hold a header row and at least one data row.")
    try:
        _check_unique(_header(path, fmt), path)
        if fmt == "parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, sep=SEPARATORS[fmt], dtype=dict.fromkeys(string_columns, str), low_memory=False)
    except UnicodeDecodeError:
        raise DataError(_not_utf8(path)) from None
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        reason = str(exc).split("\n")[0].rstrip(".")
        cause = "cut short, or not Parquet at all" if fmt == "parquet" else "cut short, or hold an unclosed quote"
        raise DataError(
            f"{path} could not be read as {fmt.upper()}: {reason}. Write it again (it may be {cause})."
        ) from exc
    _check_separator(frame, path, fmt)
    return frame


def _header(path: Path, fmt: str) -> list[str]:
    """The column names exactly as the file spells them (pandas renames a repeated ``a`` to ``a.1``)."""
    if fmt == "parquet":
        return list(pq.read_schema(path).names)
    first = pd.read_csv(path, sep=SEPARATORS[fmt], header=None, nrows=1, dtype=str).iloc[0]
    return [str(name) for name in first.dropna()]


def _check_unique(header: list[str], path: Path) -> None:
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise DataError(
            f"{path} has more than one column named {', '.join(map(repr, repeated))}, so the job cannot tell which "
            "to use; rename or remove the extra column(s)."
        )


def _check_separator(frame: pd.DataFrame, path: Path, fmt: str) -> None:
    """A CSV/TSV that reads as one column whose name holds another separator was saved with the wrong one."""
    if fmt == "parquet" or len(frame.columns) != 1:
        return
    name = str(frame.columns[0])
    used = next((sep for sep in SEPARATOR_NAMES if sep != SEPARATORS[fmt] and sep in name), None)
    if used is None:
        return
    wanted = SEPARATOR_NAMES[SEPARATORS[fmt]]
    rename = "".join(f" or rename it to .{other}" for other, sep in SEPARATORS.items() if sep == used)
    raise DataError(
        f"{path} reads as a single column {name[:60]!r}: it is separated by {SEPARATOR_NAMES[used]}, but a .{fmt} "
        f"file must be separated by {wanted}; save it with {wanted}{rename}."
    )


def _not_utf8(path: Path) -> str:
    with path.open("rb") as stream:
        utf16 = stream.read(2) in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
    if utf16:
        problem = "is UTF-16 text, not UTF-8"
    else:
        line, byte = _first_invalid_utf8(path)
        problem = f"is not UTF-8 text: line {line} holds the byte {byte!r}, which UTF-8 does not allow"
    return (
        f'{path} {problem}; save it as UTF-8 (Excel: "CSV UTF-8"; or convert it, e.g. '
        f"iconv -f cp1252 -t utf-8 {path.name})."
    )


def _first_invalid_utf8(path: Path, block: int = 1 << 20) -> tuple[int, bytes]:
    """Line (from 1) and value of the first byte that is not valid UTF-8, read block by block."""
    line, carry = 1, b""
    with path.open("rb") as stream:
        while True:
            chunk = stream.read(block)
            data, carry = carry + chunk, b""
            try:
                data.decode("utf-8")
            except UnicodeDecodeError as exc:
                if not (chunk and exc.reason == "unexpected end of data"):
                    return line + data.count(b"\n", 0, exc.start), data[exc.start : exc.start + 1]
                data, carry = data[: exc.start], data[exc.start :]  # a character cut by the block boundary
            if not chunk:
                return line, b""
            line += data.count(b"\n")


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """Write in the format named by the path's suffix (the input file's own format)."""
    fmt = file_format(path)
    if fmt == "parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, sep=SEPARATORS[fmt], index=False)


def load_splits(channels: dict[str, Path], filenames: dict[str, str | None], string_columns: list[str]):
    """Find and read the train/val/test files: ({split: path}, {split: frame})."""
    files = {split: find_data_file(directory, filenames.get(split), split) for split, directory in channels.items()}
    frames = {split: read_table(path, string_columns) for split, path in files.items()}
    return files, frames


def read_splits(channels: dict[str, Path], config: Config):
    """The configured (or first) file of each split; ids and text read as text."""
    filenames = {"train": config.train_filename, "val": config.val_filename, "test": config.test_filename}
    return load_splits(channels, filenames, string_columns=[config.id_name, *config.text_fields.values()])
