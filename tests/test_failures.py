"""Late failures and the failure file: a reason that says what to change, exit 1, and nothing of the
failed run in model/ or output/data. (Every rejected configuration and data file is in test_bad_inputs.py.)"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from contracts.failure import failure_reason as failure_reason_of
from export.staging import WORK_PREFIX
from helpers.data import hyperparameters, write_job
from helpers.jobs import assert_failed_cleanly, failure_reason, job_outputs


def test_success_clears_a_stale_failure_file(tmp_path, tiny_bert, run_main):
    base = write_job(tmp_path, hyperparameters(tiny_bert, max_epochs=1), rows=(40, 12, 12))
    (base / "output").mkdir(parents=True)
    (base / "output" / "failure").write_text("old failure")
    assert run_main(base, args=["train"]) == 0
    assert not (base / "output" / "failure").exists()
    assert (base / "model" / "model.onnx").is_file()


def test_previous_model_survives_a_failed_run(tmp_path, tiny_bert, run_main):
    base = write_job(tmp_path, hyperparameters(tiny_bert, max_epochs=1), rows=(40, 12, 12))
    assert run_main(base) == 0
    before = (base / "model" / "model.pth").read_bytes()
    config = base / "code" / "hyperparams" / "hyperparameters.json"
    config.write_text(json.dumps(hyperparameters(tiny_bert, batch_size=0)))
    assert run_main(base) == 1
    assert (base / "model" / "model.pth").read_bytes() == before


def fail(*_args, **_kwargs):
    raise RuntimeError("simulated late failure")


def fail_moving_metrics(real_replace):
    """os.replace that fails to move the staged metrics.json into output/data, after model/ has moved into place."""

    def replace(source, target):
        if Path(source).parent.name == "new" and Path(target).parts[-2:] == ("data", "metrics.json"):
            raise OSError("simulated late failure")
        return real_replace(source, target)

    return replace


LATE_FAILURES = {  # in the order the job reaches them, all after training
    "onnx parity": lambda patch: patch.setattr("export.onnx_export.PARITY_TOLERANCE", -1.0),
    "evaluation": lambda patch: patch.setattr("evaluation.report.write_tensorboard", fail),  # metrics.json is written
    "moving into place": lambda patch: patch.setattr("export.staging.os.replace", fail_moving_metrics(os.replace)),
}


@pytest.mark.parametrize("where", LATE_FAILURES)
def test_late_failure_leaves_the_previous_outputs_as_they_were(where, binary_job, tmp_path, run_main, monkeypatch):
    """The rerun resumes the finished checkpoint, so it fails in export or evaluation, not in training."""
    base = shutil.copytree(binary_job, tmp_path / "job")
    before = job_outputs(base)
    assert {"model/model.pth", "model/manifest.json", "output/data/metrics.json"} <= set(before)
    LATE_FAILURES[where](monkeypatch)
    assert run_main(base) == 1
    reason = failure_reason(base)
    assert ("disagrees with PyTorch" if where == "onnx parity" else "simulated late failure") in reason, reason
    assert job_outputs(base) == before
    assert not list(base.rglob(f"{WORK_PREFIX}*"))


def test_late_failure_of_a_first_run_leaves_no_model_and_no_evaluation(tmp_path, tiny_bert, run_main, monkeypatch):
    base = write_job(tmp_path, hyperparameters(tiny_bert, max_epochs=1), rows=(40, 12, 12))
    LATE_FAILURES["evaluation"](monkeypatch)
    assert_failed_cleanly(base, run_main(base), "simulated late failure")
    assert job_outputs(base) == {}
    assert (base / "output" / "data" / "tensorboard_train").is_dir()  # the curves of the failed run stay


@pytest.mark.parametrize(
    "exc",
    [
        torch.OutOfMemoryError(
            "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.1 GiB"
        ),
        RuntimeError("MPS backend out of memory (MPS allocated: 8.00 GB, other allocations: 1.2 GB)"),
    ],
    ids=["cuda", "other backend"],
)
def test_device_out_of_memory_says_which_settings_lower_memory(exc):
    reason = failure_reason_of(exc)
    assert reason.startswith("Out of GPU memory; lower batch_size (raise accumulate_grad_batches")
    for setting in ("max_sen_len", "max_total_chunks", "fp16=true", "gradient_checkpointing=true"):
        assert setting in reason
    assert str(exc).split(".")[0] in reason and "looks like a bug" not in reason


def test_host_out_of_memory_and_other_errors():
    host = RuntimeError(
        "[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: you tried to ..."
    )
    assert failure_reason_of(host).startswith("Out of memory; lower batch_size")
    assert failure_reason_of(MemoryError()).startswith("Out of memory; lower batch_size")
    assert failure_reason_of(RuntimeError("shape mismatch")) == (
        "Unexpected RuntimeError: shape mismatch. This looks like a bug; the traceback below shows where."
    )


def test_out_of_memory_in_training_reaches_the_failure_file(tmp_path, tiny_bert, run_main, monkeypatch):
    import job.steps

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB")

    monkeypatch.setattr(job.steps, "fit", out_of_memory)
    base = write_job(tmp_path, hyperparameters(tiny_bert, max_epochs=1), rows=(24, 8, 8))
    reason = ("Out of GPU memory; lower batch_size", "(CUDA out of memory. Tried to allocate 20.00 MiB)")
    assert_failed_cleanly(base, run_main(base), *reason)
