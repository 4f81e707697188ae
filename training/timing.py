"""How long a training step and a validation batch take, measured in the run itself.

The first ``MEASURED`` steps and validation batches are timed exactly (on a GPU the clock waits for
the device), then measuring stops so a long job pays nothing for it. The figures are logged when
training ends and turned into an estimated time per epoch by the dry run. Validation is timed per
row, since its last batch (or a dry run's only batch) is often smaller than the others.
"""

from __future__ import annotations

import logging
import statistics
import time

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback

log = logging.getLogger(__name__)

MEASURED = 20


class StepTimer(Callback):
    def __init__(self):
        self.train_seconds: list[float] = []
        self.validation_seconds: list[float] = []
        self.validation_rows: list[int] = []
        self._started = 0.0

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int) -> None:
        self._started = time.perf_counter()

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        self._record(self.train_seconds, pl_module)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._started = time.perf_counter()

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if not trainer.sanity_checking and self._record(self.validation_seconds, pl_module):
            self.validation_rows.append(len(batch["labels"]))

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.train_seconds:
            log.info(
                "Speed: %.3f s per training step (median of the first steps), %s per 1,000 validation rows",
                self.step_seconds,
                f"{1000 * self.validation_row_seconds:.1f} s" if self.validation_rows else "n/a",
            )

    @property
    def step_seconds(self) -> float:
        """Median training step, leaving out the first (it pays for one-time set-up) when there are others."""
        return statistics.median(_warm(self.train_seconds))

    @property
    def validation_row_seconds(self) -> float:
        """Seconds per validation row over the measured batches."""
        return sum(self.validation_seconds) / max(1, sum(self.validation_rows))

    def _record(self, into: list[float], pl_module: pl.LightningModule) -> bool:
        if len(into) >= MEASURED:
            return False
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        into.append(time.perf_counter() - self._started)
        return True


def _warm(seconds: list[float]) -> list[float]:
    return seconds[1:] if len(seconds) > 1 else seconds


def step_timer(trainer: pl.Trainer) -> StepTimer:
    """The trainer's StepTimer (``build_trainer`` adds one to every trainer)."""
    return next(c for c in trainer.callbacks if isinstance(c, StepTimer))
