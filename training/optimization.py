"""Optimizer and learning-rate schedule: parameter groups, SGD/Adam/AdamW, warm-up then linear decay.

Parameters fall into up to four named groups, which the training curves show as ``lr-<optimizer>/<name>``:
``pretrained`` and ``pretrained_no_decay`` (the weights loaded from ``tokenizer``: the transformer, and
its pooler unless ``reinit_pooler``; at ``lr``), ``new`` and ``new_no_decay`` (everything initialised
here: tabular encoder, fusion, head, CNN/LSTM encoders; at ``head_lr``, default ``lr``). Biases (any
parameter named ``bias`` or ``*_bias``/``bias_*``, as LSTMs and attention name theirs) and
LayerNorm, BatchNorm and embedding weights are never decayed, whatever the optimizer.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from hyperparams.config import Config

NO_DECAY_MODULES = (nn.LayerNorm, nn.BatchNorm1d, nn.Embedding)


def parameter_groups(model: nn.Module, weight_decay: float, lr: float, head_lr: float | None = None) -> list[dict]:
    """The optimizer's parameter groups (empty ones left out), each with its ``name``, ``lr`` and ``weight_decay``."""
    no_decay: set[int] = set()
    pretrained: set[int] = set()
    for module in model.modules():
        if hasattr(module, "pretrained_parameters"):
            pretrained.update(id(p) for p in module.pretrained_parameters())
        if isinstance(module, NO_DECAY_MODULES) or "LayerNorm" in type(module).__name__:
            no_decay.update(id(p) for p in module.parameters(recurse=False))
        for name, param in module.named_parameters(recurse=False):
            if name == "bias" or name.startswith("bias_") or name.endswith("_bias"):
                no_decay.add(id(param))
    trainable = [p for p in model.parameters() if p.requires_grad]
    groups = []
    for origin, from_pretrained, group_lr in (("pretrained", True, lr), ("new", False, head_lr or lr)):
        for decayed in (True, False):
            params = [
                p for p in trainable if (id(p) in pretrained) == from_pretrained and (id(p) not in no_decay) == decayed
            ]
            if params:
                name = origin if decayed else f"{origin}_no_decay"
                groups.append(
                    {"name": name, "params": params, "lr": group_lr, "weight_decay": weight_decay if decayed else 0.0}
                )
    return groups


def build_optimizer(model: nn.Module, config: Config) -> torch.optim.Optimizer:
    groups = parameter_groups(model, config.weight_decay, config.lr, config.head_lr)
    if config.optimizer == "SGD":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum)
    if config.optimizer == "Adam":
        return torch.optim.Adam(groups, lr=config.lr, eps=config.adam_epsilon)
    return torch.optim.AdamW(groups, lr=config.lr, eps=config.adam_epsilon)


def warmup_then_linear_decay(warmup: int, total: int) -> Callable[[int], float]:
    """LR factor: 0 -> 1 over ``warmup`` steps, then 1 -> 0 at step ``total``."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor


def schedule(optimizer: torch.optim.Optimizer, config: Config, total_steps: int) -> dict:
    """Lightning's ``lr_scheduler`` entry: warm-up and linear decay per step, or ``lr_decay`` per epoch."""
    if config.run_scheduler:
        factor = warmup_then_linear_decay(config.warmup_steps, max(total_steps, 1))
        return {"scheduler": torch.optim.lr_scheduler.LambdaLR(optimizer, factor), "interval": "step"}
    decay = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=1.0 - config.lr_decay)
    return {"scheduler": decay, "interval": "epoch"}
