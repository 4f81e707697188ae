"""Bad input through the real entry script: a failure file that says what to change, exit 1,
and nothing in model/."""

from __future__ import annotations

import json

import pytest
import torch
from synthetic import hyperparameters, make_rows, write_job

from contracts.failure import failure_reason as failure_reason_of


def failure_reason(base) -> str:
    return (base / "output" / "failure").read_text().splitlines()[0]


def assert_failed_cleanly(base, status: int, *fragments: str) -> None:
    assert status == 1
    reason = failure_reason(base)
    assert len(reason) < 1024
    for fragment in fragments:
        assert fragment in reason, reason
    assert not (base / "model").exists() or not any((base / "model").iterdir())
    assert not list(base.glob(".model-staging-*"))


def test_bad_hyperparameter(tmp_path, tiny_bert, run_main):
    base = write_job(tmp_path, hyperparameters(tiny_bert, lr="-0.1"))
    assert_failed_cleanly(base, run_main(base), "'lr'", "greater than 0")


def test_missing_column(tmp_path, tiny_bert, run_main):
    frames = {s: make_rows(30, i) for i, s in enumerate(("train", "val", "test"))}
    frames["val"] = frames["val"].drop(columns=["score"])
    base = write_job(tmp_path, hyperparameters(tiny_bert), frames=frames)
    assert_failed_cleanly(base, run_main(base), "val file", "'score' (tab_field_list)")


def test_unknown_label(tmp_path, tiny_bert, run_main):
    frames = {s: make_rows(30, i) for i, s in enumerate(("train", "val", "test"))}
    frames["test"].loc[:4, "label"] = 7
    base = write_job(tmp_path, hyperparameters(tiny_bert), frames=frames)
    assert_failed_cleanly(base, run_main(base), "test file", "'7' (5 rows)")


def test_empty_file(tmp_path, tiny_bert, run_main):
    base = write_job(tmp_path, hyperparameters(tiny_bert))
    (base / "input" / "data" / "train" / "train.csv").write_text("")
    assert_failed_cleanly(base, run_main(base), "train.csv is empty")


def test_missing_split_folder(tmp_path, tiny_bert, run_main):
    base = write_job(tmp_path, hyperparameters(tiny_bert))
    for f in (base / "input" / "data" / "test").iterdir():
        f.unlink()
    assert_failed_cleanly(base, run_main(base), "No .csv, .tsv or .parquet file in the test folder")


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


@pytest.mark.parametrize(
    "exc",
    [
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.1 GiB"),
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
    host = RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: you tried to ...")
    assert failure_reason_of(host).startswith("Out of memory; lower batch_size")
    assert failure_reason_of(MemoryError()).startswith("Out of memory; lower batch_size")
    assert failure_reason_of(RuntimeError("shape mismatch")) == (
        "Unexpected RuntimeError: shape mismatch. This looks like a bug; the traceback below shows where."
    )


def test_out_of_memory_in_training_reaches_the_failure_file(tmp_path, tiny_bert, run_main, monkeypatch):
    import pytorch_training

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB")

    monkeypatch.setattr(pytorch_training, "fit", out_of_memory)
    base = write_job(tmp_path, hyperparameters(tiny_bert, max_epochs=1), rows=(24, 8, 8))
    reason = ("Out of GPU memory; lower batch_size", "(CUDA out of memory. Tried to allocate 20.00 MiB)")
    assert_failed_cleanly(base, run_main(base), *reason)
