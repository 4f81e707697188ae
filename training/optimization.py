"""Optimizer and learning-rate schedule: parameter groups, SGD/Adam/AdamW, warm-up then linear decay.

Parameters fall into up to four named groups, which the training curves show as ``lr-<optimizer>/<name>``:
``pretrained`` and ``pretrained_no_decay`` (the weights loaded from ``tokenizer``: the transformer, and
its pooler unless ``reinit_pooler``; at ``lr``), ``new`` and ``new_no_decay`` (everything initialised
here: tabular encoder, fusion, head, CNN/LSTM encoders; at ``head_lr``, default ``lr``). Biases (any
parameter named ``bias`` or ``*_bias``/``bias_*``, as LSTMs and attention name theirs) and
LayerNorm, BatchNorm and embedding weights are never decayed, whatever the optimizer.

The schedule (``run_scheduler``) is planned for ``max_epochs``; a run continued with a larger
``max_epochs`` re-plans it from where it stands (``WarmupLinearDecay``): no second warm-up, and a
decay from the current rate to 0 at the new last step.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from hyperparams.config import Config

log = logging.getLogger(__name__)

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


class LinearPlan:
    """The factor of each group's peak rate at optimizer step ``step``: 0 -> 1 over ``warmup`` steps,
    then linear from ``start_factor`` at step ``start`` to 0 at step ``total``.

    A fresh plan's decay starts at the end of warm-up at the peak. Its attributes are what
    ``LambdaLR`` keeps of it in a checkpoint, so a resumed run knows the total it was planned for.
    """

    def __init__(self, warmup: int, total: int):
        self.warmup = warmup
        self.total = total
        self.start = warmup
        self.start_factor = 1.0

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        return self.start_factor * max(0.0, (self.total - step) / max(1, self.total - self.start))

    def extend(self, total: int, steps_taken: int) -> None:
        """Re-plan for a new ``total`` after ``steps_taken`` steps: warm-up as before, and a decay
        from the factor of the last step taken to 0 at ``total``, so the rate goes on falling from
        where it was and is never 0 before the new end (the last step of a finished plan had a
        small rate; the one it would take next, 0)."""
        last = steps_taken - 1
        if last >= self.warmup:
            self.start, self.start_factor = last, self(last)
        self.total = total


def warmup_then_linear_decay(warmup: int, total: int) -> LinearPlan:
    """LR factor: 0 -> 1 over ``warmup`` steps, then 1 -> 0 at step ``total``."""
    return LinearPlan(warmup, total)


class WarmupLinearDecay(torch.optim.lr_scheduler.LambdaLR):
    """``LinearPlan`` for every parameter group, re-planned when a run resumes with another total.

    The total is planned from ``max_epochs``; a run continued with a larger one (``training.continuation``)
    restores the plan it was saved with and extends it to this run's total from the step it resumed at.
    With the same total nothing changes, so a resumed run follows its plan exactly.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, warmup: int, total: int):
        super().__init__(optimizer, warmup_then_linear_decay(warmup, total))

    @property
    def plan(self) -> LinearPlan:
        return self.lr_lambdas[0]

    def load_state_dict(self, state_dict: dict) -> None:
        total = self.plan.total
        super().load_state_dict(state_dict)  # the saved plan and step
        if self.plan.total == total:
            return
        saved_total, step = self.plan.total, self.last_epoch
        before = self.plan(step - 1) if step else 0.0
        self.plan.extend(total, step)
        # The optimizer state restored just before holds the saved plan's next rate (0 after a
        # finished plan); the next step must take the new plan's.
        self._last_lr = [base * self.plan(step) for base in self.base_lrs]
        for group, rate in zip(self.optimizer.param_groups, self._last_lr):
            group["lr"] = rate
        log.info(
            "Learning-rate schedule re-planned at step %d: the linear decay now ends at step %d instead of %d, "
            "going on from %.4g of the peak rate (no new warm-up)",
            step, total, saved_total, before,
        )


def schedule(optimizer: torch.optim.Optimizer, config: Config, total_steps: int) -> dict:
    """Lightning's ``lr_scheduler`` entry: warm-up and linear decay per step, or ``lr_decay`` per epoch."""
    if config.run_scheduler:
        decay = WarmupLinearDecay(optimizer, config.warmup_steps, max(total_steps, 1))
        return {"scheduler": decay, "interval": "step"}
    decay = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=1.0 - config.lr_decay)
    return {"scheduler": decay, "interval": "epoch"}
