"""Text pipelines: configured step names -> one callable from raw strings to token-id chunks.

>>> pipeline = build_text_pipeline(["dialogue_splitter", "text_normalizer", "dialogue_chunker", "tokenizer"],
...                                tokenizer, max_sen_len=128, max_total_chunks=5)
>>> pipeline(["[bom] hi [eom][bom] hello [eom]"])   # one sample -> its chunks -> token ids
[[[101, 7632, 102, 7592, 102]]]
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import pandas as pd

from hyperparams.config import TEXT_STEP_NAMES, _step_order_problem
from processing.text.cleaning import CLEANING_STEPS, Batch, Messages, TextNormalizer, TextStep
from processing.text.ragged import RaggedChunks
from processing.text.tokenization import ChunkStats, DialogueChunker, Tokenizer, TokenizedMessages

log = logging.getLogger(__name__)

ENCODE_BATCH_ROWS = 1024  # rows cleaned and tokenized together: bounds memory, keeps both stages busy


class TextPipeline:
    """Steps applied in order. Ends with the tokenizer step when built for a model."""

    def __init__(self, steps: Sequence[TextStep]):
        self.steps = list(steps)
        self.stats = ChunkStats()

    def __rshift__(self, other: TextStep | TextPipeline) -> TextPipeline:
        more = other.steps if isinstance(other, TextPipeline) else [other]
        return TextPipeline([*self.steps, *more])

    def __repr__(self) -> str:
        return " >> ".join(repr(s) for s in self.steps)

    @property
    def _tokenizer(self) -> Tokenizer | None:
        last = self.steps[-1] if self.steps else None
        return last if isinstance(last, Tokenizer) else None

    @property
    def _chunker(self) -> DialogueChunker | None:
        return next((s for s in self.steps if isinstance(s, DialogueChunker)), None)

    def clean(self, texts: Sequence[str | None]) -> Batch:
        """Run the text steps (everything before the tokenizer): raw strings -> messages per sample."""
        return self._clean(texts).to_batch()

    def _clean(self, texts: Sequence[str | None]) -> Messages:
        messages = Messages([_as_text(t) for t in texts], [1] * len(texts))
        for step in self.steps:
            if not isinstance(step, (Tokenizer, DialogueChunker)):
                messages = step.apply(messages)
        return messages.without_empty()

    def __call__(self, texts: Sequence[str | None]):
        """Raw strings -> per string, a list of chunks of token ids (or messages, without a tokenizer)."""
        if self._tokenizer is None:
            return self.clean(texts)
        return self.encode(texts).to_lists()

    def encode(self, texts: Sequence[str | None]) -> RaggedChunks:
        """Raw strings -> their chunks of token ids, stored compactly.

        Rows go through in batches of ``ENCODE_BATCH_ROWS``. The Rust tokenizer releases the GIL,
        so while a worker thread tokenizes one batch, this thread cleans the next one and packs
        the previous one into chunks. ``self.stats`` afterwards describes these texts only.
        """
        tokenizer = self._tokenizer
        if tokenizer is None:
            raise ValueError("encode needs a pipeline that ends with the tokenizer step")
        self.stats = ChunkStats()
        parts: list[RaggedChunks] = []
        pending: deque[tuple[Future[TokenizedMessages], list[int]]] = deque()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenize") as worker:
            for start in range(0, len(texts), ENCODE_BATCH_ROWS):
                messages = self._clean(texts[start : start + ENCODE_BATCH_ROWS])
                pending.append((worker.submit(tokenizer.encode_messages, messages.texts), messages.counts))
                if len(pending) > 1:
                    parts.append(self._chunks(*pending.popleft()))
            while pending:
                parts.append(self._chunks(*pending.popleft()))
        if not parts:
            return tokenizer.chunks(TokenizedMessages(np.zeros(0, np.int32), []), [], self._chunker, self.stats)
        return RaggedChunks.concatenate(parts)

    def _chunks(self, tokenized: Future[TokenizedMessages], counts: list[int]) -> RaggedChunks:
        return self._tokenizer.chunks(tokenized.result(), counts, self._chunker, self.stats)


def build_text_pipeline(
    steps: Sequence[str],
    tokenizer,
    *,
    max_sen_len: int,
    max_total_chunks: int = 5,
    chunk_trancate: bool = True,
) -> TextPipeline:
    """Build the chain named by ``steps``, in the order the config allows (``tokenizer`` last)."""
    unknown = [s for s in steps if s not in TEXT_STEP_NAMES]
    if unknown:
        raise ValueError(f"unknown text step(s) {unknown}; valid steps are {list(TEXT_STEP_NAMES)}")
    problem = _step_order_problem(list(steps))
    if problem:
        raise ValueError(f"text steps {list(steps)}: {problem}; valid steps in order are {list(TEXT_STEP_NAMES)}")
    built: list[TextStep] = []
    for name in steps:
        if name == "tokenizer":
            built.append(Tokenizer(tokenizer, max_sen_len))
        elif name == "dialogue_chunker":
            built.append(DialogueChunker(max_sen_len, max_total_chunks, chunk_trancate))
        elif name == "text_normalizer":
            built.append(TextNormalizer(lowercase=is_uncased(tokenizer)))
        else:
            built.append(CLEANING_STEPS[name]())
    return TextPipeline(built)


def is_uncased(tokenizer) -> bool:
    """Whether the tokenizer lower-cases its input (then lower-casing earlier loses nothing)."""
    if getattr(tokenizer, "do_lower_case", None) is not None:
        return bool(tokenizer.do_lower_case)
    normalizer = getattr(tokenizer.backend_tokenizer, "normalizer", None)
    return bool(normalizer is not None and getattr(normalizer, "lowercase", False))


def token_length_summary(chunks: RaggedChunks) -> dict[str, float]:
    """Percentiles of tokens per sample, for logs and the dry-run report."""
    per_sample = np.add.reduceat(chunks.chunk_lengths, chunks.sample_offsets[:-1]) if len(chunks) else np.zeros(1)
    return {f"p{q}": float(np.percentile(per_sample, q)) for q in (50, 90, 99)} | {"max": float(per_sample.max())}


def _as_text(value: object) -> str:
    """A cell as text: missing (None, NaN, pd.NA) is empty, anything else its str()."""
    if isinstance(value, str):
        return value
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return ""
    return str(value)
