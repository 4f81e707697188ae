"""Training that continues: a rerun with a larger max_epochs (or early_stop_patience) trains on from
last.ckpt, with the learning-rate schedule re-planned from where it stood; any other change is refused."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from helpers.data import hyperparameters, write_job
from helpers.jobs import failure_reason
from hyperparams.loading import validate_config
from training.checkpoints import run_fingerprint
from training.continuation import ContinuableEarlyStopping, trains_again
from training.optimization import WarmupLinearDecay


def scheduler(total: int, warmup: int = 2, lr: float = 1.0) -> WarmupLinearDecay:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    return WarmupLinearDecay(optimizer, warmup, total)


def resumed(saved: WarmupLinearDecay, total: int, warmup: int = 2) -> WarmupLinearDecay:
    """A new run's scheduler restored as Lightning restores it: the optimizer's state first, then the schedule's."""
    decay = scheduler(total, warmup)
    decay.optimizer.load_state_dict(saved.optimizer.state_dict())
    decay.load_state_dict(saved.state_dict())
    return decay


def rates(decay: WarmupLinearDecay, steps: int) -> list[float]:
    """The rate of each of the next ``steps`` optimizer steps."""
    taken = []
    for _ in range(steps):
        taken.append(decay.optimizer.param_groups[0]["lr"])
        decay.optimizer.step()
        decay.step()
    return taken


def test_a_finished_schedule_extended_decays_from_its_last_rate_to_zero_at_the_new_end():
    first = scheduler(total=10)
    before = rates(first, 10)
    assert before[-1] == pytest.approx(1 / 8) and first.get_last_lr() == [0.0]
    longer = resumed(first, total=20)
    after = rates(longer, 10)
    assert after == pytest.approx([before[-1] * (20 - s) / (20 - 9) for s in range(10, 20)])
    assert all(a > b > 0 for a, b in zip([before[-1], *after], after))  # smooth, falling, never 0 before the end
    assert longer.get_last_lr() == [0.0]
    assert longer.state_dict()["lr_lambdas"][0]["total"] == 20  # a later resume knows the new plan


def test_an_interrupted_schedule_resumed_with_the_same_total_is_unchanged():
    uninterrupted = rates(scheduler(total=20), 20)
    first = scheduler(total=20)
    rates(first, 7)
    assert rates(resumed(first, total=20), 13) == uninterrupted[7:]


def test_a_schedule_extended_during_warm_up_finishes_its_warm_up_then_decays_to_the_new_end():
    first = scheduler(total=10, warmup=4)
    rates(first, 2)
    expected = [0.75, 1.0] + [(20 - s) / 16 for s in range(4, 20)]  # warm-up steps 2 and 3, then the decay
    assert rates(resumed(first, total=20, warmup=4), 18) == pytest.approx(expected)


def checkpoint(epoch: int, reason: int | None = None, wait_count: int = 0) -> dict:
    stopping = ContinuableEarlyStopping(monitor="val/loss", patience=2)
    state = {} if reason is None else {stopping.state_key: {"stopping_reason": reason, "wait_count": wait_count}}
    return {"epoch": epoch, "callbacks": state}, stopping


@pytest.mark.parametrize(
    ("epoch", "reason", "wait_count", "max_epochs", "patience", "expected"),
    [
        (1, 0, 0, 1, 3, False),  # max_epochs reached, unchanged: only export and evaluate again
        (1, 0, 0, 2, 3, True),  # max_epochs raised
        (1, None, 0, 2, 3, True),  # no early stopping state at all
        (0, 3, 3, 5, 3, False),  # early stopping ended it; patience unchanged
        (0, 3, 3, 9, 3, False),  # ... and only max_epochs raised: it would stop again at once
        (0, 3, 3, 5, 6, True),  # patience raised
        (2, 3, 3, 2, 6, False),  # patience raised, but max_epochs was reached too
        (0, 4, 0, 5, 6, False),  # stopped on a metric that is not finite: more patience does not help
    ],
)
def test_a_finished_run_trains_again_only_when_the_bound_that_ended_it_was_raised(
    epoch, reason, wait_count, max_epochs, patience, expected
):
    saved, stopping = checkpoint(epoch, reason, wait_count)
    assert trains_again(saved, stopping, max_epochs, patience) is expected


def test_restored_early_stopping_keeps_this_runs_patience():
    stopping = ContinuableEarlyStopping(monitor="val/loss", patience=6)
    saved = ContinuableEarlyStopping(monitor="val/loss", patience=2)
    saved.wait_count = 2
    stopping.load_state_dict(saved.state_dict())
    assert (stopping.patience, stopping.wait_count) == (6, 2)


def test_the_run_fingerprint_ignores_only_the_bounds(tiny_bert):
    digests = {"train": "t", "val": "v"}
    fingerprint = run_fingerprint(validate_config(hyperparameters(tiny_bert)), digests)
    for longer in ({"max_epochs": 9}, {"early_stop_patience": 7}):
        assert run_fingerprint(validate_config(hyperparameters(tiny_bert, **longer)), digests) == fingerprint
    assert run_fingerprint(validate_config(hyperparameters(tiny_bert, seed=1)), digests) != fingerprint


def learning_rates(base) -> list[tuple[int, float]]:
    """(step, lr) of the first parameter group from every run's TensorBoard events in the folder."""
    events = EventAccumulator(str(base / "output" / "data" / "tensorboard_train"))
    events.Reload()
    tag = next(t for t in sorted(events.Tags()["scalars"]) if t.startswith("lr-"))
    return sorted({e.step: e.value for e in events.Scalars(tag)}.items())


def test_one_epoch_then_a_rerun_with_two_trains_the_second_epoch(tmp_path, tiny_bert, run_main, capsys, caplog):
    """160 rows at batch 4: 40 steps per epoch, the rate logged every 10 steps. The rerun resumes the
    finished run, trains steps 40-79 with the rate falling from the first run's last rate to ~0 at
    step 80, and reports its metrics; a changed lr is still refused."""
    settings = {"batch_size": 4, "lr": 0.01, "warmup_steps": 2}
    base = write_job(tmp_path, hyperparameters(tiny_bert, max_epochs=1, **settings), rows=(160, 16, 16))
    config_file = base / "code" / "hyperparams" / "hyperparameters.json"
    assert run_main(base) == 0
    first = learning_rates(base)
    assert [step for step, _ in first] == [9, 19, 29, 39]
    last_rate = first[-1][1]
    assert last_rate == pytest.approx(0.01 / 38)  # the last step of a plan that ends at step 40

    config_file.write_text(json.dumps(hyperparameters(tiny_bert, max_epochs=2, **settings)))
    capsys.readouterr()
    with caplog.at_level(logging.INFO):
        assert run_main(base) == 0
    assert "to continue training (max_epochs: 1 -> 2; same data and other settings)" in caplog.text
    saved = torch.load(base / "checkpoints" / "last.ckpt", weights_only=True)
    assert (saved["epoch"], saved["global_step"]) == (2, 80)
    manifest = json.loads((base / "model" / "manifest.json").read_text())
    assert manifest["training"]["epochs_completed"] == 2 and manifest["config"]["max_epochs"] == 2

    second = learning_rates(base)[4:]
    assert [step for step, _ in second] == [49, 59, 69, 79]
    expected = [last_rate * (80 - step) / (80 - 39) for step, _ in second]
    assert [rate for _, rate in second] == pytest.approx(expected, rel=1e-5)
    assert second[-1][1] < last_rate / 40

    printed = capsys.readouterr().out
    metrics = json.loads((base / "output" / "data" / "metrics.json").read_text())
    assert f"test/auroc={metrics['test']['auroc']:.4f}" in printed.splitlines()

    config_file.write_text(json.dumps(hyperparameters(tiny_bert, max_epochs=3, **{**settings, "lr": 0.02})))
    assert run_main(base) == 1
    assert "was written by a different run (lr: 0.01 -> 0.02)" in failure_reason(base)


def test_a_run_ended_by_early_stopping_trains_again_when_patience_is_raised(tmp_path, tiny_bert, run_main):
    """A rate too small to move any weight: val/loss never improves after the first validation, so
    early stopping ends the run after ``early_stop_patience`` more (one validation per step here)."""
    settings = {"batch_size": 16, "lr": 1e-12, "val_check_interval": 0.25, "max_epochs": 5}
    base = write_job(tmp_path, hyperparameters(tiny_bert, early_stop_patience=1, **settings), rows=(64, 16, 16))
    config_file = base / "code" / "hyperparams" / "hyperparameters.json"

    def steps_after(**changes) -> int:
        config_file.write_text(json.dumps(hyperparameters(tiny_bert, **{**settings, **changes})))
        assert run_main(base) == 0, failure_reason(base)
        return torch.load(base / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]

    assert steps_after(early_stop_patience=1) == 2
    assert steps_after(early_stop_patience=1, max_epochs=9) == 2  # more epochs do not undo early stopping
    assert steps_after(early_stop_patience=3) == 4  # two more validations without improvement
