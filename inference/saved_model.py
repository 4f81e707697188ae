"""A trained ``model/`` folder, loaded once, that turns raw rows into class probabilities.

The rows go through the same code the training job used: its text chain with the saved
tokenizer, the saved imputation values and risk tables, then ``model.onnx`` in ONNX Runtime
(default) or ``model.pth`` rebuilt in PyTorch. Only data is loaded: JSON files,
``torch.load(..., weights_only=True)`` and the ONNX graph; the ``.pkl`` twins are never unpickled.

``SavedModel.load`` takes the ``model/`` folder or the ``model.tar.gz`` a SageMaker job uploads (unpacked
into a temporary folder that lives as long as the process). The batch scorer (``inference.predict``)
and the endpoint (``serving``) read rows through it: a DataFrame shaped like a training split (the
label column is optional and ignored).
"""

from __future__ import annotations

import atexit
import json
import shutil
import tarfile
import tempfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from contracts.errors import ConfigError, DataError
from hyperparams.config import Config
from inference.engines import OnnxEngine, TorchEngine
from inference.outputs import DEFAULT_THRESHOLD, prediction_frame
from models.registry import build_from_artifacts
from processing.dataset import EncodedSplit
from processing.loaders import scoring_loader
from processing.tabular import TabularEncoders
from processing.text.loading import load_tokenizer
from processing.text.pipeline import TextPipeline, text_pipeline
from processing.validation import column_roles

ENGINES = ("onnx", "torch")


@dataclass
class SavedModel:
    directory: Path
    artifacts: dict[str, Any]
    config: Config
    tokenizer: Any
    tabular: TabularEncoders
    _engines: dict[tuple[str, str], OnnxEngine | TorchEngine] = field(default_factory=dict, repr=False)

    threads: int | None = None  # intra-op threads of an engine; None: the library's default (every core)

    @classmethod
    def load(cls, source: Path, threads: int | None = None) -> SavedModel:
        """The model in ``source``: a ``model/`` folder written by a training job, or its ``model.tar.gz``."""
        directory = _unpacked(source) if source.is_file() else source
        artifacts = torch.load(_required(directory, "model_artifacts.pth"), map_location="cpu", weights_only=True)
        config = Config.model_validate(artifacts["config"])
        tabular = TabularEncoders.from_artifacts(
            config, _read_json(directory, "impute_dict.json"), _read_json(directory, "risk_table_map.json")
        )
        return cls(directory, artifacts, config, load_tokenizer(str(directory)), tabular, threads=threads)

    @property
    def row_columns(self) -> list[str]:
        """The columns of a row to score, in the training files' order: the id, the text columns, the
        numeric fields, the categorical fields (a row without a header lists its values in this order)."""
        return [c for c in column_roles(self.config) if c != self.config.label_name]

    @property
    def input_columns(self) -> list[str]:
        """The columns the model reads from a row: ``row_columns`` but the id."""
        return [c for c in self.row_columns if c != self.config.id_name]

    def check_rows(self, frame: pd.DataFrame, source: str, allow_empty: bool = False) -> None:
        """Every column the model reads is present, and (unless ``allow_empty``) there is a row."""
        missing = [c for c in self.input_columns if c not in frame.columns]
        if missing:
            raise DataError(
                f"{source} has no column(s) {missing}, which the model reads; it has {list(frame.columns)}."
            )
        if frame.empty and not allow_empty:
            raise DataError(f"{source} has a header but no rows; there is nothing to score.")

    def encode(self, frame: pd.DataFrame, source: str = "input") -> EncodedSplit:
        """The rows as model input, through the training job's text chains and tabular encoders.
        ``source`` names the rows in an error: ``input`` (a file) or ``processing.numeric.REQUEST``."""
        texts = {role: self._pipelines[role].encode(frame[column].tolist())
                 for role, column in self.config.text_fields.items()}
        tabular = self.tabular.transform(self.config, frame, source)
        return EncodedSplit(texts, tabular, np.zeros(len(frame), dtype=np.int64))

    @cached_property
    def _pipelines(self) -> dict[str, TextPipeline]:
        """The text chain of each text column, built once (a server encodes every request with them)."""
        return {role: text_pipeline(self.config, self.tokenizer, role) for role in self.config.text_fields}

    def probabilities(
        self, frame: pd.DataFrame, engine: str = "onnx", device: str = "cpu", source: str = "input"
    ) -> np.ndarray:
        """Class probabilities [rows, classes] in row order."""
        encoded = self.encode(frame, source)
        loader = scoring_loader(encoded, self.config, pad_id=self.tokenizer.pad_token_id or 0)
        return self._engine(engine, device).probabilities(loader)

    def predictions(self, frame: pd.DataFrame, probs: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> pd.DataFrame:
        """The prediction rows for ``frame`` (with its ids and its labels when it has them)."""
        config = self.config
        ids = frame[config.id_name] if config.id_name in frame.columns else None
        labels = frame[config.label_name] if config.label_name in frame.columns else None
        return prediction_frame(ids, labels, probs, config.class_labels, config.id_name, config.label_name, threshold)

    def _engine(self, name: str, device: str) -> OnnxEngine | TorchEngine:
        if name not in ENGINES:
            raise ConfigError(f"engine {name!r} is not one of {list(ENGINES)}.")
        key = (name, device if name == "torch" else "cpu")
        if key not in self._engines:
            if name == "torch":
                state = torch.load(_required(self.directory, "model.pth"), map_location="cpu", weights_only=True)
                if self.threads:
                    torch.set_num_threads(self.threads)
                self._engines[key] = TorchEngine(build_from_artifacts(self.artifacts, state), device)
            else:
                self._engines[key] = OnnxEngine(_required(self.directory, "model.onnx"), self.threads)
        return self._engines[key]


def _unpacked(archive: Path) -> Path:
    """``model.tar.gz`` unpacked into a temporary folder, removed when the process exits."""
    folder = Path(tempfile.mkdtemp(prefix="model-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            unsafe = [m.name for m in members if not (m.isfile() or m.isdir()) or _escapes(m.name)]
            if unsafe:
                raise DataError(f"{archive} holds entries a model archive never has ({unsafe[:3]}); not unpacked.")
            tar.extractall(folder, members=members)
    except (tarfile.TarError, OSError) as exc:
        raise DataError(
            f"{archive} could not be unpacked as a model archive ({exc}); pass the model.tar.gz a training job "
            "uploaded, or the model/ folder."
        ) from None
    return folder


def _escapes(name: str) -> bool:
    """An archive path that would land outside the folder it is unpacked into."""
    return name.startswith("/") or ".." in Path(name).parts


def _required(directory: Path, name: str) -> Path:
    path = directory / name
    if not path.is_file():
        raise DataError(
            f"{path} does not exist; the model must be the model/ folder (or model.tar.gz) a training job wrote."
        )
    return path


def _read_json(directory: Path, name: str) -> Any:
    path = _required(directory, name)
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise DataError(f"{path} is not valid JSON ({exc}); copy it again from the job's model/ folder.") from None
