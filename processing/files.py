"""Reading and writing the split files (CSV, TSV, Parquet), keeping each file's format.

A channel holds one file, or the shards an upstream step wrote (Spark, Glue and others write
``part-00000.parquet``, ``part-00001.parquet``, ...): without ``<split>_filename`` every data file
of the channel is read, in sorted order, and the shards are joined into one split. Marker and
checksum files (``_SUCCESS``, ``.part-00000.crc``) and hidden files are not data. The shards must
share one format and one set of columns; a shard without a single byte is an error, like an empty
file (a shard with a header and no rows adds nothing).
"""

from __future__ import annotations

import codecs
import hashlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from contracts.errors import DataError
from hyperparams.config import Config
from processing.cache import file_sha256

log = logging.getLogger(__name__)

FORMATS = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet"}
SEPARATORS = {"csv": ",", "tsv": "\t"}
SEPARATOR_NAMES = {",": "commas", "\t": "tabs", ";": "semicolons", "|": "'|'"}


@dataclass(frozen=True)
class SplitFiles:
    """The file or the shards of one split, in reading order, and the rows each held once read."""

    paths: tuple[Path, ...]
    rows: tuple[int, ...] = ()

    @property
    def suffix(self) -> str:
        """The split's format as a file suffix (``.csv``); prediction files keep it."""
        return self.paths[0].suffix.lower()

    def sha256(self) -> str:
        """The file's SHA-256; for shards, the SHA-256 of their names and SHA-256s in order."""
        if len(self.paths) == 1:
            return file_sha256(self.paths[0])
        digest = hashlib.sha256()
        for path in self.paths:
            digest.update(f"{path.name}\0{file_sha256(path)}\n".encode())
        return digest.hexdigest()

    def __str__(self) -> str:
        if len(self.paths) == 1:
            return str(self.paths[0])
        names = [p.name for p in self.paths]
        shown = ", ".join(names[:3]) + (f", ... {names[-1]}" if len(names) > 3 else "")
        return f"{self.paths[0].parent} ({len(names)} shards: {shown})"


def find_split_files(directory: Path, configured_name: str | None, split: str) -> SplitFiles:
    """The configured file, or every data file of the channel in sorted order (all of one format)."""
    if not directory.is_dir():
        raise DataError(f"The {split} data folder {directory} does not exist; put the {split} split there.")
    present = sorted(p.name for p in directory.iterdir())
    if configured_name:
        path = directory / configured_name
        if not path.is_file():
            raise DataError(
                f"{split}_filename is {configured_name!r} but {directory} holds only {present}; fix the name."
            )
        file_format(path)
        return SplitFiles((path,))
    files = [directory / name for name in present if (directory / name).is_file() and not _marker_file(name)]
    data = [path for path in files if path.suffix.lower() in FORMATS]
    if not data:
        raise DataError(
            f"No .csv, .tsv or .parquet file in the {split} folder {directory} (found {present or 'nothing'}); "
            f"add the {split} split there or set {split}_filename."
        )
    formats = sorted({FORMATS[path.suffix.lower()] for path in data})
    if len(formats) > 1:
        by_format = "; ".join(
            f"{fmt}: {', '.join(p.name for p in data if FORMATS[p.suffix.lower()] == fmt)}" for fmt in formats
        )
        raise DataError(
            f"The {split} folder {directory} mixes formats ({by_format}); keep the shards of one format there, "
            f"or set {split}_filename to the file to read."
        )
    others = [path.name for path in files if path not in data]
    if others:
        log.info("The %s folder %s also holds %s, which are not data files; not read", split, directory, others)
    return SplitFiles(tuple(data))


def _marker_file(name: str) -> bool:
    """Files upstream writers leave beside the data: _SUCCESS and the like, checksums, hidden files."""
    return name.startswith((".", "_")) or name.endswith(".crc")


def file_format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(f"{path.name} is not a .csv, .tsv or .parquet file; convert it to one of those.")
    return fmt


def read_table(path: Path, string_columns: list[str] = ()) -> pd.DataFrame:
    """Read a split file; an empty or unreadable file is a DataError naming the file and the fix.

    ``string_columns`` (ids, text) are read as text from CSV/TSV, so ``00123`` keeps its zeros.
    """
    return next(read_table_in_chunks(path, string_columns))


def read_table_in_chunks(path: Path, string_columns: list[str] = (), rows: int | None = None) -> Iterator[pd.DataFrame]:
    """The file's rows in frames of at most ``rows`` (one frame for None), checked as ``read_table``
    checks them; a file with a header and no rows gives one empty frame."""
    fmt = file_format(path)
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty; it must hold a header row and at least one data row.")
    try:
        _check_unique(_header(path, fmt), path)
        first = True
        for frame in _frames(path, fmt, string_columns, rows):
            if first:
                _check_separator(frame, path, fmt)
                first = False
            yield frame
    except UnicodeDecodeError:
        raise DataError(_not_utf8(path)) from None
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        reason = str(exc).split("\n")[0].rstrip(".")
        cause = "cut short, or not Parquet at all" if fmt == "parquet" else "cut short, or hold an unclosed quote"
        raise DataError(
            f"{path} could not be read as {fmt.upper()}: {reason}. Write it again (it may be {cause})."
        ) from exc


def _frames(path: Path, fmt: str, string_columns: list[str], rows: int | None) -> Iterator[pd.DataFrame]:
    if fmt == "parquet":
        if rows is None:
            yield pd.read_parquet(path)
            return
        source = pq.ParquetFile(path)
        batches = source.iter_batches(batch_size=rows)
        for batch in batches:
            yield pa.Table.from_batches([batch]).to_pandas()
        if source.metadata.num_rows == 0:
            yield source.schema_arrow.empty_table().to_pandas()
        return
    options = {"sep": SEPARATORS[fmt], "dtype": dict.fromkeys(string_columns, str), "low_memory": False}
    if rows is None:
        yield pd.read_csv(path, **options)
        return
    empty = True
    with pd.read_csv(path, chunksize=rows, **options) as reader:
        for frame in reader:
            empty = False
            yield frame
    if empty:
        yield pd.read_csv(path, nrows=0, **options)


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


class ChunkedTableWriter:
    """Writes frames one after the other into one file of the path's format; the file appears under
    its name only when every frame is written (a failure leaves no partial file)."""

    def __init__(self, path: Path):
        self.path = path
        self.format = file_format(path)
        self.partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        self._parquet: pq.ParquetWriter | None = None
        self._written = False

    def write(self, frame: pd.DataFrame) -> None:
        if self.format == "parquet":
            if self._parquet is None:
                table = pa.Table.from_pandas(frame, preserve_index=False)
                self._parquet = pq.ParquetWriter(self.partial, table.schema)
            else:
                table = pa.Table.from_pandas(frame, schema=self._parquet.schema, preserve_index=False)
            self._parquet.write_table(table)
        else:
            frame.to_csv(self.partial, sep=SEPARATORS[self.format], index=False, header=not self._written,
                         mode="a" if self._written else "w")
        self._written = True

    def __enter__(self) -> ChunkedTableWriter:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if self._parquet is not None:
            self._parquet.close()
        if kind is None and self._written:
            os.replace(self.partial, self.path)
        else:
            self.partial.unlink(missing_ok=True)


def read_split(files: SplitFiles, string_columns: list[str] = ()) -> tuple[pd.DataFrame, SplitFiles]:
    """The split's rows (the shards joined in order), and the files with the rows each held."""
    frames = [read_table(path, string_columns) for path in files.paths]
    if len(frames) == 1:
        return frames[0], replace(files, rows=(len(frames[0]),))
    columns = list(frames[0].columns)
    for path, frame in zip(files.paths[1:], frames[1:]):
        if set(frame.columns) != set(columns):
            extra = [str(c) for c in frame.columns if c not in columns]
            lacking = [str(c) for c in columns if c not in frame.columns]
            differences = [f"it has {extra} in addition"] if extra else []
            differences += [f"it lacks {lacking}"] if lacking else []
            raise DataError(
                f"Shard {path} has other columns than {files.paths[0].name}: {'; '.join(differences)}. "
                "Every shard of a split must have the same columns; write them again with one schema."
            )
    log.info("Read %d shards into one split: %s", len(frames), files)
    joined = pd.concat([frame[columns] for frame in frames], ignore_index=True)
    return joined, replace(files, rows=tuple(len(frame) for frame in frames))


def read_splits(channels: dict[str, Path], config: Config) -> tuple[dict[str, SplitFiles], dict[str, pd.DataFrame]]:
    """The files of each split and their rows; ids and text read as text (CSV/TSV), so ``00123`` keeps its zeros."""
    names = {"train": config.train_filename, "val": config.val_filename, "test": config.test_filename}
    string_columns = [config.id_name, *config.text_fields.values()]
    files, frames = {}, {}
    for split, directory in channels.items():
        frames[split], files[split] = read_split(find_split_files(directory, names.get(split), split), string_columns)
    return files, frames
