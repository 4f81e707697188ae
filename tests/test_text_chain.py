"""The text chain on hand-written cases, with the real (tiny) fast tokenizer."""

from __future__ import annotations

import numpy as np
import pytest

from processing.text import RaggedChunks, build_text_pipeline
from processing.text.cleaning import DialogueSplitter, EmojiRemover, HtmlNormalizer, TextNormalizer

ALL_STEPS = ["dialogue_splitter", "html_normalizer", "emoji_remover", "text_normalizer", "dialogue_chunker", "tokenizer"]


def test_splitter_handles_mixed_case_markers_and_outside_text():
    split = DialogueSplitter()([["intro [BOM] first [eom]\n[ Bom ]second[EOM] outro"], ["no markers here"], [""]])
    assert split == [["intro", "first", "second", "outro"], ["no markers here"], [""]]


def test_html_tags_removed_blocks_spaced_entities_unescaped():
    clean = HtmlNormalizer().clean
    assert clean("<p>one</p><p>two</p>") .split() == ["one", "two"]
    assert clean("wo<b>rd</b> &amp; it&#39;s") == "word & it's"
    assert clean("a<script>alert(1)</script>b<style>p{}</style>c") == "a b c"
    assert clean("&lt;b&gt; stays text") == "<b> stays text"
    assert clean("1 < 2 and 3 > 2") == "1 < 2 and 3 > 2"


def test_emoji_removed_and_other_scripts_kept():
    text = "好的 👍🏽 ok 👨‍👩‍👧 🇫🇷 مرحبا Привет café ∑ x≤y ™"
    cleaned = EmojiRemover().clean(text)
    for kept in ("好的", "ok", "مرحبا", "Привет", "café", "∑", "x≤y"):
        assert kept in cleaned
    for gone in ("👍", "🏽", "👨", "\u200d", "🇫"):
        assert gone not in cleaned


def test_normalizer_nfkc_controls_whitespace_and_case():
    assert TextNormalizer(lowercase=True).clean("  Ｆｕｌｌ\x00width\t\n TEXT ") == "full width text"
    assert TextNormalizer(lowercase=False).clean("Keep Case") == "Keep Case"


def test_chunks_respect_limits_and_round_trip(tokenizer):
    pipeline = build_text_pipeline(ALL_STEPS, tokenizer, max_sen_len=8, max_total_chunks=10)
    text = "[bom] great dress [eom][bom] " + "the color was very soft " * 5 + "[eom]"
    (chunks,) = pipeline([text])
    assert all(len(c) <= 8 for c in chunks)
    assert all(c[0] == tokenizer.cls_token_id and c[-1] == tokenizer.sep_token_id for c in chunks)
    decoded = " ".join(tokenizer.decode(c, skip_special_tokens=True) for c in chunks)
    assert decoded.split() == ("great dress " + "the color was very soft " * 5).split()


def test_truncation_keeps_first_chunks_and_counts_the_sample(tokenizer):
    pipeline = build_text_pipeline(ALL_STEPS, tokenizer, max_sen_len=6, max_total_chunks=2, chunk_trancate=True)
    out = pipeline(["the dress fit " * 10, "great"])
    assert [len(s) for s in out] == [2, 1]
    assert pipeline.stats.truncated_samples == 1
    keep_all = build_text_pipeline(ALL_STEPS, tokenizer, max_sen_len=6, max_total_chunks=2, chunk_trancate=False)
    assert len(keep_all(["the dress fit " * 10])[0]) == 8
    assert keep_all.stats.over_limit_samples == 1


def test_empty_and_missing_text_become_one_empty_chunk(tokenizer):
    pipeline = build_text_pipeline(ALL_STEPS, tokenizer, max_sen_len=16)
    empty = [[tokenizer.cls_token_id, tokenizer.sep_token_id]]
    assert pipeline(["", None, "   ", float("nan")]) == [empty] * 4


def test_unknown_step_names_list_the_valid_ones(tokenizer):
    with pytest.raises(ValueError, match="unknown text step.*'html_cleaner'.*dialogue_splitter"):
        build_text_pipeline(["html_cleaner", "tokenizer"], tokenizer, max_sen_len=16)


def test_steps_compose_with_rshift(tokenizer):
    pipeline = DialogueSplitter() >> TextNormalizer(lowercase=True)
    assert pipeline(["[bom] A  B [eom] C"]) == [["a b", "c"]]


def test_ragged_storage_pads_per_batch(tokenizer):
    pipeline = build_text_pipeline(ALL_STEPS, tokenizer, max_sen_len=8, max_total_chunks=5)
    samples = ["great", "the dress fit the color was very soft and happy", "poor"]
    ragged = pipeline.encode(samples)
    assert ragged.to_lists() == pipeline(samples)
    ids, mask = ragged.pad(np.array([0, 2]))
    assert ids.shape == (2, 1, 3) and mask.sum() == 6
    ids, mask = ragged.pad(np.array([1, 0]))
    assert ids.shape[1] == len(ragged.sample(1)) and mask[1, 1:].sum() == 0
    assert ragged.token_ids.dtype == np.uint16
    fixed, _ = ragged.pad(np.array([0]), min_tokens=8)
    assert fixed.shape == (1, 1, 8)


def test_ragged_concatenate_matches_single_encode(tokenizer):
    pipeline = build_text_pipeline(ALL_STEPS, tokenizer, max_sen_len=8)
    texts = ["great dress", "poor fit the color", "", "soft " * 20]
    whole = pipeline.encode(texts)
    parts = RaggedChunks.concatenate([pipeline.encode(texts[:2]), pipeline.encode(texts[2:])])
    assert parts.to_lists() == whole.to_lists()
