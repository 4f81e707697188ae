"""Which rows each process trains and validates on, batch by batch, reproducibly and resumably.

Every epoch's order is a permutation seeded by ``(seed, epoch)`` alone, so a run that restarts
from a checkpoint sees exactly the batches an uninterrupted run would have seen. Under DDP or
FSDP each rank takes every ``world``-th row of that order; like ``DistributedSampler``, the order
is padded by wrapping around so every rank runs the same number of batches (collectives stay in
step). Final evaluation does not use this: it runs once over every row on global rank 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import BatchSampler, DataLoader, Sampler


def world_position() -> tuple[int, int]:
    """(rank, world size) of this process once the process group exists; (0, 1) before and without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class ShardedRows(Sampler[int]):
    """This rank's row numbers for one epoch; the rank is read when iterating, after the process group exists.

    ``set_epoch`` (called by Lightning on ``batch_sampler.sampler``) picks the epoch's order;
    ``resume_at`` makes the next pass over that epoch start after the rows already trained on.
    """

    def __init__(self, rows: int, *, shuffle: bool, seed: int = 0):
        self.rows = rows
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self._resume: tuple[int, int] = (-1, 0)  # (epoch, rows of it already trained on)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def resume_at(self, epoch: int, rows_done: int) -> None:
        self.epoch = epoch
        self._resume = (epoch, rows_done)

    @property
    def rows_skipped(self) -> int:
        """Rows of the current epoch that a resumed run skips (0 unless resuming into this epoch)."""
        resume_epoch, done = self._resume
        return done if resume_epoch == self.epoch else 0

    def __len__(self) -> int:
        _, world = world_position()
        return math.ceil(self.rows / world)

    def __iter__(self) -> Iterator[int]:
        if self.shuffle:
            order = torch.randperm(self.rows, generator=torch.Generator().manual_seed(self.seed + self.epoch)).tolist()
        else:
            order = list(range(self.rows))
        rank, world = world_position()
        total = math.ceil(self.rows / world) * world
        order += (order * math.ceil(total / max(len(order), 1)))[: total - len(order)]
        yield from order[rank:total:world][self.rows_skipped :]


def sharded_batches(rows: int, batch_size: int, *, shuffle: bool, seed: int = 0) -> BatchSampler:
    return BatchSampler(ShardedRows(rows, shuffle=shuffle, seed=seed), batch_size, drop_last=False)


class ResumableLoader(DataLoader):
    """A training DataLoader that reports how far into the epoch it is and can continue from there.

    Rows are counted as batches are handed to the training loop, not as workers prefetch them.
    (Lightning's own stateful-loader hook is not used: with a step-based LR schedule Lightning
    builds the loader before it restores the checkpoint, and never hands the state back.)
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._rows_handed_out = 0

    @property
    def rows(self) -> ShardedRows:
        return self.batch_sampler.sampler

    def __iter__(self) -> Iterator[Any]:
        self._rows_handed_out = self.rows.rows_skipped
        for batch in super().__iter__():
            self._rows_handed_out += self.batch_sampler.batch_size
            yield batch

    def position(self) -> dict[str, int]:
        return {"epoch": self.rows.epoch, "rows_done": self._rows_handed_out}

    def resume(self, position: dict[str, int]) -> None:
        self.rows.resume_at(position["epoch"], position["rows_done"])
