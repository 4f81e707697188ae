"""Assemble the Lightning Trainer from the config and the contract's locations."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger

from hyperparams import Config
from training.precision import choose_precision
from training.progress import progress_callback
from training.timing import StepTimer

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "epoch={epoch}-step={step}"


def monitor_mode(metric: str) -> str:
    """Losses are minimised, every other metric maximised."""
    return "min" if metric.endswith("loss") else "max"


def validation_interval(config: Config, train_batches: int) -> float | int:
    """``val_check_interval`` as Lightning takes it, kept within one epoch of batches.

    A fraction (<= 1) of an epoch too small to reach one batch becomes one batch; a batch count
    larger than the epoch becomes once per epoch.
    """
    value = config.val_check_interval
    if value <= 1:
        if value * train_batches < 1:
            log.info("val_check_interval=%s is under one batch of %d; validating every batch", value, train_batches)
            return 1
        return float(value)
    if value > train_batches:
        log.info("val_check_interval=%d exceeds the %d batches per epoch; validating once per epoch", value, train_batches)
        return 1.0
    return int(value)


def build_trainer(config: Config, checkpoints_dir: Path, log_dir: Path, train_batches: int) -> pl.Trainer:
    mode = monitor_mode(config.early_stop_metric)
    checkpoint = ModelCheckpoint(
        dirpath=checkpoints_dir,
        filename=CHECKPOINT_NAME,
        auto_insert_metric_name=False,
        monitor=config.early_stop_metric,
        mode=mode,
        save_top_k=1,
        save_last=True,
    )
    callbacks = [
        checkpoint,
        EarlyStopping(monitor=config.early_stop_metric, mode=mode, patience=config.early_stop_patience),
        LearningRateMonitor(logging_interval="step"),
        progress_callback(),
        StepTimer(),
    ]
    return pl.Trainer(
        accelerator=config.accelerator,
        devices=config.devices,
        num_nodes=config.num_nodes or 1,
        strategy=config.strategy,
        precision=choose_precision(config.fp16, config.accelerator),
        max_epochs=config.max_epochs,
        val_check_interval=validation_interval(config, train_batches),
        gradient_clip_val=config.gradient_clip_val or None,
        accumulate_grad_batches=config.accumulate_grad_batches,
        callbacks=callbacks,
        logger=TensorBoardLogger(save_dir=log_dir, name="", version=""),
        default_root_dir=checkpoints_dir,
        log_every_n_steps=10,
        num_sanity_val_steps=0,
        enable_model_summary=False,
        deterministic=False,
    )


def load_best_weights(module: pl.LightningModule, trainer: pl.Trainer) -> None:
    """Put the best checkpoint's weights (by early_stop_metric) into ``module``."""
    best = trainer.checkpoint_callback.best_model_path
    if not best:
        log.warning("load_ckpt: no best checkpoint was saved; exporting the last weights")
        return
    state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
    module.load_state_dict(state)
    log.info("load_ckpt: exporting the weights of the best checkpoint %s", best)
