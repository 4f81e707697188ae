"""The tokenized-text cache: reused for the same inputs, never for changed ones."""

from __future__ import annotations

import logging
import shutil

import processing.cache
from helpers.data import hyperparameters, write_job
from hyperparams.loading import validate_config
from processing.cache import PROCESSING, TextCache, chain_sources, source_fingerprint
from processing.files import SplitFiles, read_table
from processing.preparation import encode_texts


def _encode(base, config, tokenizer, cache):
    files = {s: SplitFiles((base / "input" / "data" / s / f"{s}.csv",)) for s in ("train", "val", "test")}
    frames = {s: read_table(f.paths[0], ["uid", "review"]) for s, f in files.items()}
    return encode_texts(config, tokenizer, frames, files, cache)


def test_second_run_loads_identical_tokens_from_the_cache(tmp_path, tiny_bert, tokenizer, caplog):
    base = write_job(tmp_path / "job", hyperparameters(tiny_bert), rows=(30, 10, 10))
    config = validate_config(hyperparameters(tiny_bert))
    cache = TextCache(tmp_path / "cache")
    first, first_stats = _encode(base, config, tokenizer, cache)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 3
    with caplog.at_level(logging.INFO):
        second, second_stats = _encode(base, config, tokenizer, cache)
    assert caplog.text.count("loaded from the cache") == 3
    for split in first:
        assert second[split]["text"].to_lists() == first[split]["text"].to_lists()
    assert second_stats == first_stats


def test_changed_settings_or_file_miss_the_cache(tmp_path, tiny_bert, tokenizer, caplog):
    base = write_job(tmp_path / "job", hyperparameters(tiny_bert), rows=(30, 10, 10))
    cache = TextCache(tmp_path / "cache")
    _encode(base, validate_config(hyperparameters(tiny_bert)), tokenizer, cache)
    with caplog.at_level(logging.INFO):
        _encode(base, validate_config(hyperparameters(tiny_bert, max_sen_len=16)), tokenizer, cache)
    assert "loaded from the cache" not in caplog.text
    train = base / "input" / "data" / "train" / "train.csv"
    train.write_text(train.read_text().replace("great", "poor"))
    caplog.clear()
    with caplog.at_level(logging.INFO):
        _encode(base, validate_config(hyperparameters(tiny_bert)), tokenizer, cache)
    assert caplog.text.count("loaded from the cache") == 2


def test_the_chain_fingerprint_follows_the_chain_source_not_its_location(tmp_path):
    copies = [tmp_path / "a" / "processing", tmp_path / "b" / "processing"]
    for copy in copies:
        shutil.copytree(PROCESSING, copy, ignore=shutil.ignore_patterns("__pycache__"))
    a, b = (source_fingerprint(copy, chain_sources(copy)) for copy in copies)
    assert a == b == source_fingerprint(PROCESSING, chain_sources())
    assert {"text/emoji_filter.py", "text/tokenization.py", "cache.py"} <= {
        p.relative_to(PROCESSING).as_posix() for p in chain_sources()
    }
    cleaning = copies[1] / "text" / "cleaning.py"
    cleaning.write_text(cleaning.read_text() + "\n# changed\n")
    assert source_fingerprint(copies[1], chain_sources(copies[1])) != a


def test_a_changed_chain_misses_the_cache(tmp_path, tiny_bert, tokenizer, caplog, monkeypatch):
    base = write_job(tmp_path / "job", hyperparameters(tiny_bert), rows=(30, 10, 10))
    config = validate_config(hyperparameters(tiny_bert))
    cache = TextCache(tmp_path / "cache")
    _encode(base, config, tokenizer, cache)
    monkeypatch.setattr(processing.cache, "chain_fingerprint", lambda: "the chain after an edit")
    with caplog.at_level(logging.INFO):
        _encode(base, config, tokenizer, cache)
    assert "loaded from the cache" not in caplog.text
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 6
