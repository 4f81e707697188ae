"""On-disk cache of tokenized text, so a restarted job (spot interruption, retry) skips the text chain.

An entry is keyed by everything its content depends on: the input file's bytes, the column, the
text settings, the tokenizer (its full serialised form, vocabulary included) and
``CHAIN_VERSION``, bumped whenever the chain's output for the same input changes. A changed
file, setting or tokenizer therefore never reuses a stale entry. Entries are written to a
temporary name and renamed, so a killed job leaves no half-written entry.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from processing.text.ragged import RaggedChunks
from processing.text.tokenization import ChunkStats

log = logging.getLogger(__name__)

CHAIN_VERSION = 2


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tokenizer_fingerprint(tokenizer) -> str:
    return hashlib.sha256(tokenizer.backend_tokenizer.to_str().encode()).hexdigest()


def cache_key(file_digest: str, column: str, settings: dict[str, Any], tokenizer_digest: str) -> str:
    payload = json.dumps(
        {"file": file_digest, "column": column, "settings": settings, "tokenizer": tokenizer_digest, "v": CHAIN_VERSION},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


class TextCache:
    """Tokenized columns stored as ``<key>.npz`` (ragged arrays plus chunking statistics)."""

    def __init__(self, folder: Path):
        self.folder = folder

    def load(self, key: str) -> tuple[RaggedChunks, ChunkStats] | None:
        path = self.folder / f"{key}.npz"
        if not path.is_file():
            return None
        try:
            with np.load(path) as data:
                chunks = RaggedChunks(data["token_ids"], data["chunk_offsets"], data["sample_offsets"])
                stats = ChunkStats(**json.loads(str(data["stats"])))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("Ignoring unreadable cache entry %s (%s)", path, exc)
            return None
        return chunks, stats

    def save(self, key: str, chunks: RaggedChunks, stats: ChunkStats) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        final = self.folder / f"{key}.npz"
        partial = self.folder / f".{key}.{os.getpid()}.partial.npz"
        np.savez(
            partial,
            token_ids=chunks.token_ids,
            chunk_offsets=chunks.chunk_offsets,
            sample_offsets=chunks.sample_offsets,
            stats=np.array(json.dumps(dataclasses.asdict(stats))),
        )
        os.replace(partial, final)
