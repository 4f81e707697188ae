"""The last two text steps: tokenize every message once, then pack messages into chunks.

All messages of a batch are tokenized in one call to the fast (Rust) tokenizer, without special
tokens and without offsets; text that looks like a special token (``[SEP]`` typed by a user) stays
plain text. The ids land in one flat array, and the chunk layout is planned per message in Python
but filled with numpy, so no Python code touches individual tokens.

Chunk rule. A chunk is ``[CLS] m1 [SEP] m2 [SEP] ...`` and holds at most ``max_sen_len`` tokens,
the special tokens included. Messages are packed whole and in order: a message goes into the
current chunk if it fits together with its ``[SEP]``, otherwise it starts a new chunk. A message
longer than ``max_sen_len - 2`` tokens is split: it fills as many chunks as it needs, each
``[CLS] piece [SEP]``, and its last piece starts the chunk that later messages join. Empty
messages add nothing; a sample without any token is one chunk ``[CLS] [SEP]``.

Chunk limit rule. With ``chunk_trancate`` true, a sample keeps its first ``max_total_chunks``
chunks; the rest of its text is dropped, and the samples and message tokens lost are counted (the
job logs them). With ``chunk_trancate`` false, the limit is raised to what the data needs: every
chunk is kept, the samples over ``max_total_chunks`` are counted and the largest chunk count is
reported (batches are padded to the most chunks among their own samples).

Without a ``dialogue_chunker`` step, a sample is one chunk ``[CLS] m1 [SEP] m2 [SEP] ...`` cut
after ``max_sen_len - 1`` tokens (then ``[SEP]``), with the cut counted the same way.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, fields

import numpy as np

from processing.text.cleaning import Messages, TextStep
from processing.text.ragged import RaggedChunks, token_dtype


@dataclass
class ChunkStats:
    """What the chunker did (summed across batches and splits)."""

    samples: int = 0
    multi_chunk_samples: int = 0
    truncated_samples: int = 0
    over_limit_samples: int = 0
    tokens: int = 0  # stored, special tokens included
    tokens_dropped: int = 0  # message tokens lost to the limits
    max_chunks: int = 0  # the most chunks any sample kept

    def add(self, other: ChunkStats) -> None:
        for f in fields(self):
            combine = max if f.name == "max_chunks" else int.__add__
            setattr(self, f.name, combine(getattr(self, f.name), getattr(other, f.name)))


@dataclass
class TokenizedMessages:
    """Token ids of many messages, no special tokens: ``ids`` back to back, ``lengths`` per message."""

    ids: np.ndarray
    lengths: list[int]


class _Layout:
    """Where each message piece goes in the output; each piece is followed by a [SEP]."""

    def __init__(self) -> None:
        self.chunk_lengths: list[int] = []
        self.sample_chunks: list[int] = []
        self.piece_source: list[int] = []  # offset of the piece in the message ids
        self.piece_target: list[int] = []  # offset of the piece in the output
        self.piece_length: list[int] = []
        self.size = 0

    def open_chunk(self) -> None:
        self.chunk_lengths.append(1)
        self.size += 1

    def add_piece(self, source: int, length: int) -> None:
        self.piece_source.append(source)
        self.piece_target.append(self.size)
        self.piece_length.append(length)
        self.size += length + 1
        self.chunk_lengths[-1] += length + 1

    def fill(self, ids: np.ndarray, cls_id: int, sep_id: int, dtype: np.dtype) -> RaggedChunks:
        chunk_offsets = np.zeros(len(self.chunk_lengths) + 1, dtype=np.int64)
        np.cumsum(self.chunk_lengths, out=chunk_offsets[1:])
        sample_offsets = np.zeros(len(self.sample_chunks) + 1, dtype=np.int64)
        np.cumsum(self.sample_chunks, out=sample_offsets[1:])
        out = np.empty(self.size, dtype=dtype)
        out[chunk_offsets[:-1]] = cls_id
        source = np.asarray(self.piece_source, dtype=np.int64)
        target = np.asarray(self.piece_target, dtype=np.int64)
        length = np.asarray(self.piece_length, dtype=np.int64)
        out[target + length] = sep_id
        before = np.cumsum(length) - length  # tokens in earlier pieces
        positions = np.arange(int(length.sum()), dtype=np.int64) + np.repeat(target - before, length)
        out[positions] = ids[positions + np.repeat(source - target, length)]
        return RaggedChunks(out, chunk_offsets, sample_offsets)


class DialogueChunker(TextStep):
    """Packs tokenized messages into chunks; see the module docstring for the exact rule."""

    name = "dialogue_chunker"

    def __init__(self, max_sen_len: int, max_total_chunks: int, chunk_trancate: bool = True):
        if max_sen_len < 3:
            raise ValueError("max_sen_len must leave room for [CLS], [SEP] and one token")
        if max_total_chunks < 1:
            raise ValueError("max_total_chunks must be at least 1")
        self.max_sen_len = max_sen_len
        self.max_total_chunks = max_total_chunks
        self.chunk_trancate = chunk_trancate

    def apply(self, messages: Messages) -> Messages:
        # Chunking needs token ids; in a pipeline it runs inside the tokenizer step.
        return messages

    def pack(self, tokenized: TokenizedMessages, counts: list[int], layout: _Layout, stats: ChunkStats) -> None:
        limit, room = self.max_sen_len, self.max_sen_len - 2
        cap = self.max_total_chunks if self.chunk_trancate else -1
        lengths = tokenized.lengths
        source = message = 0
        for count in counts:
            chunks = used = dropped = 0  # used: tokens in the open chunk
            for length in lengths[message : message + count]:
                if not length:
                    continue
                if dropped:
                    dropped += length
                elif used and used + length + 1 <= limit:
                    layout.add_piece(source, length)
                    used += length + 1
                else:
                    position = 0
                    while position < length:
                        if chunks == cap:
                            dropped += length - position
                            break
                        piece = min(length - position, room)
                        layout.open_chunk()
                        layout.add_piece(source + position, piece)
                        chunks += 1
                        used = piece + 2
                        position += piece
                source += length
            message += count
            if not chunks:
                layout.open_chunk()
                layout.add_piece(source, 0)
                chunks = 1
            layout.sample_chunks.append(chunks)
            _count_sample(stats, chunks, dropped, self.max_total_chunks)

    def __repr__(self) -> str:
        return (
            f"DialogueChunker(max_sen_len={self.max_sen_len}, max_total_chunks={self.max_total_chunks}, "
            f"chunk_trancate={self.chunk_trancate})"
        )


def _count_sample(stats: ChunkStats, chunks: int, dropped: int, max_total_chunks: int) -> None:
    stats.samples += 1
    stats.multi_chunk_samples += chunks > 1
    stats.truncated_samples += dropped > 0
    stats.over_limit_samples += chunks > max_total_chunks
    stats.tokens_dropped += dropped
    stats.max_chunks = max(stats.max_chunks, chunks)


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
        self.backend.encode_special_tokens = True
        self.max_sen_len = max_sen_len
        self.cls_id = tokenizer.cls_token_id
        self.sep_id = tokenizer.sep_token_id
        self.dtype = token_dtype(self.backend.get_vocab_size())

    def encode_messages(self, texts: list[str]) -> TokenizedMessages:
        """Token ids of every message (no special tokens), from one batched tokenizer call.

        The call releases the GIL, so it can run in a thread beside Python work.
        """
        encodings = self.backend.encode_batch_fast(texts, add_special_tokens=False) if texts else []
        lengths = [len(encoding) for encoding in encodings]
        ids = np.fromiter(
            itertools.chain.from_iterable(encoding.ids for encoding in encodings), dtype=np.int32, count=sum(lengths)
        )
        return TokenizedMessages(ids, lengths)

    def chunks(
        self, tokenized: TokenizedMessages, counts: list[int], chunker: DialogueChunker | None, stats: ChunkStats
    ) -> RaggedChunks:
        layout = _Layout()
        if chunker is not None:
            chunker.pack(tokenized, counts, layout, stats)
        else:
            self._single_chunk(tokenized, counts, layout, stats)
        chunks = layout.fill(tokenized.ids, self.cls_id, self.sep_id, self.dtype)
        stats.tokens += len(chunks.token_ids)
        return chunks

    def _single_chunk(
        self, tokenized: TokenizedMessages, counts: list[int], layout: _Layout, stats: ChunkStats
    ) -> None:
        lengths = tokenized.lengths
        source = message = 0
        for count in counts:
            layout.open_chunk()
            room, dropped = self.max_sen_len - 1, 0  # room after [CLS]
            for length in lengths[message : message + count]:
                if dropped or not length:
                    dropped += length
                elif length + 1 <= room:
                    layout.add_piece(source, length)
                    room -= length + 1
                else:
                    if room > 1:
                        layout.add_piece(source, room - 1)
                    dropped += length - max(room - 1, 0)
                    room = 0
                source += length
            message += count
            if layout.chunk_lengths[-1] == 1:
                layout.add_piece(source, 0)
            layout.sample_chunks.append(1)
            _count_sample(stats, 1, dropped, 1)

    def apply(self, messages: Messages) -> Messages:
        raise TypeError("the tokenizer step runs through TextPipeline.encode")

    def __repr__(self) -> str:
        return f"Tokenizer({type(self.tokenizer).__name__}, max_sen_len={self.max_sen_len})"
