"""What in valid training data quietly makes a worse model: one warning line per finding.

Nothing here stops the job; each check names the column (or label), the figure that tripped it,
and what to change. The preprocess step logs the warnings, and the dry run logs and reports them
for the whole training split (``job.dry_run``), so they show up where users look.

- A risk-encoded categorical column with more distinct values than ``ID_LIKE_SHARE`` of its rows
  (an id, a SKU, a user): most values are too rare for a rate worth learning, and new rows bring
  values never seen.
- A numeric column with one value on every training row that has one: it tells the model nothing.
- A text column whose rows mostly (more than ``TRUNCATED_SHARE``) lost text to the chunk limits.
- A label of which one class makes up ``DOMINANT_CLASS_SHARE`` or more of train, without
  ``class_weights``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from hyperparams.config import Config
from processing.numeric import parse_numeric
from processing.risk_tables import category_keys
from processing.text.chunking import ChunkStats

ID_LIKE_SHARE = 0.5
TRUNCATED_SHARE = 0.5
DOMINANT_CLASS_SHARE = 0.95


def quality_warnings(
    config: Config, train: pd.DataFrame, train_labels: np.ndarray, text_stats: Mapping[str, ChunkStats]
) -> list[str]:
    """Every warning for this training split; ``text_stats`` holds each text role's chunking figures."""
    return [
        *categorical_warnings(config, train),
        *numeric_warnings(config, train),
        *text_warnings(config, text_stats),
        *label_warnings(config, train_labels),
    ]


def categorical_warnings(config: Config, train: pd.DataFrame) -> list[str]:
    if not config.uses_tabular or train.empty:
        return []
    warnings = []
    rows = len(train)
    for field in config.encoded_categorical_fields:
        distinct = category_keys(train[field]).nunique()
        if distinct > ID_LIKE_SHARE * rows:
            leak = (
                " With risk_table_folds=1 each such row's training rate is its own label, which the model learns "
                "to read." if config.risk_table_folds == 1 and config.risk_tables is None else ""
            )
            warnings.append(
                f"Categorical column {field!r} has {distinct:,} distinct values in {rows:,} training rows (ratio "
                f"{distinct / rows:.2f}): most values are too rare for a useful risk rate, and new rows will mostly "
                f"bring values never seen.{leak} Drop it from cat_field_list if it is an identifier, or raise "
                f"count_threshold (now {config.count_threshold}; e.g. 10) so that rare values take the default rate."
            )
    return warnings


def numeric_warnings(config: Config, train: pd.DataFrame) -> list[str]:
    fields = config.numeric_fields
    if not fields:
        return []
    numbers = parse_numeric(train, fields, "train", config.passthrough_categorical_fields)
    passthrough = set(config.passthrough_categorical_fields)
    warnings = []
    for field in fields:
        present = numbers[field].dropna()
        if present.empty or present.nunique() > 1:
            continue  # an empty column is an error of its own, raised when imputation is fitted
        where = "every training row" if len(present) == len(numbers) else "every training row that has a value"
        listing = "cat_field_list" if field in passthrough else "tab_field_list"
        warnings.append(
            f"Numeric column {field!r} is {present.iloc[0]:g} in {where}: a constant tells the model nothing. "
            f"Drop it from {listing}, or check that the train file holds the column you meant."
        )
    return warnings


def text_warnings(config: Config, text_stats: Mapping[str, ChunkStats]) -> list[str]:
    warnings = []
    for role, column in config.text_fields.items():
        stats = text_stats.get(role)
        if stats is None or not stats.samples or stats.truncated_samples <= TRUNCATED_SHARE * stats.samples:
            continue
        if "dialogue_chunker" in config.steps_for(role):
            limit = (
                f"max_total_chunks x max_sen_len = {config.max_total_chunks} x {config.max_sen_len} = "
                f"{config.max_total_chunks * config.max_sen_len:,} tokens per row"
            )
            advice = (
                "Raise max_total_chunks (or max_sen_len, up to the tokenizer's limit), or set chunk_trancate=false "
                "to keep every chunk"
            )
        else:
            limit = (
                f"max_sen_len = {config.max_sen_len} tokens per row (without a dialogue_chunker step a row is one "
                "chunk)"
            )
            advice = "Add dialogue_chunker before tokenizer in its text steps, or raise max_sen_len"
        warnings.append(
            f"Text column {column!r}: {stats.truncated_samples / stats.samples:.0%} of rows "
            f"({stats.truncated_samples:,} of {stats.samples:,}) lost text to {limit}; "
            f"{stats.tokens_dropped:,} tokens were dropped, which the model never sees. {advice}."
        )
    return warnings


def label_warnings(config: Config, train_labels: np.ndarray) -> list[str]:
    if config.class_weights is not None or not len(train_labels):
        return []
    counts = np.bincount(train_labels, minlength=config.num_classes)
    top = int(np.argmax(counts))
    share = counts[top] / len(train_labels)
    if share < DOMINANT_CLASS_SHARE:
        return []
    balanced = len(train_labels) / (config.num_classes * np.maximum(counts, 1))
    weights = "[" + ", ".join(f"{w:.3g}" for w in balanced) + "]"
    return [
        f"The label {config.label_name!r} is {share:.1%} class {config.class_labels[top]!r} in train "
        f"({counts[top]:,} of {len(train_labels):,} rows) and class_weights is not set: that class dominates the "
        f"loss, and always predicting it already scores {share:.1%} accuracy. Set class_weights, e.g. {weights} "
        "(each class weighted inversely to its frequency), and judge the model by val/average_precision or "
        "val/auroc rather than accuracy."
    ]
