"""On-disk cache of tokenized text, so a restarted job (spot interruption, retry) skips the text chain.

An entry is keyed by everything its content depends on: the input file's bytes, the column, the
text settings, the tokenizer (its full serialised form, vocabulary included) and the chain itself:
the source of the modules that read and encode text, and the versions of the libraries and the
Unicode data that decide their output. A changed file, setting, tokenizer or chain therefore never
reuses a stale entry, with no version number to remember to bump (any edit of those modules, a
comment included, costs one re-tokenization). Entries are written to a temporary name and renamed,
so a killed job leaves no half-written entry; a write that fails (a full disk, a stop) removes its
temporary file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import unicodedata
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import emoji
import numpy as np
import tokenizers

from processing.text.chunking import ChunkStats
from processing.text.ragged import RaggedChunks

log = logging.getLogger(__name__)

PROCESSING = Path(__file__).resolve().parent
# Modules whose code decides a cached column's content: the text chain, how its input is read and
# the chain built (files, preparation), and this file.
CHAIN_SOURCES = ("text/*.py", "cache.py", "files.py", "preparation.py")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tokenizer_fingerprint(tokenizer) -> str:
    return hashlib.sha256(tokenizer.backend_tokenizer.to_str().encode()).hexdigest()


def source_fingerprint(root: Path, paths: Iterable[Path]) -> str:
    """sha256 over the files' names relative to ``root`` and their bytes, independent of where the
    code is installed and of the order the paths come in."""
    digest = hashlib.sha256()
    for path in sorted(paths, key=lambda p: p.relative_to(root).as_posix()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def chain_sources(root: Path = PROCESSING) -> list[Path]:
    return [path for pattern in CHAIN_SOURCES for path in root.glob(pattern)]


@cache
def chain_fingerprint() -> str:
    """The chain's code and library versions, hashed once per process."""
    versions = f"emoji {emoji.__version__}, tokenizers {tokenizers.__version__}, unicode {unicodedata.unidata_version}"
    return hashlib.sha256(f"{source_fingerprint(PROCESSING, chain_sources())} {versions}".encode()).hexdigest()


def cache_key(file_digest: str, column: str, settings: dict[str, Any], tokenizer_digest: str) -> str:
    payload = json.dumps(
        {
            "file": file_digest,
            "column": column,
            "settings": settings,
            "tokenizer": tokenizer_digest,
            "chain": chain_fingerprint(),
        },
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
        try:
            np.savez(
                partial,
                token_ids=chunks.token_ids,
                chunk_offsets=chunks.chunk_offsets,
                sample_offsets=chunks.sample_offsets,
                stats=np.array(json.dumps(dataclasses.asdict(stats))),
            )
            os.replace(partial, final)
        finally:  # a full disk or a stop mid-write leaves neither a partial file nor a half entry
            partial.unlink(missing_ok=True)
