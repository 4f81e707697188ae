"""SIGTERM (a stopped job, a spot interruption: about two minutes' grace) -> checkpoint, then exit.

Outside training the signal stops the job at once: nothing would be lost that a restart does not
redo (preprocessed text is cached; a finished training is checkpointed). During training the
signal only raises a flag. At the end of the current optimizer step, or of the current
validation batch, every rank agrees on the flag (one collective, so all stop at the same batch),
``last.ckpt`` is saved, and ``Interrupted`` propagates with the checkpoint's path. A flag raised
after the last of those checks is acted on when training ends, once the finished state is saved.

A validation that the signal cuts short, or that was due right after the step the job stopped at,
is not redone: the resumed run trains on from the next batch (Lightning's resume semantics). The
weights are unaffected; early stopping and the best checkpoint miss that one validation.

``StopRequest``'s handler (``training.stop_request``) is installed for the whole job by the entry
script, before its heavy imports, and Lightning is kept from installing its own
(``keep_lightning_off_sigterm``). Lightning's handler broadcasts from inside the signal handler,
where the broadcast can meet a different collective on another rank, and makes its loops raise
``SIGTERMException`` at the next batch without a checkpoint.
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.trainer.connectors.signal_connector import _SignalConnector

from contracts.errors import Interrupted
from training.stop_request import StopRequest

log = logging.getLogger(__name__)


class _SignalConnectorWithoutSigterm(_SignalConnector):
    """Lightning's signal connector, registering no handler: SIGTERM stays with ``StopRequest``.

    Lightning registers its handlers at the start of every ``fit`` (after ``on_fit_start``, before
    ``on_train_start``) and restores the previous ones at its teardown; doing neither leaves the
    job's handler in place throughout. Its only other handler is SLURM's requeue signal, which a
    SageMaker job never gets.
    """

    def register_signal_handlers(self) -> None:
        self.received_sigterm = False


def keep_lightning_off_sigterm(trainer: pl.Trainer) -> None:
    """Stop ``trainer`` from replacing the job's SIGTERM handler (see the module docstring for why).

    Lightning has no setting for this; its connector is a private attribute, checked against the
    pinned Lightning release by the tests (a SIGTERM just before training starts must still be ours).
    """
    trainer._signal_connector = _SignalConnectorWithoutSigterm(trainer)


class StopOnSignal(Callback):
    """Saves ``last.ckpt`` and raises ``Interrupted`` once a SIGTERM has been received on any rank."""

    def __init__(self, request: StopRequest, checkpoint: Path):
        self.request = request
        self.checkpoint = checkpoint

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.request.deferred = True

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """A signal after the last check (say, in the final validation) still ends the job.

        Training is complete and ``RunState`` (an earlier callback) has just saved it as finished,
        so a restart goes straight to export and evaluation.
        """
        self.request.deferred = False
        if self._stop_agreed(trainer):
            log.warning("Stopped after training finished; checkpoint saved at %s", self.checkpoint)
            raise Interrupted(
                f"interrupted after training finished; checkpoint saved at {self.checkpoint}. "
                "A restart with the same config exports and evaluates without training again."
            )

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self.request.deferred = False

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx: int):
        done = batch_idx + 1
        step_done = done % trainer.accumulate_grad_batches == 0 or done == trainer.num_training_batches
        if step_done and self._stop_agreed(trainer):
            self._save_and_stop(trainer)

    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs,
        batch,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if trainer.state.fn == "fit" and not trainer.sanity_checking and self._stop_agreed(trainer):
            self._save_and_stop(trainer)

    def _stop_agreed(self, trainer: pl.Trainer) -> bool:
        return bool(trainer.strategy.reduce_boolean_decision(self.request.received, all=False))

    def _save_and_stop(self, trainer: pl.Trainer) -> None:
        trainer.save_checkpoint(self.checkpoint)
        log.warning("Stopped at step %d; checkpoint saved at %s", trainer.global_step, self.checkpoint)
        raise Interrupted(
            f"interrupted; checkpoint saved at {self.checkpoint}. A restart with the same config resumes from it."
        )
