"""Which rows each process trains and validates on, batch by batch, reproducibly and resumably.

Every epoch's order is a permutation seeded by ``(seed, epoch)`` alone, so a run that restarts
from a checkpoint sees exactly the batches an uninterrupted run would have seen. Under DDP or
FSDP each rank takes every ``world``-th row of that order; like ``DistributedSampler``, the order
is padded by wrapping around so every rank runs the same number of batches (collectives stay in
step). Final evaluation does not use this: it runs once over every row on global rank 0.

With length grouping (``group_by_length``, the pattern of Hugging Face's ``group_by_length`` and
fairseq's buckets) the permutation is then cut into windows of ``length_group_window`` batches,
each window is sorted by the rows' padded text size and cut into batches, and the batches are
shuffled, all from the same ``(seed, epoch)`` generator. A batch is padded to its longest row, so
rows of similar size waste little padding while the order of the batches stays random. It is done
on the order of the whole world, in batches of ``batch_size`` x ``world`` rows, before the ranks
take their every-``world``-th rows: each rank's batch ``i`` is its share of the same global batch,
so the ranks still run equal numbers of batches that together hold every row once.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import BatchSampler, DataLoader, Sampler


def world_position() -> tuple[int, int]:
    """(rank, world size) of this process once the process group exists; (0, 1) before and without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


@dataclass(frozen=True)
class LengthGrouping:
    """Batches of rows of similar padded size, in a random order of batches (see the module docstring)."""

    sizes: np.ndarray  # each row's padded text size (``processing.loaders.padded_sizes``)
    batch_size: int  # rows per batch and process
    window: int  # batches per window sorted by size

    def apply(self, order: list[int], world: int, generator: torch.Generator) -> list[int]:
        """``order`` (the epoch's, padded to a multiple of ``world``) regrouped: only the last batch
        may be short, and it stays last, so every rank's batches line up with the global ones."""
        if not order:
            return order
        rows = np.asarray(order, dtype=np.int64)
        batch = self.batch_size * world
        per_window = batch * self.window
        windows = [rows[i : i + per_window] for i in range(0, len(rows), per_window)]
        grouped = np.concatenate([w[np.argsort(self.sizes[w], kind="stable")] for w in windows])
        batches = [grouped[i : i + batch] for i in range(0, len(grouped), batch)]
        full = len(grouped) // batch
        shuffled = [batches[i] for i in torch.randperm(full, generator=generator).tolist()] + batches[full:]
        return np.concatenate(shuffled).tolist()


class ShardedRows(Sampler[int]):
    """This rank's row numbers for one epoch; the rank is read when iterating, after the process group exists.

    ``set_epoch`` (called by Lightning on ``batch_sampler.sampler``) picks the epoch's order;
    ``resume_at`` makes the next pass over that epoch start after the rows already trained on.
    """

    def __init__(self, rows: int, *, shuffle: bool, seed: int = 0, grouping: LengthGrouping | None = None):
        self.rows = rows
        self.shuffle = shuffle
        self.seed = seed
        self.grouping = grouping
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
        rank, world = world_position()
        yield from self.epoch_order(world)[rank::world][self.rows_skipped :]

    def epoch_order(self, world: int) -> list[int]:
        """The current epoch's order for all ``world`` ranks together, wrapped around to a multiple of ``world``."""
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(self.rows, generator=generator).tolist() if self.shuffle else list(range(self.rows))
        total = math.ceil(self.rows / world) * world
        order += (order * math.ceil(total / max(len(order), 1)))[: total - len(order)]
        if self.grouping is not None:
            order = self.grouping.apply(order, world, generator)
        return order


def sharded_batches(
    rows: int, batch_size: int, *, shuffle: bool, seed: int = 0, grouping: LengthGrouping | None = None
) -> BatchSampler:
    return BatchSampler(ShardedRows(rows, shuffle=shuffle, seed=seed, grouping=grouping), batch_size, drop_last=False)


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
