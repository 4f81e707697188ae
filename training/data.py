"""The training and validation DataLoaders: sharded across processes, the training one resumable."""

from __future__ import annotations

from torch.utils.data import DataLoader

from hyperparams.config import Config
from processing.dataset import BatchCollator, EncodedSplit, RowIndices
from processing.loaders import EVAL_BATCH_MULTIPLIER, loader_options
from training.sampling import ResumableLoader, sharded_batches


def fit_loaders(
    splits: dict[str, EncodedSplit], config: Config, *, pad_id: int, on_gpu: bool = False
) -> tuple[ResumableLoader, DataLoader]:
    """This rank's training loader (shuffled per epoch from ``seed``) and validation loader (in order)."""
    train, val = splits["train"], splits["val"]
    train_loader = ResumableLoader(
        RowIndices(len(train)),
        batch_sampler=sharded_batches(len(train), config.batch_size, shuffle=True, seed=config.seed),
        collate_fn=BatchCollator.of(train, config, pad_id),
        **loader_options(on_gpu),
    )
    val_loader = DataLoader(
        RowIndices(len(val)),
        batch_sampler=sharded_batches(len(val), config.batch_size * EVAL_BATCH_MULTIPLIER, shuffle=False),
        collate_fn=BatchCollator.of(val, config, pad_id),
        **loader_options(on_gpu),
    )
    return train_loader, val_loader
