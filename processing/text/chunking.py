"""Packing tokenized messages into chunks: the chunk rule and the chunk limit rule.

A chunk is ``[CLS] m1 [SEP] m2 [SEP] ...`` and holds at most ``max_sen_len`` tokens, the special
tokens included. :class:`DialogueChunker` (the ``dialogue_chunker`` step) packs messages whole and
in order: a message goes into the current chunk if it fits together with its ``[SEP]``, otherwise
it starts a new chunk. A message longer than ``max_sen_len - 2`` tokens is split: it fills as many
chunks as it needs, each ``[CLS] piece [SEP]``, and its last piece starts the chunk that later
messages join. Empty messages add nothing; a sample without any token is one chunk ``[CLS] [SEP]``.

Chunk limit rule. With ``chunk_trancate`` true, a sample keeps its first ``max_total_chunks``
chunks; the rest of its text is dropped, and the samples and message tokens lost are counted (the
job logs them). With ``chunk_trancate`` false, the limit is raised to what the data needs: every
chunk is kept, the samples over ``max_total_chunks`` are counted and the largest chunk count is
reported (batches are padded to the most chunks among their own samples).

Without a ``dialogue_chunker`` step, :class:`SingleChunk` makes a sample one chunk
``[CLS] m1 [SEP] m2 [SEP] ...`` cut after ``max_sen_len - 1`` tokens (then ``[SEP]``), with the cut
counted the same way.

The packers only plan where each piece of a message goes (:class:`Layout`); the token ids are
copied with numpy in one go when the layout is filled, so no Python code touches single tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from processing.text.ragged import RaggedChunks


@dataclass
class ChunkStats:
    """What the packing did (summed across batches and splits)."""

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

    def count_sample(self, chunks: int, dropped: int, max_total_chunks: int) -> None:
        self.samples += 1
        self.multi_chunk_samples += chunks > 1
        self.truncated_samples += dropped > 0
        self.over_limit_samples += chunks > max_total_chunks
        self.tokens_dropped += dropped
        self.max_chunks = max(self.max_chunks, chunks)


class Layout:
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


class DialogueChunker:
    """Packs a sample's messages into up to ``max_total_chunks`` chunks (see the module docstring)."""

    def __init__(self, max_sen_len: int, max_total_chunks: int, chunk_trancate: bool = True):
        if max_sen_len < 3:
            raise ValueError("max_sen_len must leave room for [CLS], [SEP] and one token")
        if max_total_chunks < 1:
            raise ValueError("max_total_chunks must be at least 1")
        self.max_sen_len = max_sen_len
        self.max_total_chunks = max_total_chunks
        self.chunk_trancate = chunk_trancate

    def pack(self, lengths: list[int], counts: list[int], layout: Layout, stats: ChunkStats) -> None:
        """Plan the chunks of samples whose messages (``counts`` per sample) have these token ``lengths``."""
        limit, room = self.max_sen_len, self.max_sen_len - 2
        cap = self.max_total_chunks if self.chunk_trancate else -1
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
            stats.count_sample(chunks, dropped, self.max_total_chunks)

    def __repr__(self) -> str:
        return (
            f"DialogueChunker(max_sen_len={self.max_sen_len}, max_total_chunks={self.max_total_chunks}, "
            f"chunk_trancate={self.chunk_trancate})"
        )


class SingleChunk:
    """Without a ``dialogue_chunker`` step: every sample is one chunk, cut at ``max_sen_len``."""

    def __init__(self, max_sen_len: int):
        self.max_sen_len = max_sen_len

    def pack(self, lengths: list[int], counts: list[int], layout: Layout, stats: ChunkStats) -> None:
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
            stats.count_sample(1, dropped, 1)

    def __repr__(self) -> str:
        return f"SingleChunk(max_sen_len={self.max_sen_len})"
