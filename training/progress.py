"""Progress output: a rich bar in a terminal, plain periodic log lines everywhere else.

Log collectors such as CloudWatch store every carriage-return redraw of a progress bar as a new
line, so outside a terminal the job logs one line every ``every_seconds`` instead, with the step,
loss, throughput and an ETA for the epoch.
"""

from __future__ import annotations

import logging
import sys
import time

from lightning.pytorch.callbacks import Callback, ProgressBar, RichProgressBar

log = logging.getLogger("progress")


class PlainProgress(ProgressBar):
    def __init__(self, every_seconds: float = 30.0):
        super().__init__()
        self.every_seconds = every_seconds
        self._enabled = True

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer, pl_module) -> None:
        self.on_train_epoch_start(trainer, pl_module)  # a run resumed mid-epoch gets no epoch start

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._epoch_start = self._last_log = time.monotonic()
        self._samples = self._batches = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._samples += len(batch["labels"])
        self._batches += 1
        now = time.monotonic()
        done = batch_idx + 1
        total = self.total_train_batches
        last = isinstance(total, int) and done == total
        if not self._enabled or (now - self._last_log < self.every_seconds and not last):
            return
        self._last_log = now
        elapsed = max(now - self._epoch_start, 1e-9)
        eta = (total - done) * elapsed / self._batches if isinstance(total, int) else float("nan")
        loss = trainer.callback_metrics.get("train/loss_step")
        log.info(
            "epoch %d/%d step %d/%s loss %s %.1f samples/s eta %s",
            trainer.current_epoch + 1,
            trainer.max_epochs,
            done,
            total,
            f"{float(loss):.4f}" if loss is not None else "n/a",
            self._samples / elapsed,
            _duration(eta),
        )

    def on_validation_end(self, trainer, pl_module) -> None:
        if not self._enabled or trainer.sanity_checking:
            return
        shown = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        log.info(
            "validation at step %d: %s", trainer.global_step, " ".join(f"{k}={v:.4f}" for k, v in sorted(shown.items()))
        )


class TuningMetricLines(Callback):
    """After each validation, one line per validation metric, e.g. ``val/auroc=0.9412``, on global
    rank 0: a hyperparameter tuning job reads them with its metric definitions
    (``^val/auroc=([0-9.]+)$``) while training runs, so it can stop weak jobs early. The job prints
    the same lines for the final metrics when it ends (those of the whole val set), last."""

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        bar = trainer.progress_bar_callback  # prints around a live bar instead of through it
        for name, value in sorted(trainer.callback_metrics.items()):
            if name.startswith("val/"):
                line = f"{name}={float(value):.4f}"
                if bar is not None:
                    bar.print(line)
                else:
                    print(line, flush=True)


def progress_callback(interactive: bool) -> ProgressBar:
    """A redrawn bar for a person at a terminal; plain lines for everything else (a job on SageMaker
    may run with a terminal, as local mode does, but its log goes to a collector)."""
    return RichProgressBar() if interactive and sys.stdout.isatty() else PlainProgress()


def _duration(seconds: float) -> str:
    if seconds != seconds:  # nan
        return "n/a"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"
