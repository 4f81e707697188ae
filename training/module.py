"""The LightningModule: the classifier, its loss, its validation metrics, its optimizer and schedule."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
import torchmetrics
from torch import nn
from torchmetrics import classification as tmc

from hyperparams.config import Config
from hyperparams.rules import LABELS_KEY
from models.classifier import Classifier
from training.optimization import build_optimizer, schedule


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
        labels = batch[LABELS_KEY]
        loss = self.loss_fn(self.model(batch), labels)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(labels))
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        logits = self.model(batch)
        labels = batch[LABELS_KEY]
        loss = self.loss_fn(logits, labels)
        self.log("val/loss", loss, on_epoch=True, prog_bar=True, sync_dist=True, batch_size=len(labels))
        probs = logits.float().softmax(dim=-1)
        self.val_metrics.update(probs[:, 1] if self.config.is_binary else probs, labels)

    def on_validation_epoch_end(self) -> None:
        self.log_dict(self.val_metrics.compute(), prog_bar=False)
        self.val_metrics.reset()

    def configure_optimizers(self):
        optimizer = build_optimizer(self.model, self.config)
        total_steps = int(self.trainer.estimated_stepping_batches)
        return {"optimizer": optimizer, "lr_scheduler": schedule(optimizer, self.config, total_steps)}


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
