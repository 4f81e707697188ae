"""Warnings about valid data that trains a worse model: an id-like category, a constant number, text
mostly cut by the chunk limits, a label that is nearly all one class. Logged by the job's
preprocessing, and none for ordinary data."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from helpers.data import NEUTRAL, hyperparameters, make_rows
from hyperparams.loading import validate_config
from processing.preparation import encode_texts, prepare_data
from processing.quality import (
    categorical_warnings,
    label_warnings,
    numeric_warnings,
    quality_warnings,
    text_warnings,
)
from processing.text.chunking import ChunkStats


@pytest.fixture(scope="module")
def config(tiny_bert):
    return validate_config(hyperparameters(tiny_bert))


def test_ordinary_data_gets_no_warning(config, tokenizer):
    frames = {split: make_rows(n, seed=i) for i, (split, n) in enumerate((("train", 200), ("val", 40)))}
    _, stats = encode_texts(config, tokenizer, frames, files={})
    labels = frames["train"]["label"].to_numpy()
    assert quality_warnings(config, frames["train"], labels, stats) == []


def test_an_id_like_category_is_named_with_its_ratio_and_what_to_do(tiny_bert):
    config = validate_config(hyperparameters(
        tiny_bert,
        full_field_list=["uid", "review", "score", "count", "region", "sku", "label"],
        cat_field_list=["region", "sku"],
    ))
    frame = make_rows(100, seed=1)
    frame["sku"] = [f"sku-{i % 60}" for i in range(100)]
    (warning,) = categorical_warnings(config, frame)
    assert warning.startswith("Categorical column 'sku' has 60 distinct values in 100 training rows (ratio 0.60)")
    assert "Drop it from cat_field_list" in warning and "raise count_threshold (now 0" in warning
    assert "risk_table_folds=1" not in warning
    in_sample = config.model_copy(update={"risk_table_folds": 1})
    assert "With risk_table_folds=1 each such row's training rate is its own label" in categorical_warnings(
        in_sample, frame
    )[0]
    frame["sku"] = [f"sku-{i % 50}" for i in range(100)]  # exactly half: not more than half the rows
    assert categorical_warnings(config, frame) == []


def test_a_constant_numeric_column_is_named(config):
    frame = make_rows(50, seed=1)
    frame["count"] = 7.0
    frame.loc[3, "count"] = np.nan
    (warning,) = numeric_warnings(config, frame)
    assert warning == (
        "Numeric column 'count' is 7 in every training row that has a value: a constant tells the model nothing. "
        "Drop it from tab_field_list, or check that the train file holds the column you meant."
    )
    frame["score"] = "2.5"  # read as text, parsed as the job parses it
    assert [w.split(" is ")[0] for w in numeric_warnings(config, frame)] == [
        "Numeric column 'score'", "Numeric column 'count'"
    ]


def test_text_mostly_cut_by_the_chunk_limits_says_what_to_change(config, tokenizer):
    frame = make_rows(20, seed=1)
    frame.loc[:14, "review"] = " ".join(NEUTRAL * 15)  # 15 of 20 rows need more than 3 chunks of 32 tokens
    _, stats = encode_texts(config, tokenizer, {"train": frame}, files={})
    (warning,) = text_warnings(config, stats)
    assert warning.startswith(
        "Text column 'review': 75% of rows (15 of 20) lost text to max_total_chunks x max_sen_len = 3 x 32 = 96 "
        "tokens per row; "
    )
    assert warning.endswith(
        "which the model never sees. Raise max_total_chunks (or max_sen_len, up to the tokenizer's limit), or set "
        "chunk_trancate=false to keep every chunk."
    )
    assert stats["text"].tokens_dropped > 0 and f"{stats['text'].tokens_dropped:,} tokens were dropped" in warning
    assert text_warnings(config, {"text": ChunkStats(samples=20, truncated_samples=10)}) == []  # half is not most


def test_without_a_chunker_the_advice_is_to_add_one(tiny_bert):
    config = validate_config(hyperparameters(tiny_bert, text_processing_steps=["text_normalizer", "tokenizer"]))
    (warning,) = text_warnings(config, {"text": ChunkStats(samples=10, truncated_samples=9, tokens_dropped=400)})
    assert "lost text to max_sen_len = 32 tokens per row (without a dialogue_chunker step" in warning
    assert warning.endswith("Add dialogue_chunker before tokenizer in its text steps, or raise max_sen_len.")


def test_a_label_nearly_all_one_class_without_class_weights(config, tiny_bert):
    labels = np.array([1] * 97 + [0] * 3)
    (warning,) = label_warnings(config, labels)
    assert warning.startswith(
        "The label 'label' is 97.0% class 1 in train (97 of 100 rows) and class_weights is not set"
    )
    assert "Set class_weights, e.g. [16.7, 0.515]" in warning
    assert label_warnings(config, np.array([1] * 94 + [0] * 6)) == []
    weighted = validate_config(hyperparameters(tiny_bert, class_weights=[10.0, 1.0]))
    assert label_warnings(weighted, labels) == []


def test_preprocessing_logs_the_warnings(config, tokenizer, caplog):
    frames = {split: make_rows(n, seed=i) for i, (split, n) in enumerate((("train", 60), ("val", 20), ("test", 20)))}
    frames["train"]["count"] = 3.0
    files = dict.fromkeys(frames)
    with caplog.at_level(logging.WARNING, logger="processing.preparation"):
        prepare_data(config, frames, tokenizer, files)
    assert "Numeric column 'count' is 3 in every training row" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="processing.preparation"):
        prepare_data(config, frames, tokenizer, files, check_quality=False)
    assert "Numeric column" not in caplog.text
