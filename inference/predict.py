"""Batch prediction with a trained model: its ``model/`` folder or the ``model.tar.gz`` of the job.

    python -m inference.predict --model model.tar.gz --input new.csv [--output scored.csv]
                                [--engine onnx|torch] [--threshold 0.5] [--chunk-rows 50000]

Scores a CSV, TSV or Parquet file the way the training job scored its test split (see
:mod:`inference.saved_model`) and writes the prediction rows (id, the label if the file has one,
``prob_<class>``, ``prediction``) in the input's format, by default beside the input as
``<name>_predictions.<format>``. The file is read, scored and written ``--chunk-rows`` rows at a
time, so memory stays bounded whatever its size; the output appears only once complete. Exits 1
with a one-line reason on bad input.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from contracts.errors import ConfigError, UserError
from contracts.logs import configure_logging
from inference.outputs import DEFAULT_THRESHOLD
from inference.saved_model import ENGINES, SavedModel
from processing.files import ChunkedTableWriter, file_format, read_table_in_chunks

log = logging.getLogger("inference.predict")


CHUNK_ROWS = 50_000  # rows read, scored and written at a time: bounds memory, keeps the batches large


def score_file(
    model: Path,
    input_path: Path,
    output_path: Path | None = None,
    engine: str = "onnx",
    threshold: float = DEFAULT_THRESHOLD,
    device: str = "cpu",
    chunk_rows: int = CHUNK_ROWS,
) -> Path:
    """Score ``input_path`` with the model in ``model`` (folder or ``model.tar.gz``); returns the
    written prediction file."""
    if engine not in ENGINES:
        raise ConfigError(f"engine {engine!r} is not one of {list(ENGINES)}.")
    if chunk_rows < 1:
        raise ConfigError(f"--chunk-rows is {chunk_rows}; give a positive number of rows.")
    output = _output_path(input_path, output_path)
    saved = SavedModel.load(model)
    config = saved.config
    rows = 0
    output.parent.mkdir(parents=True, exist_ok=True)
    with ChunkedTableWriter(output) as writer:
        string_columns = [config.id_name, *config.text_fields.values()]
        for frame in read_table_in_chunks(input_path, string_columns, chunk_rows):
            if rows == 0 or len(frame):
                saved.check_rows(frame, str(input_path), allow_empty=rows > 0)
                writer.write(saved.predictions(frame, saved.probabilities(frame, engine, device), threshold))
                rows += len(frame)
    log.info("Scored %d rows of %s with %s: %s", rows, input_path, engine, output)
    return output


def _output_path(input_path: Path, output_path: Path | None) -> Path:
    """The output keeps the input's format; a folder receives ``<input name>_predictions.<format>``."""
    file_format(input_path)
    default_name = f"{input_path.stem}_predictions{input_path.suffix.lower()}"
    if output_path is None:
        return input_path.parent / default_name
    if output_path.is_dir():
        return output_path / default_name
    if output_path.suffix.lower() != input_path.suffix.lower():
        raise ConfigError(
            f"--output {output_path} must end in {input_path.suffix.lower()}: predictions keep the input's format."
        )
    return output_path


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m inference.predict", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", "--model-dir", dest="model", type=Path, required=True,
                        help="the model/ folder or the model.tar.gz a training job wrote")
    parser.add_argument("--input", type=Path, required=True, help="a .csv, .tsv or .parquet file to score")
    parser.add_argument("--output", type=Path, help="output file (same format as the input) or folder; "
                        "default: <input>_predictions.<format> beside the input")
    parser.add_argument("--engine", choices=ENGINES, default="onnx", help="onnx (ONNX Runtime, default) or torch")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                        help="binary tasks: probability of the second class from which it is predicted (default 0.5)")
    parser.add_argument("--device", default="cpu", help="torch engine only: cpu or cuda")
    parser.add_argument("--chunk-rows", type=int, default=CHUNK_ROWS,
                        help=f"rows read, scored and written at a time (default {CHUNK_ROWS:,})")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    configure_logging()
    args = parse_args(argv)
    try:
        score_file(args.model, args.input, args.output, args.engine, args.threshold, args.device, args.chunk_rows)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
