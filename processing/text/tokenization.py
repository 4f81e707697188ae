"""The tokenizer at the end of every text chain: all messages of a batch in one call, then packed.

All messages of a batch are tokenized in one call to the fast (Rust) tokenizer, without special
tokens and without offsets; text that looks like a special token (``[SEP]`` typed by a user) stays
plain text. The ids land in one flat array, which a packer from :mod:`processing.text.chunking`
turns into chunks ``[CLS] ... [SEP]``.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass

import numpy as np

from processing.text.chunking import ChunkStats, DialogueChunker, Layout, SingleChunk
from processing.text.ragged import RaggedChunks, token_dtype


@dataclass
class TokenizedMessages:
    """Token ids of many messages, no special tokens: ``ids`` back to back, ``lengths`` per message."""

    ids: np.ndarray
    lengths: list[int]


class Tokenizer:
    """A fast tokenizer that encodes messages without special tokens, truncation or padding."""

    def __init__(self, tokenizer):
        if not getattr(tokenizer, "is_fast", False):
            raise TypeError("the text chain needs a fast (Rust) tokenizer")
        self.tokenizer = tokenizer
        # A tokenizer.json may carry its own truncation/padding (MiniLM's pads and cuts at 128);
        # chunking decides lengths here, so encode with a copy that does neither.
        self.backend = copy.deepcopy(tokenizer.backend_tokenizer)
        self.backend.no_truncation()
        self.backend.no_padding()
        self.backend.encode_special_tokens = True
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
        self,
        tokenized: TokenizedMessages,
        counts: list[int],
        packer: DialogueChunker | SingleChunk,
        stats: ChunkStats,
    ) -> RaggedChunks:
        """The samples' chunks of token ids; ``counts[i]`` messages belong to sample ``i``."""
        layout = Layout()
        packer.pack(tokenized.lengths, counts, layout, stats)
        chunks = layout.fill(tokenized.ids, self.cls_id, self.sep_id, self.dtype)
        stats.tokens += len(chunks.token_ids)
        return chunks

    def __repr__(self) -> str:
        return f"Tokenizer({type(self.tokenizer).__name__})"
