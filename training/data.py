"""The training and validation DataLoaders: sharded across processes, the training one resumable."""

from __future__ import annotations

from torch.utils.data import DataLoader

from hyperparams.config import Config
from processing.dataset import BatchCollator, EncodedSplit, RowIndices
from processing.loaders import EVAL_BATCH_MULTIPLIER, loader_options, padded_sizes
from training.sampling import LengthGrouping, ResumableLoader, sharded_batches


def fit_loaders(
    splits: dict[str, EncodedSplit], config: Config, *, pad_id: int, on_gpu: bool = False
) -> tuple[ResumableLoader, DataLoader]:
    """This rank's training loader and validation loader (in order)."""
    val = splits["val"]
    val_loader = DataLoader(
        RowIndices(len(val)),
        batch_sampler=sharded_batches(len(val), config.batch_size * EVAL_BATCH_MULTIPLIER, shuffle=False),
        collate_fn=BatchCollator.of(val, config, pad_id),
        **loader_options(on_gpu),
    )
    return training_loader(splits["train"], config, pad_id=pad_id, on_gpu=on_gpu), val_loader


def training_loader(train: EncodedSplit, config: Config, *, pad_id: int, on_gpu: bool = False) -> ResumableLoader:
    """Shuffled per epoch from ``seed``; with ``group_by_length``, in batches of rows of similar padded size."""
    grouping = (
        LengthGrouping(padded_sizes(train), config.batch_size, config.length_group_window)
        if config.group_by_length
        else None
    )
    return ResumableLoader(
        RowIndices(len(train)),
        batch_sampler=sharded_batches(len(train), config.batch_size, shuffle=True, seed=config.seed, grouping=grouping),
        collate_fn=BatchCollator.of(train, config, pad_id),
        **loader_options(on_gpu),
    )


def padded_tokens_per_row(loader: DataLoader) -> float:
    """Token positions (chunks x padded length, over every text) the model gets per row in one pass of ``loader``."""
    collate: BatchCollator = loader.collate_fn
    ids_keys = [collate.keys.for_role(role)[0] for role in collate.split.texts]
    tokens = rows = 0
    for rows_of_batch in loader.batch_sampler:
        batch = collate(rows_of_batch)
        tokens += sum(batch[key].numel() for key in ids_keys)
        rows += len(rows_of_batch)
    return tokens / max(rows, 1)
