"""The LightningModule: loss, validation metrics, optimizer and learning-rate schedule."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
import torchmetrics
from torch import nn
from torchmetrics import classification as tmc
from transformers import PreTrainedModel

from hyperparams import Config
from models.classifier import Classifier

NO_DECAY_MODULES = (nn.LayerNorm, nn.BatchNorm1d, nn.Embedding)


class ClassifierModule(pl.LightningModule):
    def __init__(self, model: Classifier, config: Config):
        super().__init__()
        self.model = model
        self.config = config
        weights = torch.tensor(config.class_weights, dtype=torch.float32) if config.class_weights else None
        self.loss_fn = nn.CrossEntropyLoss(weight=weights)
        self.val_metrics = validation_metrics(config)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.model(batch)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.loss_fn(self.model(batch), batch["labels"])
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(batch["labels"]))
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        logits = self.model(batch)
        labels = batch["labels"]
        loss = self.loss_fn(logits, labels)
        self.log("val/loss", loss, on_epoch=True, prog_bar=True, sync_dist=True, batch_size=len(labels))
        probs = logits.float().softmax(dim=-1)
        self.val_metrics.update(probs[:, 1] if self.config.is_binary else probs, labels)

    def on_validation_epoch_end(self) -> None:
        self.log_dict(self.val_metrics.compute(), prog_bar=False)
        self.val_metrics.reset()

    def configure_optimizers(self):
        optimizer = build_optimizer(self.model, self.config)
        if self.config.run_scheduler:
            total = max(int(self.trainer.estimated_stepping_batches), 1)
            schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_then_linear_decay(self.config.warmup_steps, total))
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
        schedule = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=1.0 - self.config.lr_decay)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "epoch"}}


def warmup_then_linear_decay(warmup: int, total: int):
    """LR factor: 0 -> 1 over ``warmup`` steps, then 1 -> 0 at step ``total``."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor


def parameter_groups(model: nn.Module, weight_decay: float, lr: float, head_lr: float | None = None) -> list[dict]:
    """Optimizer groups: biases and normalisation/embedding weights are not decayed; parameters of
    the pretrained transformer train at ``lr``, everything initialised here (tabular encoder,
    fusion, head, CNN/LSTM encoders) at ``head_lr`` (default ``lr``)."""
    no_decay: set[int] = set()
    pretrained: set[int] = set()
    for module in model.modules():
        if isinstance(module, PreTrainedModel):
            pretrained.update(id(p) for p in module.parameters())
        if isinstance(module, NO_DECAY_MODULES) or "LayerNorm" in type(module).__name__:
            no_decay.update(id(p) for p in module.parameters(recurse=False))
        for name, param in module.named_parameters(recurse=False):
            if name == "bias":
                no_decay.add(id(param))
    trainable = [p for p in model.parameters() if p.requires_grad]
    groups = []
    for from_pretrained, group_lr in ((True, lr), (False, head_lr or lr)):
        for decayed in (True, False):
            params = [p for p in trainable if (id(p) in pretrained) == from_pretrained and (id(p) not in no_decay) == decayed]
            if params:
                groups.append({"params": params, "lr": group_lr, "weight_decay": weight_decay if decayed else 0.0})
    return groups


def build_optimizer(model: nn.Module, config: Config) -> torch.optim.Optimizer:
    groups = parameter_groups(model, config.weight_decay, config.lr, config.head_lr)
    if config.optimizer == "SGD":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum)
    if config.optimizer == "Adam":
        return torch.optim.Adam(groups, lr=config.lr, eps=config.adam_epsilon)
    return torch.optim.AdamW(groups, lr=config.lr, eps=config.adam_epsilon)


def validation_metrics(config: Config) -> torchmetrics.MetricCollection:
    """torchmetrics for the metrics in ``metric_choices``, logged as ``val/<name>``."""
    if config.is_binary:
        makers = {
            "auroc": lambda: tmc.BinaryAUROC(),
            "average_precision": lambda: tmc.BinaryAveragePrecision(),
            "f1_score": lambda: tmc.BinaryF1Score(),
            "precision": lambda: tmc.BinaryPrecision(),
            "recall": lambda: tmc.BinaryRecall(),
            "accuracy": lambda: tmc.BinaryAccuracy(),
        }
    else:
        k = config.num_classes
        makers = {
            "auroc": lambda: tmc.MulticlassAUROC(num_classes=k, average="macro"),
            "average_precision": lambda: tmc.MulticlassAveragePrecision(num_classes=k, average="macro"),
            "f1_score": lambda: tmc.MulticlassF1Score(num_classes=k, average="macro"),
            "precision": lambda: tmc.MulticlassPrecision(num_classes=k, average="macro"),
            "recall": lambda: tmc.MulticlassRecall(num_classes=k, average="macro"),
            "accuracy": lambda: tmc.MulticlassAccuracy(num_classes=k, average="micro"),
        }
    return torchmetrics.MetricCollection({name: makers[name]() for name in config.metric_choices}, prefix="val/")
