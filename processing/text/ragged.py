"""Compact storage of tokenized text: samples -> chunks -> token ids, without padding.

Three flat arrays hold everything: the token ids of every chunk back to back, where each chunk
starts, and where each sample's chunks start. Storage is 4 bytes per token (2 for vocabularies
under 65,536) plus 8 bytes per chunk and per sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RaggedChunks:
    token_ids: np.ndarray  # uint16 or int32, every chunk's tokens back to back
    chunk_offsets: np.ndarray  # int64, len = chunks + 1
    sample_offsets: np.ndarray  # int64, len = samples + 1, indexes into chunk_offsets

    def __len__(self) -> int:
        return len(self.sample_offsets) - 1

    @property
    def num_chunks(self) -> np.ndarray:
        return np.diff(self.sample_offsets)

    @property
    def chunk_lengths(self) -> np.ndarray:
        return np.diff(self.chunk_offsets)

    @property
    def nbytes(self) -> int:
        return self.token_ids.nbytes + self.chunk_offsets.nbytes + self.sample_offsets.nbytes

    @classmethod
    def concatenate(cls, parts: list[RaggedChunks]) -> RaggedChunks:
        if len(parts) == 1:
            return parts[0]
        token_ids = np.concatenate([p.token_ids for p in parts])
        chunk_offsets = [np.zeros(1, dtype=np.int64)]
        sample_offsets = [np.zeros(1, dtype=np.int64)]
        tokens_before = chunks_before = 0
        for p in parts:
            chunk_offsets.append(p.chunk_offsets[1:] + tokens_before)
            sample_offsets.append(p.sample_offsets[1:] + chunks_before)
            tokens_before += int(p.chunk_offsets[-1])
            chunks_before += int(p.sample_offsets[-1])
        return cls(token_ids, np.concatenate(chunk_offsets), np.concatenate(sample_offsets))

    def sample(self, index: int) -> list[list[int]]:
        start, stop = self.sample_offsets[index], self.sample_offsets[index + 1]
        return [
            self.token_ids[self.chunk_offsets[c] : self.chunk_offsets[c + 1]].tolist() for c in range(start, stop)
        ]

    def to_lists(self) -> list[list[list[int]]]:
        return [self.sample(i) for i in range(len(self))]

    def pad(self, indices: np.ndarray, min_tokens: int = 0, pad_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Token ids and attention mask of samples ``indices``, both int64 [samples, chunks, tokens].

        Chunks are padded with ``pad_id`` to the longest chunk among these samples (or to
        ``min_tokens`` when that is longer); samples with fewer chunks get all-padding chunks,
        whose attention mask is all zero.
        """
        starts = self.sample_offsets[indices]
        counts = self.sample_offsets[indices + 1] - starts
        max_chunks = int(counts.max()) if len(counts) else 0
        # every chunk of these samples, with its sample row and chunk column
        rows = np.repeat(np.arange(len(indices)), counts)
        cols = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
        chunk_ids = starts[rows] + cols
        lengths = self.chunk_offsets[chunk_ids + 1] - self.chunk_offsets[chunk_ids]
        width = max(int(lengths.max()) if len(lengths) else 0, min_tokens)
        ids = np.full((len(indices), max_chunks, width), pad_id, dtype=np.int64)
        mask = np.zeros((len(indices), max_chunks, width), dtype=np.int64)
        token_rows = np.repeat(rows, lengths)
        token_cols = np.repeat(cols, lengths)
        positions = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        sources = np.repeat(self.chunk_offsets[chunk_ids], lengths) + positions
        ids[token_rows, token_cols, positions] = self.token_ids[sources]
        mask[token_rows, token_cols, positions] = 1
        return ids, mask


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= np.iinfo(np.uint16).max + 1 else np.dtype(np.int32)

