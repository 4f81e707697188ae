"""The last two text steps: tokenize every message once, then pack messages into chunks.

Messages are tokenized in one batched call to the fast tokenizer without special tokens. The
chunker then packs whole messages greedily into chunks of at most ``max_sen_len`` tokens:
``[CLS] m1 [SEP] m2 [SEP] ...`` (the [SEP] after each message counts toward the limit). A
message longer than one chunk continues in the next chunks; nothing is cut silently.

Chunk limit rule: with ``chunk_trancate`` true a sample keeps its first ``max_total_chunks``
chunks and the samples that lost text are counted; with it false every chunk is kept, and the
samples over ``max_total_chunks`` are counted instead.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, fields

from processing.text.cleaning import Batch, TextStep


@dataclass
class ChunkStats:
    """What the chunker did to one batch of samples (summed across batches)."""

    samples: int = 0
    multi_chunk_samples: int = 0
    truncated_samples: int = 0
    over_limit_samples: int = 0
    tokens: int = 0
    tokens_dropped: int = 0

    def add(self, other: ChunkStats) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


class DialogueChunker(TextStep):
    """Packs tokenized messages into chunks; see the module docstring for the exact rule."""

    name = "dialogue_chunker"

    def __init__(self, max_sen_len: int, max_total_chunks: int, chunk_trancate: bool = True):
        if max_sen_len < 3:
            raise ValueError("max_sen_len must leave room for [CLS], [SEP] and one token")
        self.max_sen_len = max_sen_len
        self.max_total_chunks = max_total_chunks
        self.chunk_trancate = chunk_trancate

    def __call__(self, batch: Batch) -> Batch:
        # Chunking needs token ids; in a pipeline it runs inside the tokenizer step.
        return batch

    def pack(self, messages: list[list[int]], cls_id: int, sep_id: int, stats: ChunkStats) -> list[list[int]]:
        capacity = self.max_sen_len - 1  # room after [CLS]; every message brings its own [SEP]
        chunks: list[list[int]] = []
        current: list[int] = [cls_id]
        for tokens in messages:
            if not tokens:
                continue
            if len(current) + len(tokens) + 1 <= self.max_sen_len:
                current.extend(tokens)
                current.append(sep_id)
                continue
            if len(current) > 1:
                chunks.append(current)
            step = capacity - 1
            for start in range(0, len(tokens), step):
                piece = tokens[start : start + step]
                if start + step < len(tokens):
                    chunks.append([cls_id, *piece, sep_id])
                else:
                    current = [cls_id, *piece, sep_id]
        if len(current) > 1 or not chunks:
            if len(current) == 1:
                current.append(sep_id)  # an empty sample is one chunk: [CLS] [SEP]
            chunks.append(current)
        return self._limit(chunks, stats)

    def _limit(self, chunks: list[list[int]], stats: ChunkStats) -> list[list[int]]:
        stats.samples += 1
        stats.tokens += sum(len(c) for c in chunks)
        if len(chunks) > 1:
            stats.multi_chunk_samples += 1
        if len(chunks) > self.max_total_chunks:
            if self.chunk_trancate:
                stats.truncated_samples += 1
                stats.tokens_dropped += sum(len(c) for c in chunks[self.max_total_chunks :])
                chunks = chunks[: self.max_total_chunks]
            else:
                stats.over_limit_samples += 1
        return chunks

    def __repr__(self) -> str:
        return (
            f"DialogueChunker(max_sen_len={self.max_sen_len}, max_total_chunks={self.max_total_chunks}, "
            f"chunk_trancate={self.chunk_trancate})"
        )


class Tokenizer(TextStep):
    """The fast tokenizer: always the last step, producing chunks of token ids per sample."""

    name = "tokenizer"

    def __init__(self, tokenizer, max_sen_len: int):
        if not getattr(tokenizer, "is_fast", False):
            raise TypeError("the text chain needs a fast (Rust) tokenizer")
        self.tokenizer = tokenizer
        # A tokenizer.json may carry its own truncation/padding (MiniLM's pads and cuts at 128);
        # chunking decides lengths here, so encode with a copy that does neither.
        self.backend = copy.deepcopy(tokenizer.backend_tokenizer)
        self.backend.no_truncation()
        self.backend.no_padding()
        self.max_sen_len = max_sen_len
        self.cls_id = tokenizer.cls_token_id
        self.sep_id = tokenizer.sep_token_id

    def encode_messages(self, batch: Batch) -> list[list[list[int]]]:
        """Token ids (no special tokens) of every message, from one batched tokenizer call."""
        flat = [message for messages in batch for message in messages]
        encoded = self.backend.encode_batch(flat, add_special_tokens=False) if flat else []
        out, position = [], 0
        for messages in batch:
            out.append([encoded[position + i].ids for i in range(len(messages))])
            position += len(messages)
        return out

    def chunks(self, batch: Batch, chunker: DialogueChunker | None, stats: ChunkStats) -> list[list[list[int]]]:
        per_message = self.encode_messages(batch)
        if chunker is not None:
            return [chunker.pack(messages, self.cls_id, self.sep_id, stats) for messages in per_message]
        return [self._single_chunk(messages, stats) for messages in per_message]

    def _single_chunk(self, messages: list[list[int]], stats: ChunkStats) -> list[list[int]]:
        """Without a chunker a sample is one chunk; text beyond max_sen_len is cut and counted."""
        tokens = [tok for message in messages for tok in message]
        room = self.max_sen_len - 2
        stats.samples += 1
        if len(tokens) > room:
            stats.truncated_samples += 1
            stats.tokens_dropped += len(tokens) - room
        chunk = [self.cls_id, *tokens[:room], self.sep_id]
        stats.tokens += len(chunk)
        return [chunk]

    def __call__(self, batch: Batch) -> Batch:
        raise TypeError("the tokenizer step runs through TextPipeline.encode")

    def __repr__(self) -> str:
        return f"Tokenizer({type(self.tokenizer).__name__}, max_sen_len={self.max_sen_len})"
