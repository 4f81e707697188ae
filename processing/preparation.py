"""Split files -> model-ready arrays, in one pass per run.

Labels are encoded strictly, numeric fields imputed, categorical fields risk-encoded (both fitted
on train only, or given; the training rows' own risk rates out of fold), and every text column run
through its text chain once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hyperparams.config import Config
from processing.cache import TextCache, cache_key, tokenizer_fingerprint
from processing.dataset import EncodedSplit
from processing.files import SplitFiles
from processing.labels import LabelEncoder
from processing.quality import quality_warnings
from processing.tabular import TabularEncoders
from processing.text.chunking import ChunkStats
from processing.text.pipeline import build_text_pipeline, token_length_summary
from processing.text.ragged import RaggedChunks
from processing.validation import check_training_labels

log = logging.getLogger(__name__)


@dataclass
class PreparedData:
    """Every split as model-ready arrays, and the tabular encoders that made them (saved with the model)."""

    splits: dict[str, EncodedSplit]
    tabular: TabularEncoders


def encode_labels(config: Config, frames: Mapping[str, pd.DataFrame]) -> tuple[LabelEncoder, dict[str, np.ndarray]]:
    encoder = LabelEncoder(config.class_labels)
    return encoder, {split: encoder.transform(frame[config.label_name], split) for split, frame in frames.items()}


def text_settings(config: Config, role: str) -> dict:
    """Everything besides the input and the tokenizer that decides a text column's encoding."""
    return {
        "steps": config.steps_for(role),
        "max_sen_len": config.max_sen_len,
        "max_total_chunks": config.max_total_chunks,
        "chunk_trancate": config.chunk_trancate,
    }


def encode_texts(
    config: Config,
    tokenizer,
    frames: Mapping[str, pd.DataFrame],
    files: Mapping[str, SplitFiles],
    cache: TextCache | None = None,
) -> tuple[dict[str, dict[str, RaggedChunks]], dict[str, ChunkStats]]:
    """Every text column of every split through its chain: {split: {role: chunks}}, stats per role.

    With a cache, a column already encoded with the same file, settings and tokenizer is loaded
    instead of recomputed.
    """
    encoded: dict[str, dict[str, RaggedChunks]] = {split: {} for split in frames}
    stats: dict[str, ChunkStats] = {}
    tokenizer_digest = tokenizer_fingerprint(tokenizer) if cache else ""
    digests = {split: source.sha256() for split, source in files.items()} if cache else {}
    for role, column in config.text_fields.items():
        settings = text_settings(config, role)
        pipeline = build_text_pipeline(settings["steps"], tokenizer, max_sen_len=config.max_sen_len,
                                       max_total_chunks=config.max_total_chunks, chunk_trancate=config.chunk_trancate)
        log.info("Text chain for %r: %s", column, pipeline)
        stats[role] = ChunkStats()
        for split, frame in frames.items():
            key = cache_key(digests[split], column, settings, tokenizer_digest) if cache else ""
            hit = cache.load(key) if cache else None
            if hit is not None:
                chunks, split_stats = hit
                log.info("  %s/%s: tokenized text loaded from the cache (%s)", split, column, key)
            else:
                chunks, split_stats = pipeline.encode(frame[column].tolist()), pipeline.stats
                if cache:
                    cache.save(key, chunks, split_stats)
            encoded[split][role] = chunks
            stats[role].add(split_stats)
            lengths = token_length_summary(chunks)
            log.info(
                "  %s/%s: %d rows, tokens per row p50=%d p90=%d max=%d",
                split, column, len(frame), lengths["p50"], lengths["p90"], lengths["max"],
            )
        _log_chunking(column, stats[role], config)
    return encoded, stats


def prepare_data(
    config: Config,
    frames: Mapping[str, pd.DataFrame],
    tokenizer,
    files: Mapping[str, SplitFiles],
    cache: TextCache | None = None,
    check_quality: bool = True,
) -> PreparedData:
    """``check_quality``: log what in the data may hurt the model (``processing.quality``); a dry run
    checks the whole data before it samples, and turns it off for its sample."""
    _, label_ids = encode_labels(config, frames)
    check_training_labels(label_ids["train"], config.class_labels, files["train"])
    for split, ids in label_ids.items():
        counts = np.bincount(ids, minlength=config.num_classes)
        log.info("%s: %d rows, classes %s", split, len(ids), dict(zip(map(str, config.class_labels), counts.tolist())))
    # tabular problems (e.g. rates of another risk table) surface before the slow text encoding
    tabular, train_features = TabularEncoders.fit_transform(config, frames["train"], label_ids["train"])
    features = {
        split: train_features if split == "train" else tabular.transform(config, frame, split)
        for split, frame in frames.items()
    }
    texts, text_stats = encode_texts(config, tokenizer, frames, files, cache)
    if check_quality:
        for warning in quality_warnings(config, frames["train"], label_ids["train"], text_stats):
            log.warning(warning)
    splits = {split: EncodedSplit(texts[split], features[split], label_ids[split]) for split in frames}
    return PreparedData(splits, tabular)


def _log_chunking(column: str, stats: ChunkStats, config: Config) -> None:
    if stats.truncated_samples:
        log.warning(
            "%s: %d of %d samples lost text to max_total_chunks=%d or max_sen_len=%d (%d tokens dropped)",
            column, stats.truncated_samples, stats.samples, config.max_total_chunks, config.max_sen_len,
            stats.tokens_dropped,
        )
    if stats.over_limit_samples:
        log.info(
            "%s: %d samples need more than max_total_chunks=%d chunks; with chunk_trancate=false the limit is "
            "raised to %d chunks and no text is lost",
            column, stats.over_limit_samples, config.max_total_chunks, stats.max_chunks,
        )
