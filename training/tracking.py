"""Where training is tracked: TensorBoard always, SageMaker's TensorBoard path and MLflow when the job has them.

- ``output/data/tensorboard_train/``: the training curves, written live, in every run.
- SageMaker syncs TensorBoard logs live from ``/opt/ml/output/tensorboard`` (or the ``LocalPath``
  of ``tensorboardoutputconfig.json``) when the job has a TensorBoard output configuration; the
  same curves go there too.
- MLflow, when ``MLFLOW_TRACKING_URI`` is set (SageMaker's managed MLflow sets it to the tracking
  server's ARN, which the ``sagemaker-mlflow`` plugin resolves): the hyperparameters, every logged
  training and validation metric, then (``job.steps.track``) the final metrics as
  ``final/<split>/<metric>`` and the files of ``model/``. The experiment is
  ``MLFLOW_EXPERIMENT_NAME`` (default below), the run is named after the SageMaker job
  (``TRAINING_JOB_NAME``) when there is one.

Every logger gets the resolved configuration as hyperparameters (TensorBoard's hparams, MLflow's
params). Lightning's loggers write on global rank 0 only.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import Logger, MLFlowLogger, TensorBoardLogger

from hyperparams.config import Config

log = logging.getLogger(__name__)

DEFAULT_EXPERIMENT = "multimodal-training"


def training_loggers(
    config: Config, curves_dir: Path, sagemaker_tensorboard: Path | None, mlflow: bool
) -> list[Logger]:
    """The loggers of one training run (``LogConfiguration`` gives them the configuration)."""
    loggers: list[Logger] = [TensorBoardLogger(save_dir=curves_dir, name="", version="")]
    if sagemaker_tensorboard is not None:
        loggers.append(TensorBoardLogger(save_dir=sagemaker_tensorboard, name="", version=""))
        log.info("Training curves also go to %s, which SageMaker syncs to TensorBoard", sagemaker_tensorboard)
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if mlflow and uri:
        experiment = os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT
        loggers.append(MLFlowLogger(experiment_name=experiment, tracking_uri=uri,
                                    run_name=os.environ.get("TRAINING_JOB_NAME")))
        log.info("Tracking with MLflow at %s, experiment %s", uri, experiment)
    return loggers


class LogConfiguration(Callback):
    """Gives every logger the resolved configuration as hyperparameters, once the process knows its
    rank (before that every process believes it is rank 0, and a second host would write its own)."""

    def __init__(self, config: Config):
        self.hyperparameters = config.model_dump(mode="json")

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for logger in trainer.loggers:
            logger.log_hyperparams(self.hyperparameters)
