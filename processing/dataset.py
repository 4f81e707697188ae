"""Preprocessed splits as tensors-to-be, and the collate that pads each batch.

A split is preprocessed once; a batch is cut from its arrays by index. The collate pads token ids
to the longest chunk and the most chunks in the batch (or every chunk to ``max_sen_len`` with
``fixed_tokenizer_length``).

Batch keys (also the ONNX input names): for one text column, ``input_ids`` and ``attention_mask``
(named by ``text_input_ids_key`` / ``text_attention_mask_key``), each int64 [batch, chunks,
tokens]; for two, the same keys prefixed with ``primary_`` and ``secondary_``. Then ``tabular``
(float32 [batch, features]), ``labels`` (int64 [batch]) and ``index`` (row numbers in the split).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from hyperparams.config import Config
from hyperparams.rules import INDEX_KEY, LABELS_KEY, TABULAR_KEY
from processing.text.ragged import RaggedChunks


@dataclass(frozen=True)
class TextKeys:
    input_ids: str = "input_ids"
    attention_mask: str = "attention_mask"

    @classmethod
    def of(cls, config: Config) -> TextKeys:
        return cls(config.text_input_ids_key, config.text_attention_mask_key)

    def for_role(self, role: str) -> tuple[str, str]:
        """Batch keys of one text role: unprefixed for a single text, prefixed for two."""
        prefix = "" if role == "text" else f"{role}_"
        return prefix + self.input_ids, prefix + self.attention_mask


@dataclass
class EncodedSplit:
    """One split after preprocessing: everything the model needs, nothing padded."""

    texts: Mapping[str, RaggedChunks]  # text role -> chunks
    tabular: np.ndarray  # float32 [rows, features]
    labels: np.ndarray  # int64 [rows]

    def __len__(self) -> int:
        return len(self.labels)


class RowIndices(Dataset):
    """A dataset of row numbers: the collate builds the whole batch from the split's arrays."""

    def __init__(self, size: int):
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> int:
        return index


class BatchCollator:
    """Row numbers -> a padded batch dict of tensors (see the module docstring for the keys)."""

    def __init__(self, split: EncodedSplit, keys: TextKeys, pad_id: int = 0, fixed_length: int = 0):
        self.split = split
        self.keys = keys
        self.pad_id = pad_id
        self.fixed_length = fixed_length

    def __call__(self, rows: list[int]) -> dict[str, torch.Tensor]:
        indices = np.asarray(rows, dtype=np.int64)
        batch: dict[str, torch.Tensor] = {}
        for role, chunks in self.split.texts.items():
            ids, mask = chunks.pad(indices, min_tokens=self.fixed_length, pad_id=self.pad_id)
            ids_key, mask_key = self.keys.for_role(role)
            batch[ids_key] = torch.from_numpy(ids)
            batch[mask_key] = torch.from_numpy(mask)
        batch[TABULAR_KEY] = torch.from_numpy(self.split.tabular[indices])
        batch[LABELS_KEY] = torch.from_numpy(self.split.labels[indices])
        batch[INDEX_KEY] = torch.from_numpy(indices)
        return batch

    @classmethod
    def of(cls, split: EncodedSplit, config: Config, pad_id: int) -> BatchCollator:
        """The collate for ``split`` as the config asks (padded per batch, or to max_sen_len)."""
        return cls(split, TextKeys.of(config), pad_id, config.max_sen_len if config.fixed_tokenizer_length else 0)
