"""Training that continues: a rerun with a larger ``max_epochs`` or ``early_stop_patience`` trains on.

A checkpoint is resumed only by a run with the same configuration and data
(``training.checkpoints``), except for the two bounds in ``CONTINUABLE_FIELDS``: raising them on an
interrupted or finished run trains it further, which is how a run is made longer without starting
over. What else a continued run needs:

- a finished run (``max_epochs`` reached, or early stopping's patience exhausted) trains again only
  when the bound that ended it was raised (``trains_again``); otherwise a restart still only
  exports and evaluates;
- early stopping keeps this run's ``early_stop_patience`` (Lightning's ``EarlyStopping`` would take
  the saved one back), together with its saved count of validations without improvement;
- the learning-rate schedule is re-planned for the new last step (``training.optimization``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.callbacks.early_stopping import EarlyStoppingReason

CONTINUABLE_FIELDS = ("max_epochs", "early_stop_patience")


class ContinuableEarlyStopping(EarlyStopping):
    """Early stopping whose restored state keeps this run's patience, so a raised one takes effect."""

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        patience = self.patience
        super().load_state_dict(state_dict)
        self.patience = patience


def trains_again(checkpoint: Mapping[str, Any], stopping: EarlyStopping | None, max_epochs: int, patience: int) -> bool:
    """Whether a run saved as finished has training left under these bounds: fewer epochs done than
    ``max_epochs``, and either early stopping had not ended it (``max_epochs`` had) or ``patience``
    now allows more validations without improvement than it had counted."""
    if checkpoint.get("epoch", 0) >= max_epochs:
        return False
    state = checkpoint.get("callbacks", {}).get(stopping.state_key) if stopping is not None else None
    reason = EarlyStoppingReason((state or {}).get("stopping_reason", EarlyStoppingReason.NOT_STOPPED.value))
    if reason == EarlyStoppingReason.NOT_STOPPED:
        return True
    return reason == EarlyStoppingReason.PATIENCE_EXHAUSTED and patience > state["wait_count"]


def continued_bounds(saved_config: Mapping[str, Any], config: Mapping[str, Any]) -> str:
    """The continuable fields this run changed, as ``max_epochs: 1 -> 2``; empty when none."""
    return "; ".join(
        f"{name}: {saved_config.get(name)!r} -> {config[name]!r}"
        for name in CONTINUABLE_FIELDS
        if saved_config.get(name) != config[name]
    )
