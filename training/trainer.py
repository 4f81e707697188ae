"""Assemble the Lightning Trainer from the config, the process plan and the contract's locations; run it."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import Logger
from lightning.pytorch.strategies import DDPStrategy, ModelParallelStrategy, Strategy
from torch.distributed.fsdp import FSDPModule
from torch.utils.data import DataLoader

from contracts.errors import ConfigError
from hyperparams.config import Config
from models.backbone import Backbone
from models.classifier import Classifier
from models.registry import build_model
from training.checkpoint_integrity import inspect_checkpoint
from training.checkpoints import LAST, AtomicCheckpointIO, RunState, saved_run
from training.continuation import ContinuableEarlyStopping
from training.distributed import ProcessPlan
from training.interruption import StopOnSignal, keep_lightning_off_sigterm
from training.module import ClassifierModule
from training.precision import choose_precision
from training.progress import TuningMetricLines, progress_callback
from training.sampling import ResumableLoader
from training.sharding import ShardedClassifierModule
from training.stop_request import StopRequest
from training.timing import StepTimer
from training.tracking import LogConfiguration

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
        log.info(
            "val_check_interval=%d exceeds the %d batches per epoch; validating once per epoch", value, train_batches
        )
        return 1.0
    return int(value)


def training_module(model: Classifier, config: Config, plan: ProcessPlan) -> ClassifierModule:
    """The LightningModule; under ``strategy=fsdp`` one that shards its BERT encoders."""
    return (ShardedClassifierModule if plan.strategy == "fsdp" else ClassifierModule)(model, config)


def lightning_strategy(plan: ProcessPlan) -> Strategy | str:
    backend = "nccl" if plan.on_gpu else "gloo"
    if plan.strategy == "fsdp":
        # Full (not per-rank) checkpoint files: one file to resume from, export and copy to S3.
        return ModelParallelStrategy(
            data_parallel_size=plan.world_size,
            tensor_parallel_size=1,
            save_distributed_checkpoint=False,
            process_group_backend=backend,
        )
    if plan.strategy == "ddp":
        return DDPStrategy(process_group_backend=backend)
    return "auto"


def build_trainer(
    config: Config,
    plan: ProcessPlan,
    train_rows: int,
    checkpoints_dir: Path,
    loggers: list[Logger],
    data_digests: Mapping[str, str],
    stop: StopRequest,
    metric_lines: bool = True,
    interactive: bool = True,
) -> pl.Trainer:
    """The Trainer; with ``metric_lines`` it prints ``val/<metric>=<value>`` after every validation,
    the lines a tuning job's metric definitions read (see ``training.progress``); ``interactive``
    allows a redrawn progress bar when stdout is a terminal."""
    mode = monitor_mode(config.early_stop_metric)
    checkpoint = ModelCheckpoint(
        dirpath=checkpoints_dir,
        filename=CHECKPOINT_NAME,
        auto_insert_metric_name=False,
        monitor=config.early_stop_metric,
        mode=mode,
        save_top_k=1,
        save_last=True,
        enable_version_counter=False,  # last.ckpt is overwritten, never joined by a last-v1.ckpt
    )
    callbacks = [
        RunState(config, data_digests, checkpoints_dir / LAST),
        StopOnSignal(stop, checkpoints_dir / LAST),
        ContinuableEarlyStopping(monitor=config.early_stop_metric, mode=mode, patience=config.early_stop_patience),
        LearningRateMonitor(logging_interval="step"),
        progress_callback(interactive),
        LogConfiguration(config),
        checkpoint,
        StepTimer(),
        *([TuningMetricLines()] if metric_lines else []),
    ]
    precision = choose_precision(config.fp16, plan.accelerator)
    if plan.strategy == "fsdp" and precision == "16-mixed":
        raise ConfigError(
            "strategy=fsdp with fp16=true needs GPUs with bf16 (Ampere or newer), and these have none; "
            "set fp16=false, or strategy=ddp."
        )
    batches_per_rank = math.ceil(math.ceil(train_rows / plan.world_size) / config.batch_size)
    plan.export()
    log.info("Training with %s", plan.describe())
    trainer = pl.Trainer(
        accelerator=plan.accelerator,
        devices=plan.devices,
        num_nodes=plan.num_nodes,
        strategy=lightning_strategy(plan),
        precision=precision,
        max_epochs=config.max_epochs,
        val_check_interval=validation_interval(config, batches_per_rank),
        gradient_clip_val=config.gradient_clip_val or None,
        accumulate_grad_batches=config.accumulate_grad_batches,
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        logger=loggers,
        default_root_dir=checkpoints_dir,
        log_every_n_steps=10,
        num_sanity_val_steps=0,
        enable_model_summary=False,
        use_distributed_sampler=False,  # training.sampling shards the data itself, resumably
        deterministic=False,
    )
    keep_lightning_off_sigterm(trainer)
    return trainer


def fit(
    trainer: pl.Trainer, module: ClassifierModule, train: ResumableLoader, val: DataLoader, resume: Path | None
) -> None:
    """Train (continuing from ``resume`` when given); every rank returns together."""
    if resume is not None and (position := saved_run(resume).get("data_position")):
        train.resume(position)
    trainer.fit(module, train, val, ckpt_path=resume)
    trainer.strategy.barrier("training finished")


def exported_checkpoint(trainer: pl.Trainer, config: Config) -> str:
    """The checkpoint whose weights ``trained_model`` returns: the best one under ``load_ckpt`` when
    one was saved; "" for the last step's weights. The manifest reports the same choice from it.

    The best checkpoint is looked up by name in this run's checkpoint folder: a resumed checkpoint
    records the path it had when it was written, and the folder may have moved since (restored to
    another LocalPath, copied to another machine), where the old path is gone or another copy's."""
    callback = trainer.checkpoint_callback
    if not config.load_ckpt or not callback.best_model_path:
        return ""
    return str(Path(callback.dirpath) / Path(callback.best_model_path).name)


def check_best_checkpoint(best: Path) -> None:
    """Raise ConfigError naming ``best`` when it is damaged or gone: its weights are what ``load_ckpt``
    exports, and no other checkpoint stands in for them without changing what the job delivers."""
    found = inspect_checkpoint(best)
    if not found.intact:
        raise ConfigError(
            f"The best checkpoint {best}, whose weights load_ckpt exports, cannot be used: {found.problem}. "
            f"Training is complete and saved in {best.parent / LAST}: restore {best.name} (e.g. from the "
            "checkpoint_s3_uri copy) and restart with the same config to export it, or delete the checkpoint "
            "folder to train again."
        )


def trained_model(
    trainer: pl.Trainer, module: ClassifierModule, config: Config, backbone: Backbone
) -> Classifier | None:
    """The classifier to export and evaluate, with full (unsharded) weights, on global rank 0; None on other ranks.

    With ``load_ckpt`` the weights are the best checkpoint's (by ``early_stop_metric``), else the
    last step's. Under FSDP the weights are gathered from every rank into a new, unsharded
    classifier, so this must be called on every rank.
    """
    best = exported_checkpoint(trainer, config)
    if config.load_ckpt and not best:
        log.warning("load_ckpt: no best checkpoint was saved; exporting the last weights")
    sharded = isinstance(module.model, FSDPModule)
    state = trainer.strategy.lightning_module_state_dict() if sharded and not best else None
    if not trainer.is_global_zero:
        return None
    if best:
        check_best_checkpoint(Path(best))
        state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
        log.info("load_ckpt: exporting the weights of the best checkpoint %s", best)
    if state is None:
        return module.model
    model = build_model(config, Backbone.from_dict(backbone.to_dict())) if sharded else module.model
    model.load_state_dict({k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")})
    return model
