"""The files in ``model/`` besides the ONNX graph and the manifest.

- ``model.pth``: the classifier's state dict.
- ``model_artifacts.pth``: what an inference process needs to rebuild the classifier from
  ``model.pth`` without the training data (config, vocabulary, model_class, label maps,
  categorical mappings, the transformer's architecture, the embedding matrix where used).
- ``impute_dict.{json,pkl}``, ``risk_table_map.{json,pkl}``: the fitted tabular encoders.
- the tokenizer's files, and the resolved ``hyperparameters.json``.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import torch

from hyperparams.config import Config


def artifacts_bundle(
    config: Config,
    model_input_names: list[str],
    backbone_config: dict[str, Any],
    vocab: dict[str, int],
    imputation: dict[str, float],
    risk_tables: dict[str, Any],
    embedding_matrix: torch.Tensor | None = None,
) -> dict[str, Any]:
    bundle = {
        "config": config.model_dump(mode="json"),
        "model_class": config.model_class,
        "vocab": vocab,
        "backbone_config": backbone_config,
        "input_names": model_input_names,
        "tabular_feature_names": config.tabular_feature_names,
        "imputation": imputation,
        "categorical_processor_mappings": risk_tables,
        "label_to_id": {str(label): i for i, label in enumerate(config.class_labels)},
        "id_to_label": [str(label) for label in config.class_labels],
    }
    if embedding_matrix is not None:
        bundle["embedding_mat"] = embedding_matrix
    return bundle


def write_model_files(
    directory: Path,
    model: torch.nn.Module,
    bundle: dict[str, Any],
    tokenizer,
    config: Config,
) -> None:
    # Through a Python file: a full disk then raises ENOSPC, where torch's own file writer raises a bare RuntimeError.
    for name, content in (("model.pth", model.state_dict()), ("model_artifacts.pth", bundle)):
        with open(directory / name, "wb") as f:
            torch.save(content, f)
    write_json_and_pickle(directory / "impute_dict", bundle["imputation"])
    write_json_and_pickle(directory / "risk_table_map", bundle["categorical_processor_mappings"])
    tokenizer.save_pretrained(str(directory))
    (directory / "hyperparameters.json").write_text(json.dumps(config.model_dump(mode="json"), indent=2))


def write_json_and_pickle(stem: Path, data: Any) -> None:
    stem.with_suffix(".json").write_text(json.dumps(data, indent=2, sort_keys=True))
    with open(stem.with_suffix(".pkl"), "wb") as f:
        pickle.dump(data, f, protocol=pickle.HIGHEST_PROTOCOL)
