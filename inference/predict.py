"""Batch prediction with a trained ``model/`` folder.

    python -m inference.predict --model-dir /opt/ml/model --input new.csv [--output scored.csv]
                                [--engine onnx|torch] [--threshold 0.5]

Scores a CSV, TSV or Parquet file the way the training job scored its test split (see
:mod:`inference.saved_model`) and writes the prediction rows (id, the label if the file has one,
``prob_<class>``, ``prediction``) in the input's format, by default beside the input as
``<name>_predictions.<format>``. Exits 1 with a one-line reason on bad input.
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
from processing.files import file_format, read_table, write_table

log = logging.getLogger("inference.predict")


def score_file(
    model_dir: Path,
    input_path: Path,
    output_path: Path | None = None,
    engine: str = "onnx",
    threshold: float = DEFAULT_THRESHOLD,
    device: str = "cpu",
) -> Path:
    """Score ``input_path`` with the model in ``model_dir``; returns the written prediction file."""
    if engine not in ENGINES:
        raise ConfigError(f"engine {engine!r} is not one of {list(ENGINES)}.")
    output = _output_path(input_path, output_path)
    saved = SavedModel.load(model_dir)
    config = saved.config
    frame = read_table(input_path, string_columns=[config.id_name, *config.text_fields.values()])
    saved.check_rows(frame, str(input_path))
    predictions = saved.predictions(frame, saved.probabilities(frame, engine, device), threshold)
    output.parent.mkdir(parents=True, exist_ok=True)
    write_table(predictions, output)
    log.info("Scored %d rows of %s with %s: %s", len(frame), input_path, engine, output)
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
    parser.add_argument("--model-dir", type=Path, required=True, help="a model/ folder written by the training job")
    parser.add_argument("--input", type=Path, required=True, help="a .csv, .tsv or .parquet file to score")
    parser.add_argument("--output", type=Path, help="output file (same format as the input) or folder; "
                        "default: <input>_predictions.<format> beside the input")
    parser.add_argument("--engine", choices=ENGINES, default="onnx", help="onnx (ONNX Runtime, default) or torch")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                        help="binary tasks: probability of the second class from which it is predicted (default 0.5)")
    parser.add_argument("--device", default="cpu", help="torch engine only: cpu or cuda")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    configure_logging()
    args = parse_args(argv)
    try:
        score_file(args.model_dir, args.input, args.output, args.engine, args.threshold, args.device)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
