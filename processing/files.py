"""Reading and writing the split files (CSV, TSV, Parquet), keeping each file's format."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from contracts import DataError
from hyperparams import Config

FORMATS = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet"}


def find_data_file(directory: Path, configured_name: str | None, split: str) -> Path:
    """The configured file, or the first .csv/.tsv/.parquet file in sorted order."""
    if not directory.is_dir():
        raise DataError(f"The {split} data folder {directory} does not exist; put the {split} split there.")
    if configured_name:
        path = directory / configured_name
        if not path.is_file():
            present = sorted(p.name for p in directory.iterdir())
            raise DataError(f"{split}_filename is {configured_name!r} but {directory} holds only {present}; fix the name.")
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
    """Read a split file; an empty or unreadable file is a DataError naming the file.

    ``string_columns`` (ids, text) are read as text from CSV/TSV, so ``00123`` keeps its zeros.
    """
    fmt = file_format(path)
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty; it must hold a header row and at least one data row.")
    try:
        if fmt == "parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(
                path, sep="\t" if fmt == "tsv" else ",", dtype=dict.fromkeys(string_columns, str), low_memory=False
            )
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise DataError(f"{path} could not be read as {fmt.upper()}: {exc}".split("\n")[0]) from exc
    return frame


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """Write in the format named by the path's suffix (the input file's own format)."""
    fmt = file_format(path)
    if fmt == "parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, sep="\t" if fmt == "tsv" else ",", index=False)


def load_splits(channels: dict[str, Path], filenames: dict[str, str | None], string_columns: list[str]):
    """Find and read the train/val/test files: ({split: path}, {split: frame})."""
    files = {split: find_data_file(directory, filenames.get(split), split) for split, directory in channels.items()}
    frames = {split: read_table(path, string_columns) for split, path in files.items()}
    return files, frames


def read_splits(channels: dict[str, Path], config: Config):
    """The configured (or first) file of each split; ids and text read as text."""
    filenames = {"train": config.train_filename, "val": config.val_filename, "test": config.test_filename}
    return load_splits(channels, filenames, string_columns=[config.id_name, *config.text_fields.values()])
