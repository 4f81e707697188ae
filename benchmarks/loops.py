"""Two ways to run the same training steps, timed per iteration: our Lightning path and a minimal
hand-written PyTorch loop. Both see the same model initialisation, batches, precision and threads."""

from __future__ import annotations

import itertools
import tempfile
import time
from contextlib import nullcontext

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback

from hyperparams.config import Config
from models.registry import build_model
from training.data import fit_loaders
from training.module import ClassifierModule
from training.optimization import build_optimizer, warmup_then_linear_decay
from training.precision import choose_precision


class IterationTimer(Callback):
    """Wall time between consecutive batch starts (one whole iteration: data, step, Lightning's
    bookkeeping), plus the part spent outside the step itself (waiting for data and the loop)."""

    def __init__(self):
        self.starts: list[float] = []
        self.ends: list[float] = []
        self.losses: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.starts.append(time.perf_counter())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.ends.append(time.perf_counter())
        self.losses.append(float(outputs["loss"]))

    def iteration_times(self) -> list[float]:
        return [b - a for a, b in zip(self.starts, self.starts[1:])]

    def waits(self) -> list[float]:
        """Time from the end of one step to the start of the next: fetching the batch plus loop overhead."""
        return [b - a for a, b in zip(self.ends, self.starts[1:])]

    def step_times(self) -> list[float]:
        return [b - a for a, b in zip(self.starts, self.ends)]


def train_loader(config: Config, split, pad_id: int):
    """The job's own training loader (shuffled per epoch from the seed)."""
    return fit_loaders({"train": split, "val": split}, config, pad_id=pad_id)[0]


def fresh_model(config: Config, backbone, train_split, dropout: bool = True):
    """The job's model from the seed. ``dropout=False`` zeroes every dropout (BERT's attention
    dropout reads its module's ``p`` too): dropout masks depend on tensor shapes, so only then do
    two runs that differ in padding alone produce the same losses."""
    pl.seed_everything(config.seed, verbose=False)
    model = build_model(config, backbone)
    if model.tabular is not None:
        model.tabular.fit_scale(train_split.tabular)
    if not dropout:
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
    return model


def lightning_run(
    config: Config, backbone, train_split, steps: int, pad_id: int, workers: int | None = None, dropout: bool = True
) -> IterationTimer:
    """``steps`` optimizer steps through our LightningModule and a Trainer configured like the job's
    (precision, clipping, LR monitor, TensorBoard logging), without validation or checkpoints."""
    from lightning.pytorch.callbacks import LearningRateMonitor
    from lightning.pytorch.loggers import TensorBoardLogger

    model = fresh_model(config, backbone, train_split, dropout)
    loader = train_loader(config, train_split, pad_id)
    if workers is not None:
        loader = torch.utils.data.DataLoader(
            loader.dataset, batch_size=config.batch_size, shuffle=True, collate_fn=loader.collate_fn,
            num_workers=workers, persistent_workers=workers > 0, generator=torch.Generator().manual_seed(config.seed),
        )
    timer = IterationTimer()
    with tempfile.TemporaryDirectory() as logs:
        trainer = pl.Trainer(
            accelerator="cpu",
            devices=1,
            precision=choose_precision(config.fp16, "cpu"),
            max_steps=steps,
            limit_val_batches=0,
            gradient_clip_val=config.gradient_clip_val or None,
            callbacks=[timer, LearningRateMonitor(logging_interval="step")],
            logger=TensorBoardLogger(save_dir=logs, name="", version=""),
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            log_every_n_steps=10,
        )
        trainer.fit(ClassifierModule(model, config), loader)
    return timer


def raw_run(config: Config, backbone, train_split, steps: int, pad_id: int) -> tuple[list[float], list[float]]:
    """The same steps as a bare loop: forward, loss, backward, clip, step, schedule. Returns the
    per-iteration wall times and the losses."""
    model = fresh_model(config, backbone, train_split).train()
    loader = train_loader(config, train_split, pad_id)
    loss_fn = torch.nn.CrossEntropyLoss(
        weight=torch.tensor(config.class_weights) if config.class_weights else None
    )
    optimizer = build_optimizer(model, config)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_then_linear_decay(config.warmup_steps, steps))
    precision = choose_precision(config.fp16, "cpu")
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16-mixed" else nullcontext()
    starts, losses = [], []
    batches = iter(loader)
    for _ in range(steps):
        starts.append(time.perf_counter())
        batch = next(batches)
        with autocast:
            loss = loss_fn(model(batch), batch["labels"])
        loss.backward()
        if config.gradient_clip_val:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.gradient_clip_val)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.detach().item())
    starts.append(time.perf_counter())
    return [b - a for a, b in itertools.pairwise(starts)], losses


def steady(times: list[float], warmup: int = 2) -> list[float]:
    """Drop the first iterations (allocator and autocast caches warming up)."""
    return times[warmup:] if len(times) > warmup + 1 else times

