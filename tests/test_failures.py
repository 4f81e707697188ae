"""Bad input through the real entry script: a failure file that says what to change, exit 1,
and nothing in model/."""

from __future__ import annotations

import json

import pytest
from synthetic import hyperparameters, make_rows, write_job


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
