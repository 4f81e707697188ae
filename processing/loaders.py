"""DataLoader settings shared by every loader, and the loader that scores a whole split.

Training's loaders (sharded across processes, resumable mid-epoch) are in ``training/data.py``;
scoring needs neither, so the evaluation after training and the batch scorer use this one.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch.utils.data import DataLoader

from hyperparams.config import Config
from processing.dataset import BatchCollator, EncodedSplit, RowIndices

EVAL_BATCH_MULTIPLIER = 4  # no activations kept for backward: scoring affords bigger batches


def loader_workers(on_gpu: bool) -> int:
    """Collating is a few numpy gathers; on a CPU a worker would only steal the model's cores."""
    if not on_gpu:
        return 0
    return max(0, min(4, (os.cpu_count() or 1) // max(1, torch.cuda.device_count()) - 1))


def loader_options(on_gpu: bool) -> dict:
    workers = loader_workers(on_gpu)
    # An own generator: worker seeds are then drawn from it, never from the global RNG that
    # dropout uses, so creating an iterator (more often in a resumed run) changes no weights.
    return {
        "num_workers": workers,
        "persistent_workers": workers > 0,
        "pin_memory": on_gpu,
        "generator": torch.Generator(),
    }


def scoring_loader(split: EncodedSplit, config: Config, *, pad_id: int, on_gpu: bool = False) -> DataLoader:
    """Every row of ``split`` once, in batches of rows of similar length.

    A batch is padded to its longest row, so batching rows of similar size keeps the big
    scoring batches nearly free of padding; batches carry their rows' ``index``, so results
    land in file order whatever the batch order.
    """
    order = rows_by_padded_size(split)
    size = config.batch_size * EVAL_BATCH_MULTIPLIER
    return DataLoader(
        RowIndices(len(split)),
        batch_sampler=[order[i : i + size].tolist() for i in range(0, len(order), size)],
        collate_fn=BatchCollator.of(split, config, pad_id),
        **loader_options(on_gpu),
    )


def rows_by_padded_size(split: EncodedSplit) -> np.ndarray:
    """Row numbers sorted by the padded size of their text (``padded_sizes``)."""
    return np.argsort(padded_sizes(split), kind="stable")


def padded_sizes(split: EncodedSplit) -> np.ndarray:
    """Each row's text as a batch of that row alone pads it: chunks x longest chunk, summed over texts.

    Scoring batches rows by it, and so does training with ``group_by_length``.
    """
    size = np.zeros(len(split), dtype=np.int64)
    for chunks in split.texts.values():
        longest = np.zeros(len(split), dtype=np.int64)
        np.maximum.at(longest, np.repeat(np.arange(len(split)), chunks.num_chunks), chunks.chunk_lengths)
        size += chunks.num_chunks * longest
    return size
