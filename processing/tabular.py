"""The tabular model input: numeric fields imputed, categorical fields risk-encoded, side by side.

Both encoders are fitted on the training split, or rebuilt from the artifacts given in the config
(``imputation_dict`` / ``risk_tables``, from hyperparameters or an upstream step), or from a saved
model folder. The columns come out in ``Config.tabular_feature_names`` order: numeric fields,
passthrough categoricals, then the risk rates.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from hyperparams.config import Config
from processing.numeric import NumericImputer, parse_numeric
from processing.risk_tables import GivenRiskTables, RiskTableEncoder


@dataclass
class TabularEncoders:
    """What turns raw tabular columns into model input; saved with the model."""

    imputer: NumericImputer
    risk_tables: RiskTableEncoder

    @classmethod
    def fit(cls, config: Config, train: pd.DataFrame, train_labels: np.ndarray) -> TabularEncoders:
        """Fit imputation and risk tables on train, or take them from the config when given (columns
        that already hold the given tables' rates then pass through)."""
        fields = config.numeric_fields
        if config.imputation_dict is not None:
            imputer = NumericImputer.from_artifact(config.imputation_dict, fields)
        else:
            numbers = parse_numeric(train, fields, "train", config.passthrough_categorical_fields)
            imputer = NumericImputer(fields).fit(numbers)
        categorical = config.encoded_categorical_fields if config.uses_tabular else []
        if config.risk_tables is not None:
            risk = GivenRiskTables.from_artifact(config.risk_tables, categorical, config.num_classes)
        else:
            risk = RiskTableEncoder(categorical, config.num_classes, config.smooth_factor, config.count_threshold)
            risk.fit(train, train_labels)
        return cls(imputer, risk)

    @classmethod
    def from_artifacts(
        cls, config: Config, imputation: Mapping[str, Any], risk_tables: Mapping[str, Any]
    ) -> TabularEncoders:
        """The encoders a trained model was saved with (``impute_dict`` and ``risk_table_map``). A model
        trained with given risk tables (an upstream step's) also takes rows that step has already
        encoded, as the training job did."""
        categorical = config.encoded_categorical_fields if config.uses_tabular else []
        encoder = GivenRiskTables if config.risk_tables is not None else RiskTableEncoder
        return cls(
            NumericImputer.from_artifact(imputation, config.numeric_fields),
            encoder.from_artifact(risk_tables, categorical, config.num_classes),
        )

    def transform(self, config: Config, frame: pd.DataFrame, split: str) -> np.ndarray:
        """float32 [rows, features]; no columns for a text-only model."""
        if not config.uses_tabular:
            return np.zeros((len(frame), 0), dtype=np.float32)
        numbers = parse_numeric(frame, self.imputer.fields, split, config.passthrough_categorical_fields)
        return np.concatenate([self.imputer.transform(numbers), self.risk_tables.transform(frame)], axis=1)
