"""Progress output: plain periodic log lines unless stdout is a terminal (then a rich bar)."""

from __future__ import annotations

import logging
import os
import pty
import sys

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import RichProgressBar
from torch.utils.data import DataLoader

from training.progress import PlainProgress, progress_callback


class TickingClock:
    """Stands in for ``time`` in training.progress: each reading is ``step`` seconds after the last."""

    def __init__(self, step: float):
        self.now, self.step = 0.0, step

    def monotonic(self) -> float:
        reading = self.now
        self.now += self.step
        return reading


class TinyClassifier(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(2, 2)

    def training_step(self, batch, batch_idx):
        loss = torch.nn.functional.cross_entropy(self.layer(batch["x"]), batch["labels"])
        self.log("train/loss", loss, on_step=True, on_epoch=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_terminal_gets_a_rich_bar_and_a_pipe_or_a_sagemaker_job_plain_lines(monkeypatch):
    """SageMaker's local mode gives the container a terminal, but its log goes to a collector and a
    tuning job's regexes read it line by line: a job on SageMaker is not interactive."""
    for (reader, writer), interactive, expected in (
        (pty.openpty(), True, RichProgressBar),
        (pty.openpty(), False, PlainProgress),
        (os.pipe(), True, PlainProgress),
    ):
        try:
            with os.fdopen(writer, "w", closefd=False) as stdout:
                monkeypatch.setattr(sys, "stdout", stdout)
                assert type(progress_callback(interactive)) is expected
        finally:
            os.close(reader)
            os.close(writer)


def test_plain_progress_logs_step_loss_throughput_and_eta_every_interval(monkeypatch, caplog):
    monkeypatch.setattr("training.progress.time", TickingClock(step=10.0))
    batches = [{"x": torch.randn(4, 2), "labels": torch.tensor([0, 1, 0, 1])} for _ in range(10)]
    trainer = pl.Trainer(max_epochs=1, callbacks=[PlainProgress(every_seconds=30)], logger=False,
                         enable_checkpointing=False, enable_model_summary=False, accelerator="cpu")
    with caplog.at_level(logging.INFO, logger="progress"):
        trainer.fit(TinyClassifier(), DataLoader(batches, batch_size=None))
    lines = [r.getMessage() for r in caplog.records if r.name == "progress"]
    assert [line.split(" loss ")[0] for line in lines] == [f"epoch 1/1 step {n}/10" for n in (3, 6, 9, 10)]
    assert lines[0].endswith(" 0.4 samples/s eta 1m10s"), lines[0]
    assert lines[-1].endswith(" 0.4 samples/s eta 0m00s"), lines[-1]
    assert all(" loss 0." in line or " loss 1." in line for line in lines)
