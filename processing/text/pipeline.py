"""Text pipelines: configured step names -> one callable from raw strings to token-id chunks.

A pipeline is the cleaning steps in their configured order (:mod:`processing.text.cleaning`),
then the tokenizer, whose output is packed into chunks by the ``dialogue_chunker`` rule or, without
that step, into one chunk per sample (:mod:`processing.text.chunking`).

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

from hyperparams.config import Config
from hyperparams.rules import TEXT_STEP_NAMES, text_step_order_problem
from processing.text.chunking import ChunkStats, DialogueChunker, SingleChunk
from processing.text.cleaning import CLEANING_STEPS, TextNormalizer
from processing.text.messages import Batch, Messages, StepSequence
from processing.text.ragged import RaggedChunks
from processing.text.tokenization import TokenizedMessages, Tokenizer

log = logging.getLogger(__name__)

ENCODE_BATCH_ROWS = 1024  # rows cleaned and tokenized together: bounds memory, keeps both stages busy


class TextPipeline:
    """Cleaning steps, then the tokenizer and a packer into chunks."""

    def __init__(self, cleaning: StepSequence, tokenizer: Tokenizer, packer: DialogueChunker | SingleChunk):
        self.cleaning = cleaning
        self.tokenizer = tokenizer
        self.packer = packer
        self.stats = ChunkStats()

    def __repr__(self) -> str:
        return " >> ".join(repr(part) for part in [*self.cleaning.steps, self.packer, self.tokenizer])

    def clean(self, texts: Sequence[str | None]) -> Batch:
        """Run the cleaning steps only: raw strings -> messages per sample (empty ones dropped)."""
        return self._clean(texts).to_batch()

    def __call__(self, texts: Sequence[str | None]) -> list[list[list[int]]]:
        """Raw strings -> per string, a list of chunks of token ids."""
        return self.encode(texts).to_lists()

    def encode(self, texts: Sequence[str | None]) -> RaggedChunks:
        """Raw strings -> their chunks of token ids, stored compactly.

        Rows go through in batches of ``ENCODE_BATCH_ROWS``. The Rust tokenizer releases the GIL,
        so while a worker thread tokenizes one batch, this thread cleans the next one and packs
        the previous one into chunks. ``self.stats`` afterwards describes these texts only.
        """
        self.stats = ChunkStats()
        parts: list[RaggedChunks] = []
        pending: deque[tuple[Future[TokenizedMessages], list[int]]] = deque()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenize") as worker:
            for start in range(0, len(texts), ENCODE_BATCH_ROWS):
                messages = self._clean(texts[start : start + ENCODE_BATCH_ROWS])
                pending.append((worker.submit(self.tokenizer.encode_messages, messages.texts), messages.counts))
                if len(pending) > 1:
                    parts.append(self._chunks(*pending.popleft()))
            while pending:
                parts.append(self._chunks(*pending.popleft()))
        if not parts:
            return self.tokenizer.chunks(TokenizedMessages(np.zeros(0, np.int32), []), [], self.packer, self.stats)
        return RaggedChunks.concatenate(parts)

    def _clean(self, texts: Sequence[str | None]) -> Messages:
        return self.cleaning.apply(Messages.one_per_sample(texts)).without_empty()

    def _chunks(self, tokenized: Future[TokenizedMessages], counts: list[int]) -> RaggedChunks:
        return self.tokenizer.chunks(tokenized.result(), counts, self.packer, self.stats)


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
    problem = text_step_order_problem(list(steps))
    if problem:
        raise ValueError(f"text steps {list(steps)}: {problem}; valid steps in order are {list(TEXT_STEP_NAMES)}")
    cleaning = StepSequence(
        TextNormalizer(lowercase=is_uncased(tokenizer)) if name == "text_normalizer" else CLEANING_STEPS[name]()
        for name in steps
        if name in CLEANING_STEPS
    )
    if "dialogue_chunker" in steps:
        packer = DialogueChunker(max_sen_len, max_total_chunks, chunk_trancate)
    else:
        packer = SingleChunk(max_sen_len)
    return TextPipeline(cleaning, Tokenizer(tokenizer), packer)


def text_pipeline(config: Config, tokenizer, role: str) -> TextPipeline:
    """The chain the configuration gives a text role (``text``, ``primary``, ``secondary``)."""
    return build_text_pipeline(
        config.steps_for(role),
        tokenizer,
        max_sen_len=config.max_sen_len,
        max_total_chunks=config.max_total_chunks,
        chunk_trancate=config.chunk_trancate,
    )


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
