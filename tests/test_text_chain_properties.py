"""Property-based tests (hypothesis) of the text chain's invariants.

Two designs need them most: the chunker's packing rule, and cleaning a whole batch as one
NUL-joined string, which must give exactly what cleaning each message alone gives.
"""

from __future__ import annotations

import emoji
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers.data import NEGATIVE, NEUTRAL, POSITIVE
from processing.text.cleaning import DialogueSplitter, EmojiRemover, HtmlNormalizer, TextNormalizer
from processing.text.emoji_filter import text_style_symbols
from processing.text.messages import Messages
from processing.text.pipeline import build_text_pipeline

WORDS = sorted(set(POSITIVE + NEGATIVE + NEUTRAL))  # whole words of the tiny vocabulary: one token each
SETTINGS = settings(max_examples=150, deadline=None)

messages = st.lists(st.sampled_from(WORDS), max_size=40)
samples = st.lists(st.lists(messages, max_size=6), min_size=1, max_size=5)


def _segments(chunk: list[int], cls: int, sep: int) -> list[list[int]]:
    """The pieces of a chunk: between [CLS] and each [SEP]."""
    assert chunk[0] == cls and chunk[-1] == sep and cls not in chunk[1:]
    pieces, current = [], []
    for token in chunk[1:]:
        if token == sep:
            pieces.append(current)
            current = []
        else:
            current.append(token)
    return pieces


@SETTINGS
@given(samples, st.integers(3, 20), st.integers(1, 6))
def test_chunker_invariants(tokenizer, dialogues, max_sen_len, max_total_chunks):
    vocab = tokenizer.get_vocab()
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    texts = ["".join(f"[bom] {' '.join(words)} [eom]" for words in dialogue) for dialogue in dialogues]
    steps = ["dialogue_splitter", "dialogue_chunker", "tokenizer"]
    keep = build_text_pipeline(steps, tokenizer, max_sen_len=max_sen_len, max_total_chunks=max_total_chunks,
                               chunk_trancate=False)
    cut = build_text_pipeline(steps, tokenizer, max_sen_len=max_sen_len, max_total_chunks=max_total_chunks,
                              chunk_trancate=True)
    kept, truncated = keep(texts), cut(texts)
    for dialogue, chunks, short in zip(dialogues, kept, truncated):
        expected = [[vocab[w] for w in words] for words in dialogue if words]
        assert chunks and all(len(c) <= max_sen_len for c in chunks)
        pieces = [_segments(c, cls, sep) for c in chunks]
        flat = [p for chunk_pieces in pieces for p in chunk_pieces]
        if not expected:
            assert chunks == [[cls, sep]]
            continue
        # nothing lost, order kept, every piece belongs to one message and ends with [SEP]
        assert [t for p in flat for t in p] == [t for m in expected for t in m]
        position = 0
        for message in expected:
            taken = []
            while len(taken) < len(message):
                taken += flat[position]
                position += 1
            assert taken == message
            if len(message) <= max_sen_len - 2:  # a message that fits in a chunk is never split
                assert any(p == message for p in flat)
        # greedy: no chunk could also have taken the piece that opens the next one
        for before, after in zip(chunks, pieces[1:]):
            assert len(before) + len(after[0]) + 1 > max_sen_len
        # the limit: truncation keeps the first chunks and counts what it dropped
        assert short == chunks[:max_total_chunks]
    assert cut.stats.truncated_samples == sum(len(c) > max_total_chunks for c in kept) == keep.stats.over_limit_samples
    assert cut.stats.tokens == sum(len(c) for sample in truncated for c in sample)
    dropped_chunks = [c for sample in kept for c in sample[max_total_chunks:]]
    assert cut.stats.tokens_dropped == sum(len(c) - 1 - c.count(sep) for c in dropped_chunks)


fragments = st.sampled_from(
    ["a", "word", " ", "  ", "\n", "\t", "<", ">", "/", "<b>", "</b>", "<p>", "<br/>", "<script>", "</script>",
     "<!--", "-->", "<a href='x>y'>", '"', "'", "&", "&amp;", "&#39;", "&lt;", ";", "\x00", "\x07", "\xa0", "\u200b",
     "[bom]", "[ EOM ]", "😀", "👍🏽", "👨‍👩‍👧", "🇫🇷", "1️⃣", "\u200d", "\ufe0f", "中文", "café", "Ｆ", "e\u0301", "↔"]
)
texts = st.lists(st.lists(fragments, max_size=12).map("".join), min_size=1, max_size=8)


@settings(max_examples=300, deadline=None)
@given(texts)
def test_cleaning_a_joined_batch_equals_cleaning_each_message(batch):
    for step in (DialogueSplitter(), HtmlNormalizer(), EmojiRemover(), TextNormalizer(lowercase=True)):
        together = step.apply(Messages(batch, [1] * len(batch)))
        one_by_one = [step.apply(Messages([text], [1])) for text in batch]
        assert together.texts == [t for m in one_by_one for t in m.texts]
        assert together.counts == [c for m in one_by_one for c in m.counts]


_NOT_EMOJI = st.characters(
    categories=("L", "M", "N", "P", "Sm", "Zs"),
    exclude_characters="".join(ch for ch in emoji.EMOJI_DATA if len(ch) == 1) + "\u20e3\ufe0f",
)


@settings(max_examples=300, deadline=None)
@given(st.text(_NOT_EMOJI, max_size=60))
def test_text_without_emoji_passes_the_emoji_remover_untouched(text):
    assert EmojiRemover().clean(text) == text


@settings(max_examples=300, deadline=None)
@given(st.text(_NOT_EMOJI | st.sampled_from(sorted(text_style_symbols())), max_size=60))
def test_text_symbols_without_fe0f_pass_the_emoji_remover_untouched(text):
    assert EmojiRemover().clean(text) == text


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(sorted(emoji.EMOJI_DATA)) | st.text(_NOT_EMOJI, max_size=5), max_size=10))
def test_no_emoji_survive_the_emoji_remover(parts):
    cleaned = EmojiRemover().clean("".join(parts))
    assert all(match["emoji"] in text_style_symbols() for match in emoji.emoji_list(cleaned))
