"""Batch prediction with a trained ``model/`` folder.

    python -m evaluation.predict --model-dir /opt/ml/model --input new.csv [--output scored.csv]
                                 [--engine onnx|torch] [--threshold 0.5]

Scores a CSV, TSV or Parquet file the way the training job scored its test split: the saved
tokenizer and text chain, the saved imputation values and risk tables, the saved label map, then
``model.onnx`` with ONNX Runtime (default) or ``model.pth`` rebuilt in PyTorch. Writes the job's
prediction columns (id, the label if the file has one, ``prob_<class>``, ``prediction``) in the
input's format, by default beside the input as ``<name>_predictions.<format>``.

Only data is loaded: JSON files, ``torch.load(..., weights_only=True)`` and the ONNX graph; the
``.pkl`` twins are never unpickled. Exits 1 with a one-line reason on bad input.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pandas as pd
import torch

from contracts import ConfigError, DataError, UserError
from evaluation.inference import predict_probabilities
from evaluation.metrics import DEFAULT_THRESHOLD
from evaluation.predictions import prediction_frame
from export.onnx_export import OUTPUT_NAME
from hyperparams import Config
from models.registry import build_from_artifacts
from processing.dataset import EncodedSplit
from processing.files import file_format, read_table, write_table
from processing.preparation import TabularEncoders, encode_texts
from processing.tabular import NumericImputer, RiskTableEncoder
from processing.text.loading import load_tokenizer
from processing.validation import column_roles
from training.data import evaluation_loader
from training.logs import configure_logging

log = logging.getLogger("evaluation.predict")

ENGINES = ("onnx", "torch")


@dataclass
class SavedModel:
    """Everything in a ``model/`` folder that turns raw rows into probabilities."""

    directory: Path
    artifacts: dict[str, Any]
    config: Config
    tokenizer: Any
    tabular: TabularEncoders

    @classmethod
    def load(cls, directory: Path) -> SavedModel:
        artifacts = torch.load(_required(directory, "model_artifacts.pth"), map_location="cpu", weights_only=True)
        config = Config.model_validate(artifacts["config"])
        categorical = config.encoded_categorical_fields if config.uses_tabular else []
        risk_tables = _read_json(directory, "risk_table_map.json")
        tabular = TabularEncoders(
            NumericImputer.from_artifact(_read_json(directory, "impute_dict.json"), config.numeric_fields),
            RiskTableEncoder.from_artifact(risk_tables, categorical, config.num_classes),
        )
        return cls(directory, artifacts, config, load_tokenizer(str(directory)), tabular)

    def read(self, path: Path) -> pd.DataFrame:
        """The file as the job read its splits (ids and text as strings); the label column is optional."""
        config = self.config
        frame = read_table(path, string_columns=[config.id_name, *config.text_fields.values()])
        missing = [c for c in column_roles(config) if c != config.label_name and c not in frame.columns]
        if missing:
            raise DataError(f"{path} has no column(s) {missing}, which the model reads; it has {list(frame.columns)}.")
        if frame.empty:
            raise DataError(f"{path} has a header but no rows; there is nothing to score.")
        return frame

    def encode(self, frame: pd.DataFrame, path: Path) -> EncodedSplit:
        texts, _ = encode_texts(self.config, self.tokenizer, {"input": frame}, {"input": path})
        tabular = self.tabular.transform(self.config, frame, "input")
        return EncodedSplit(texts["input"], tabular, np.zeros(len(frame), dtype=np.int64))

    def predict(self, encoded: EncodedSplit, engine: str = "onnx", device: str = "cpu") -> np.ndarray:
        """Class probabilities [rows, classes] in row order."""
        loader = evaluation_loader(encoded, self.config, pad_id=self.tokenizer.pad_token_id or 0)
        if engine == "torch":
            return predict_probabilities(self._torch_model(), loader, device)
        session = ort.InferenceSession(str(_required(self.directory, "model.onnx")), providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        probs = np.zeros((len(encoded), self.config.num_classes), dtype=np.float32)
        for batch in loader:
            (out,) = session.run([OUTPUT_NAME], {name: batch[name].numpy() for name in names})
            probs[batch["index"].numpy()] = out
        return probs

    def _torch_model(self) -> torch.nn.Module:
        state = torch.load(_required(self.directory, "model.pth"), map_location="cpu", weights_only=True)
        return build_from_artifacts(self.artifacts, state)


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
    frame = saved.read(input_path)
    probs = saved.predict(saved.encode(frame, input_path), engine, device)
    config = saved.config
    labels = frame[config.label_name] if config.label_name in frame.columns else None
    predictions = prediction_frame(
        frame[config.id_name], labels, probs, config.class_labels, config.id_name, config.label_name, threshold
    )
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


def _required(directory: Path, name: str) -> Path:
    path = directory / name
    if not path.is_file():
        raise DataError(f"{path} does not exist; --model-dir must be the model/ folder a training job wrote.")
    return path


def _read_json(directory: Path, name: str) -> Any:
    path = _required(directory, name)
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise DataError(f"{path} is not valid JSON ({exc}); copy it again from the job's model/ folder.") from None


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m evaluation.predict", description=__doc__.split("\n\n")[0])
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
