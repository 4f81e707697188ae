"""The tabular model input: numeric fields imputed, categorical fields risk-encoded, side by side.

Both encoders are fitted on the training split, or rebuilt from the artifacts given in the config
(``imputation_dict`` / ``risk_tables``, from hyperparameters or an upstream step), or from a saved
model folder. The columns come out in ``Config.tabular_feature_names`` order: numeric fields,
passthrough categoricals, then the risk rates. The training rows themselves get out-of-fold risk
rates (``fit_transform``; ``processing.risk_tables``); every other row, the rates of the saved tables.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from hyperparams.config import Config
from processing.numeric import NumericImputer, parse_numeric
from processing.risk_tables import GivenRiskTables, RiskTableEncoder

log = logging.getLogger(__name__)


@dataclass
class TabularEncoders:
    """What turns raw tabular columns into model input; saved with the model."""

    imputer: NumericImputer
    risk_tables: RiskTableEncoder

    @classmethod
    def fit(cls, config: Config, train: pd.DataFrame, train_labels: np.ndarray) -> TabularEncoders:
        """Fit imputation and risk tables on train, or take them from the config when given (columns
        that already hold the given tables' rates then pass through)."""
        encoders = cls(_imputer(config, train), _risk_encoder(config))
        if config.risk_tables is None:
            encoders.risk_tables.fit(train, train_labels)
        return encoders

    @classmethod
    def fit_transform(
        cls, config: Config, train: pd.DataFrame, train_labels: np.ndarray
    ) -> tuple[TabularEncoders, np.ndarray]:
        """The encoders ``fit`` returns, and the training rows encoded for training: their risk rates
        out of fold (``risk_table_folds``), so that no row's rate holds its own label."""
        encoders = cls(_imputer(config, train), _risk_encoder(config))
        risk, folds = encoders.risk_tables, config.risk_table_folds
        if config.risk_tables is None:
            rates = risk.fit_transform(train, train_labels)
            if risk.fields and folds > 1:
                log.info(
                    "Risk tables of %s: the %d training rows are encoded out of fold (%d stratified folds, seed %d), "
                    "so no row's rate holds its own label; val, test and risk_table_map use the tables fitted on "
                    "every training row",
                    risk.fields, len(train), folds, config.seed,
                )
        else:
            rates = risk.transform(train)
            if risk.fields and folds > 1:
                log.info(
                    "Risk tables of %s are given (the risk_tables hyperparameter, or risk_table_map with "
                    "USE_PRECOMPUTED_RISK_TABLES) and used as they are, so the training rows get in-sample rates: "
                    "tables fitted elsewhere cannot be refitted fold by fold (risk_table_folds applies to tables "
                    "fitted here). If they were fitted on these training rows, a column of rare categories leaks "
                    "labels into training; raise count_threshold where they are fitted, or let the job fit them.",
                    risk.fields,
                )
        if not config.uses_tabular:
            return encoders, np.zeros((len(train), 0), dtype=np.float32)
        return encoders, encoders._features(config, train, "train", rates)

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
        return self._features(config, frame, split, self.risk_tables.transform(frame))

    def _features(self, config: Config, frame: pd.DataFrame, split: str, rates: np.ndarray) -> np.ndarray:
        """The imputed numeric fields beside the given risk rates of the same rows."""
        numbers = parse_numeric(frame, self.imputer.fields, split, config.passthrough_categorical_fields)
        return np.concatenate([self.imputer.transform(numbers), rates], axis=1)


def _imputer(config: Config, train: pd.DataFrame) -> NumericImputer:
    """The given imputation values, or the train means."""
    fields = config.numeric_fields
    if config.imputation_dict is not None:
        return NumericImputer.from_artifact(config.imputation_dict, fields)
    numbers = parse_numeric(train, fields, "train", config.passthrough_categorical_fields)
    return NumericImputer(fields).fit(numbers)


def _risk_encoder(config: Config) -> RiskTableEncoder:
    """The given risk tables (fitted), or an encoder to fit on train."""
    categorical = config.encoded_categorical_fields if config.uses_tabular else []
    if config.risk_tables is not None:
        return GivenRiskTables.from_artifact(config.risk_tables, categorical, config.num_classes)
    return RiskTableEncoder(
        categorical,
        config.num_classes,
        config.smooth_factor,
        config.count_threshold,
        folds=config.risk_table_folds,
        seed=config.seed,
    )
