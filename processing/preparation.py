"""Split files -> model-ready arrays, in one pass per run.

Labels are encoded strictly, numeric fields imputed, categorical fields risk-encoded (both fitted
on train only, or given), and every text column run through its text chain once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hyperparams import Config
from processing.dataset import EncodedSplit
from processing.labels import LabelEncoder
from processing.tabular import NumericImputer, RiskTableEncoder, parse_numeric
from processing.text import RaggedChunks, build_text_pipeline
from processing.text.pipeline import token_length_summary
from processing.text.tokenization import ChunkStats
from processing.validation import check_training_labels

log = logging.getLogger(__name__)


@dataclass
class TabularEncoders:
    """What turns raw tabular columns into model input; saved with the model."""

    imputer: NumericImputer
    risk_tables: RiskTableEncoder

    def transform(self, config: Config, frame: pd.DataFrame, split: str) -> np.ndarray:
        if not config.uses_tabular:
            return np.zeros((len(frame), 0), dtype=np.float32)
        numeric_fields = self.imputer.fields
        numbers = self.imputer.transform(parse_numeric(frame, numeric_fields, split))
        risks = self.risk_tables.transform(frame)
        return np.concatenate([numbers, risks], axis=1)


@dataclass
class PreparedData:
    splits: dict[str, EncodedSplit]
    labels: LabelEncoder
    tabular: TabularEncoders
    text_stats: dict[str, ChunkStats]


def numeric_input_fields(config: Config) -> list[str]:
    """Fields fed as numbers: numeric fields, then categorical fields encoded upstream."""
    return [*config.tab_field_list, *config.passthrough_categorical_fields] if config.uses_tabular else []


def fit_tabular(config: Config, train: pd.DataFrame, train_labels: np.ndarray) -> TabularEncoders:
    """Fit imputation and risk tables on train (or take them from the config when given)."""
    fields = numeric_input_fields(config)
    if config.imputation_dict is not None:
        imputer = NumericImputer.from_artifact(config.imputation_dict, fields)
    else:
        imputer = NumericImputer(fields).fit(parse_numeric(train, fields, "train"))
    cat_fields = config.encoded_categorical_fields if config.uses_tabular else []
    if config.risk_tables is not None:
        risk = RiskTableEncoder.from_artifact(config.risk_tables, cat_fields, config.num_classes)
    else:
        risk = RiskTableEncoder(cat_fields, config.num_classes, config.smooth_factor, config.count_threshold)
        risk.fit(train, train_labels)
    return TabularEncoders(imputer, risk)


def encode_labels(config: Config, frames: Mapping[str, pd.DataFrame]) -> tuple[LabelEncoder, dict[str, np.ndarray]]:
    encoder = LabelEncoder(config.class_labels)
    return encoder, {split: encoder.transform(frame[config.label_name], split) for split, frame in frames.items()}


def encode_texts(config: Config, tokenizer, frames: Mapping[str, pd.DataFrame]) -> tuple[dict, dict]:
    """Every text column of every split through its chain: {split: {role: chunks}}, stats per role."""
    encoded: dict[str, dict[str, RaggedChunks]] = {split: {} for split in frames}
    stats: dict[str, ChunkStats] = {}
    for role, column in config.text_fields.items():
        pipeline = build_text_pipeline(
            config.steps_for(role),
            tokenizer,
            max_sen_len=config.max_sen_len,
            max_total_chunks=config.max_total_chunks,
            chunk_trancate=config.chunk_trancate,
        )
        log.info("Text chain for %r: %s", column, pipeline)
        for split, frame in frames.items():
            encoded[split][role] = pipeline.encode(frame[column].tolist())
            lengths = token_length_summary(encoded[split][role])
            log.info(
                "  %s/%s: %d rows, tokens per row p50=%d p90=%d max=%d",
                split, column, len(frame), lengths["p50"], lengths["p90"], lengths["max"],
            )
        stats[role] = pipeline.stats
        _log_chunking(column, pipeline.stats, config)
    return encoded, stats


def prepare_data(config: Config, frames: Mapping[str, pd.DataFrame], tokenizer, files: Mapping[str, object]) -> PreparedData:
    labels, label_ids = encode_labels(config, frames)
    check_training_labels(label_ids["train"], config.class_labels, files["train"])
    for split, ids in label_ids.items():
        counts = np.bincount(ids, minlength=config.num_classes)
        log.info("%s: %d rows, classes %s", split, len(ids), dict(zip(map(str, config.class_labels), counts.tolist())))
    tabular = fit_tabular(config, frames["train"], label_ids["train"])
    texts, stats = encode_texts(config, tokenizer, frames)
    splits = {
        split: EncodedSplit(texts[split], tabular.transform(config, frame, split), label_ids[split])
        for split, frame in frames.items()
    }
    return PreparedData(splits, labels, tabular, stats)


def _log_chunking(column: str, stats: ChunkStats, config: Config) -> None:
    if stats.truncated_samples:
        log.warning(
            "%s: %d of %d samples lost text to max_total_chunks=%d or max_sen_len=%d (%d tokens dropped)",
            column, stats.truncated_samples, stats.samples, config.max_total_chunks, config.max_sen_len,
            stats.tokens_dropped,
        )
    if stats.over_limit_samples:
        log.info(
            "%s: %d samples have more than max_total_chunks=%d chunks and keep them all (chunk_trancate=false)",
            column, stats.over_limit_samples, config.max_total_chunks,
        )
