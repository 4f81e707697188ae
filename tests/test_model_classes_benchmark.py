"""benchmarks/model_classes.py: one real dry run on the tiny BERT (each is a fresh interpreter, so
not all seven), and the table's rendering of a failure."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from helpers.data import hyperparameters, write_job

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import model_classes


@pytest.mark.benchmark
def test_a_dry_run_reports_pass_seconds_and_parameters(tmp_path, tiny_bert):
    demo = write_job(tmp_path / "demo", hyperparameters(tiny_bert, model_class="multimodal_bert"))
    [row] = model_classes.run(demo, ["lstm"])
    assert row["passed"], row["error"]
    assert row["model_class"] == "lstm" and row["parameters"] > 0 and row["seconds"] > 0
    assert (demo / "code").is_dir() and not (demo / "input" / "config").exists()  # the demo itself is untouched


def test_the_table_lists_failures_with_their_reason():
    rows = [
        {"model_class": "lstm", "passed": True, "seconds": 5.0, "parameters": 1234, "error": None},
        {"model_class": "bert", "passed": False, "seconds": 2.0, "parameters": None, "error": "config error: x"},
    ]
    table = model_classes.render(rows)
    assert "| `lstm` | pass | 5.0 | 1,234 |" in table and "| `bert` | FAIL | 2.0 | — |" in table
    assert "bert failed:\nconfig error: x" in table
    assert "dry runs passed: 1 of 2 model classes" in table


@pytest.mark.benchmark
def test_a_short_training_reports_the_test_auroc_the_job_printed(tmp_path, tiny_bert):
    demo = write_job(tmp_path / "demo", hyperparameters(tiny_bert, model_class="multimodal_bert", max_epochs=1))
    [row] = model_classes.run(demo, ["multimodal_gate_fusion"], train=True, overrides={"max_sen_len": 32})
    assert row["passed"], row["error"]
    assert 0.0 <= row["test_auroc"] <= 1.0 and row["parameters"] > 0
    table = model_classes.render([row])
    assert table.splitlines()[0].endswith("| Test AUROC |") and f"| {row['test_auroc']:.3f} |" in table
    assert "runs passed: 1 of 1 model classes" in table
