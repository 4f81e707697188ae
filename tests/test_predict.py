"""Batch prediction (python -m inference.predict) against the training job's own predictions."""

from __future__ import annotations

import pickle
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from helpers.jobs import ROOT
from inference.predict import main, score_file

TOLERANCE = 1e-4


def read_csv_ids_as_text(path, sep=","):
    return pd.read_csv(path, sep=sep, dtype={"uid": str})


def assert_reproduces(scored: pd.DataFrame, job: pd.DataFrame) -> None:
    assert list(scored.columns) == list(job.columns)
    assert scored["uid"].tolist() == job["uid"].tolist()
    assert scored["label"].tolist() == job["label"].tolist()
    probs = [c for c in job.columns if c.startswith("prob_")]
    np.testing.assert_allclose(scored[probs].to_numpy(), job[probs].to_numpy(), atol=TOLERANCE, rtol=0)
    assert scored["prediction"].tolist() == job["prediction"].tolist()


@pytest.mark.parametrize("engine", ["onnx", "torch"])
def test_reproduces_the_jobs_test_predictions(binary_job, tmp_path, engine):
    test_file = binary_job / "input" / "data" / "test" / "test.csv"
    output = score_file(binary_job / "model", test_file, tmp_path / "scored.csv", engine)
    job = read_csv_ids_as_text(binary_job / "output" / "data" / "test_predictions.csv")
    assert_reproduces(read_csv_ids_as_text(output), job)
    assert "\n000007," in output.read_text()


@pytest.mark.parametrize("fmt", ["tsv", "parquet"])
def test_scores_tsv_and_parquet_into_the_same_format(binary_job, tmp_path, fmt):
    frame = pd.read_csv(binary_job / "input" / "data" / "test" / "test.csv", dtype={"uid": str})
    source = tmp_path / f"new.{fmt}"
    frame.to_parquet(source, index=False) if fmt == "parquet" else frame.to_csv(source, sep="\t", index=False)
    output = score_file(binary_job / "model", source)
    assert output == tmp_path / f"new_predictions.{fmt}"
    scored = pd.read_parquet(output) if fmt == "parquet" else read_csv_ids_as_text(output, sep="\t")
    assert_reproduces(scored, read_csv_ids_as_text(binary_job / "output" / "data" / "test_predictions.csv"))


def test_multiclass_string_labels_round_trip_through_parquet(multiclass_job, tmp_path):
    output = score_file(multiclass_job / "model", multiclass_job / "input" / "data" / "test" / "test.parquet", tmp_path)
    scored = pd.read_parquet(output)
    job = pd.read_parquet(multiclass_job / "output" / "data" / "test_predictions.parquet")
    assert_reproduces(scored, job)
    assert [c for c in scored.columns if c.startswith("prob_")] == ["prob_low", "prob_medium", "prob_high"]
    assert pd.api.types.is_integer_dtype(scored["uid"])
    assert set(scored["prediction"]) <= {"low", "medium", "high"}
    assert all(isinstance(v, str) for v in scored["label"])


def test_new_file_without_labels_gets_predictions_without_a_label_column(binary_job, tmp_path):
    frame = pd.read_csv(binary_job / "input" / "data" / "test" / "test.csv", dtype={"uid": str}).drop(columns=["label"])
    frame.head(5).to_csv(tmp_path / "unlabelled.csv", index=False)
    scored = read_csv_ids_as_text(score_file(binary_job / "model", tmp_path / "unlabelled.csv", tmp_path / "out.csv"))
    assert list(scored.columns) == ["uid", "prob_0", "prob_1", "prediction"]
    job = read_csv_ids_as_text(binary_job / "output" / "data" / "test_predictions.csv").head(5)
    np.testing.assert_allclose(scored["prob_1"], job["prob_1"], atol=TOLERANCE, rtol=0)


class _Exploit:
    """Unpickling this object would create ``marker``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_never_unpickles_the_model_folder(binary_job, tmp_path):
    model_dir = tmp_path / "model"
    shutil.copytree(binary_job / "model", model_dir)
    marker = tmp_path / "pwned"
    for name in ("impute_dict.pkl", "risk_table_map.pkl"):
        (model_dir / name).write_bytes(pickle.dumps(_Exploit(marker)))
    score_file(model_dir, binary_job / "input" / "data" / "test" / "test.csv", tmp_path / "out.csv")
    assert not marker.exists()
    assert (tmp_path / "out.csv").is_file()


@pytest.mark.subprocess
def test_command_line_entry_point(binary_job, tmp_path):
    output = tmp_path / "cli.csv"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "inference.predict",
            "--model-dir",
            str(binary_job / "model"),
            "--input",
            str(binary_job / "input" / "data" / "val" / "val.csv"),
            "--output",
            str(output),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    job = read_csv_ids_as_text(binary_job / "output" / "data" / "val_predictions.csv")
    assert_reproduces(read_csv_ids_as_text(output), job)


def test_missing_column_is_an_error_that_names_it(binary_job, tmp_path, capsys):
    frame = pd.read_csv(binary_job / "input" / "data" / "test" / "test.csv").drop(columns=["score"])
    frame.to_csv(tmp_path / "bad.csv", index=False)
    status = main(["--model-dir", str(binary_job / "model"), "--input", str(tmp_path / "bad.csv")])
    assert status == 1
    error = capsys.readouterr().err
    assert "bad.csv has no column(s) ['score']" in error
    assert not (tmp_path / "bad_predictions.csv").exists()


def test_output_in_another_format_is_refused(binary_job, tmp_path, capsys):
    test_file = binary_job / "input" / "data" / "test" / "test.csv"
    args = [
        "--model-dir",
        str(binary_job / "model"),
        "--input",
        str(test_file),
        "--output",
        str(tmp_path / "x.parquet"),
    ]
    status = main(args)
    assert status == 1
    assert "must end in .csv" in capsys.readouterr().err
    assert not (tmp_path / "x.parquet").exists()


def test_folder_that_is_not_a_model_is_an_error_naming_the_missing_file(tmp_path, binary_job, capsys):
    status = main(
        [
            "--model-dir",
            str(tmp_path),
            "--input",
            str(binary_job / "input" / "data" / "test" / "test.csv"),
            "--output",
            str(tmp_path / "out.csv"),
        ]
    )
    assert status == 1
    assert "model_artifacts.pth does not exist" in capsys.readouterr().err
