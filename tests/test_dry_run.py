"""DRY_RUN=true through the entry script: the whole path on a sample, a report, and no trace in
model/, output/data/ or the checkpoint folder (where a later run would resume from checkpoints and
reuse the tokenized-text cache)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import pytorch_training
from export.staging import WORK_PREFIX
from helpers.data import NEUTRAL, hyperparameters, make_rows, write_job
from helpers.jobs import assert_failed_cleanly
from hyperparams.loading import validate_config
from job.dry_run import _time_estimate, sample_split
from training.timing import StepTimer

ROOT = Path(__file__).resolve().parent.parent
LONG_ROWS = [5, 50, 120]  # train rows given ~200 words: more than max_total_chunks=3 chunks of max_sen_len=32


def run_dry(base, scratch_root, extra_env=None):
    """main() with DRY_RUN=true in this process; returns (status, everything printed)."""
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SAGEMAKER_BASE_DIR", str(base))
        patch.setenv("DRY_RUN", "true")
        for key, value in (extra_env or {}).items():
            patch.setenv(key, value)
        patch.setattr(tempfile, "tempdir", str(scratch_root))
        with contextlib.redirect_stdout(printed):
            status = pytorch_training.main([])
    return status, printed.getvalue()


def snapshot(folder):
    return (
        {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()} if folder.exists() else None
    )


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory, tiny_bert):
    base = tmp_path_factory.mktemp("job")
    frames = {split: make_rows(n, i) for i, (split, n) in enumerate((("train", 160), ("val", 40), ("test", 40)))}
    for row in LONG_ROWS:
        frames["train"].loc[row, "review"] = " ".join(NEUTRAL * 15)
    write_job(base, {}, frames=frames)
    # the job's file as a SageMaker framework estimator writes it: every value a JSON string
    hparams = hyperparameters(tiny_bert, max_epochs=4, momentum=0.8)
    (base / "code" / "hyperparams" / "hyperparameters.json").unlink()
    job_file = base / "input" / "config" / "hyperparameters.json"
    job_file.parent.mkdir(parents=True)
    job_file.write_text(json.dumps({k: json.dumps(v) for k, v in hparams.items()} | {"sagemaker_program": '"x.py"'}))
    # what a previous real run left: a checkpoint to resume from, a cache entry, a model
    (base / "checkpoints" / "preprocessed").mkdir(parents=True)
    (base / "checkpoints" / "last.ckpt").write_bytes(b"previous checkpoint")
    (base / "checkpoints" / "preprocessed" / "0123.npz").write_bytes(b"previous cache entry")
    (base / "model").mkdir()
    (base / "model" / "model.pth").write_bytes(b"previous model")
    before = {name: snapshot(base / name) for name in ("checkpoints", "model", "output")}
    scratch_root = tmp_path_factory.mktemp("tmp")
    status, printed = run_dry(base, scratch_root)
    return SimpleNamespace(
        base=base, frames=frames, status=status, printed=printed, before=before, scratch_root=scratch_root
    )


def report(dry_run) -> str:
    assert dry_run.status == 0, dry_run.printed[-3000:]
    return dry_run.printed.split("=== Dry run report ===", 1)[1]


def test_writes_nothing_where_a_real_run_reads_or_writes(dry_run):
    assert dry_run.status == 0, dry_run.printed[-3000:]
    base = dry_run.base
    assert snapshot(base / "checkpoints") == dry_run.before["checkpoints"]
    assert snapshot(base / "model") == dry_run.before["model"]
    assert not (base / "output" / "data").exists()
    assert not (base / "output" / "failure").exists()
    assert not list(base.rglob(f"{WORK_PREFIX}*"))
    assert list(dry_run.scratch_root.iterdir()) == [], "the scratch folder was not removed"


def test_ran_every_step_on_a_sample_in_scratch(dry_run):
    printed = dry_run.printed
    assert "Dry run: the job runs on 32 train, 16 val, 16 test rows" in printed
    assert "Exported model.onnx" in printed and "ONNX parity" in printed
    assert re.search(r"Model in .*dry-run-\w+/model, evaluation in .*dry-run-\w+/output/data", printed)
    assert not re.search(r"^(val|test)/\w+=", printed, re.MULTILINE), "tuning-job metric lines from a dry run"


def test_reports_rows_and_class_balance_of_the_full_splits(dry_run):
    text = report(dry_run)
    assert "Rows: train 160, val 40, test 40" in text
    for split, frame in dry_run.frames.items():
        counts = frame["label"].value_counts()
        shares = ", ".join(f"{label} {counts[label]:,} ({counts[label] / len(frame):.1%})" for label in (0, 1))
        assert f"Classes in {split}: {shares}" in text


def test_reports_token_lengths_and_chunking(dry_run):
    match = re.search(
        r"Text 'review': 240 sampled rows, tokens per row p50 (\d+), p90 (\d+), p99 (\d+), max (\d+); "
        r"([\d.]+)% in more than one chunk of max_sen_len=32; ([\d.]+)% lost text to max_total_chunks=3",
        report(dry_run),
    )
    assert match, report(dry_run)
    p50, p90, p99, longest = map(int, match.groups()[:4])
    assert 5 < p50 <= p90 <= p99 <= longest
    assert longest == 3 * 32  # the long rows fill max_total_chunks chunks of max_sen_len tokens
    assert float(match.group(6)) == round(100 * len(LONG_ROWS) / 240, 1)
    assert float(match.group(5)) >= float(match.group(6))


def test_reports_features_parameters_and_an_epoch_estimate(dry_run):
    text = report(dry_run)
    assert "Tabular features: 3 (score, count, region__risk)" in text
    total, trainable = (
        int(s.replace(",", ""))
        for s in re.search(r"Model multimodal_bert: ([\d,]+) parameters, ([\d,]+) trainable", text).groups()
    )
    assert 10_000 < trainable <= total < 1_000_000
    assert re.search(r"Speed here: [\d.]+ s per training step of 16 rows; validation [\d.]+ s per 1,000 rows", text)
    assert re.search(
        r"Estimated time per epoch: 10 steps x [\d.]+ s \+ 1 validation\(s\) x \d+m\d\ds = \d+m\d\ds; max_epochs=4",
        text,
    )


def test_notes_an_idle_setting_once(dry_run):
    assert (
        dry_run.printed.count("Hyperparameter momentum = 0.8 has no effect: only SGD use it, and optimizer is AdamW")
        == 1
    )


def test_reports_no_quality_warning_for_ordinary_data(dry_run):
    assert "Quality warnings: none" in report(dry_run)


def test_reports_quality_warnings_about_the_whole_training_split(tmp_path, tiny_bert):
    """Checked on every training row before sampling, logged once and listed in the report; the
    preprocessing of the sample does not warn again (nor about what only the sample shows)."""
    frames = {split: make_rows(n, i) for i, (split, n) in enumerate((("train", 160), ("val", 40), ("test", 40)))}
    frames["train"]["count"] = 4.0
    frames["train"]["label"] = [0] * 6 + [1] * 154
    base = write_job(tmp_path / "job", hyperparameters(tiny_bert), frames=frames)
    scratch_root = tmp_path / "tmp"
    scratch_root.mkdir()
    status, printed = run_dry(base, scratch_root)
    assert status == 0, printed[-3000:]
    text = printed.split("=== Dry run report ===", 1)[1]
    assert "Quality warnings: 2\n- Numeric column 'count' is 4 in every training row" in text
    assert "- The label 'label' is 96.2% class 1 in train (154 of 160 rows)" in text
    assert printed.count("Numeric column 'count' is 4") == 2  # the log line and the report's

def test_fails_like_a_real_run_on_a_bad_row_anywhere_in_the_data(tmp_path, tiny_bert):
    frames = {split: make_rows(n, i) for i, (split, n) in enumerate((("train", 60), ("val", 20), ("test", 300)))}
    frames["test"].loc[299, "label"] = 9
    base = write_job(tmp_path / "job", hyperparameters(tiny_bert), frames=frames)
    scratch_root = tmp_path / "tmp"
    scratch_root.mkdir()
    status, _ = run_dry(base, scratch_root)
    assert_failed_cleanly(base, status, "The test file has label values", "'9' (1 rows)")
    assert list(scratch_root.iterdir()) == []


def test_checks_the_tokenizer_limit_before_reading_data(tmp_path, tiny_bert):
    folder = tmp_path / "code" / "hyperparams"
    folder.mkdir(parents=True)
    (folder / "hyperparameters.json").write_text(json.dumps(hyperparameters(tiny_bert, max_sen_len=128)))
    status, _ = run_dry(tmp_path, tmp_path)
    assert_failed_cleanly(tmp_path, status, "max_sen_len is 128", "set max_sen_len to 64 or less")


def test_sample_keeps_every_class_and_a_value_of_every_numeric_field():
    config = validate_config(hyperparameters("/tiny", batch_size=4))
    frame = make_rows(200, seed=3)
    frame["label"] = 0
    frame.loc[187, "label"] = 1
    frame["count"] = np.nan
    frame.loc[191, "count"] = 4.0
    sample = sample_split(config, frame, frame["label"].to_numpy(), rows=10)
    assert len(sample) == 10
    assert {187, 191} <= set(sample.index)
    assert list(sample.index) == sorted(sample.index)
    pd.testing.assert_frame_equal(sample, sample_split(config, frame, frame["label"].to_numpy(), rows=10))
    assert sample_split(config, frame, frame["label"].to_numpy(), rows=500) is frame


def test_epoch_estimate_arithmetic():
    config = validate_config(hyperparameters("/tiny", batch_size=10, val_check_interval=0.5, max_epochs=3))
    timer = StepTimer()
    timer.train_seconds = [5.0, 2.0, 2.0]  # the first step pays for set-up and is left out
    timer.validation_seconds, timer.validation_rows = [1.0], [100]
    labels = {"train": np.zeros(100), "val": np.zeros(200), "test": np.zeros(100)}
    lines = _time_estimate(config, labels, SimpleNamespace(callbacks=[timer], world_size=1))
    assert lines == [
        "Speed here: 2.00 s per training step of 10 rows; validation 10.0 s per 1,000 rows",
        "Estimated time per epoch: 10 steps x 2.00 s + 2 validation(s) x 0m02s = 0m24s; max_epochs=3: at most 1m12s, "
        "then about 0m03s to evaluate val and test",
    ]
    two_processes = _time_estimate(config, labels, SimpleNamespace(callbacks=[timer], world_size=2))
    assert "5 steps x 2.00 s + 2 validation(s) x 0m01s = 0m12s" in two_processes[1]


def test_report_counts_the_features_an_upstream_selection_keeps(tmp_path, tiny_bert):
    """The report and the validation use the config after model_artifacts_input's selection, as the job does:
    the files may lack the column the selection drops."""
    sizes = (("train", 40), ("val", 16), ("test", 16))
    frames = {split: make_rows(n, i).drop(columns=["count"]) for i, (split, n) in enumerate(sizes)}
    base = write_job(tmp_path / "job", hyperparameters(tiny_bert), frames=frames)
    artifacts = base / "input" / "data" / "model_artifacts_input"
    artifacts.mkdir()
    (artifacts / "selected_features.json").write_text('{"selected_features": ["score", "region"]}')
    scratch_root = tmp_path / "tmp"
    scratch_root.mkdir()
    status, printed = run_dry(base, scratch_root)
    assert status == 0, printed[-3000:]
    assert "Tabular features: 2 (score, region__risk)" in printed


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_a_dry_run_of_the_demo_keeps_the_previous_demo_model(tmp_path):
    """`DRY_RUN=true make demo` must not delete what the last `make demo` trained; a plain `make demo` starts clean."""
    model = tmp_path / "model" / "model.pth"

    def make_demo(dry_run: str) -> None:
        env = {**os.environ, "DRY_RUN": dry_run}
        command = ["make", "-s", "-o", "setup", "-o", ".venv/.installed", "demo", "PY=true", f"DEMO_DIR={tmp_path}"]
        subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True, timeout=60)

    for value in ("true", "TRUE", "1"):
        model.parent.mkdir(exist_ok=True)
        model.write_bytes(b"previous model")
        make_demo(value)
        assert model.read_bytes() == b"previous model", value
    make_demo("false")
    assert not model.parent.exists()
