"""DataLoaders over preprocessed splits."""

from __future__ import annotations

import os

import torch
from torch.utils.data import DataLoader

from hyperparams import Config
from models.registry import text_keys
from processing.dataset import BatchCollator, EncodedSplit, RowIndices

EVAL_BATCH_MULTIPLIER = 4  # no activations kept for backward: evaluation affords bigger batches


def loader_workers(on_gpu: bool) -> int:
    """Collating is a few numpy gathers; on a CPU a worker would only steal the model's cores."""
    if not on_gpu:
        return 0
    return max(0, min(4, (os.cpu_count() or 1) // max(1, torch.cuda.device_count()) - 1))


def make_loader(split: EncodedSplit, config: Config, *, train: bool, pad_id: int, on_gpu: bool = False) -> DataLoader:
    workers = loader_workers(on_gpu)
    collate = BatchCollator(split, text_keys(config), pad_id, config.max_sen_len if config.fixed_tokenizer_length else 0)
    generator = torch.Generator().manual_seed(config.seed) if train else None
    return DataLoader(
        RowIndices(len(split)),
        batch_size=config.batch_size if train else config.batch_size * EVAL_BATCH_MULTIPLIER,
        shuffle=train,
        collate_fn=collate,
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=on_gpu,
        generator=generator,
    )
