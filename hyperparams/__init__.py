"""The job's configuration: the Config model, SageMaker string coercion, and loading."""

from hyperparams.config import (
    BERT_MODELS,
    METRIC_NAMES,
    MODEL_CLASSES,
    TEXT_ONLY_MODELS,
    TEXT_STEP_NAMES,
    Config,
)
from hyperparams.loading import load_config, read_hyperparameters, validate_config

__all__ = [
    "BERT_MODELS",
    "METRIC_NAMES",
    "MODEL_CLASSES",
    "TEXT_ONLY_MODELS",
    "TEXT_STEP_NAMES",
    "Config",
    "load_config",
    "read_hyperparameters",
    "validate_config",
]
