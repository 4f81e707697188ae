"""Batch prediction (python -m inference.predict) against the training job's own predictions."""

from __future__ import annotations

import json
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


def model_archive(job, folder):
    """model.tar.gz as SageMaker packs model/: its files at the archive's top level."""
    import tarfile

    archive = folder / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted((job / "model").iterdir()):
            tar.add(path, arcname=path.name)
    return archive


def test_scores_straight_from_model_tar_gz(binary_job, tmp_path):
    archive = model_archive(binary_job, tmp_path)
    output = score_file(archive, binary_job / "input" / "data" / "test" / "test.csv", tmp_path / "scored.csv")
    assert_reproduces(read_csv_ids_as_text(output),
                      read_csv_ids_as_text(binary_job / "output" / "data" / "test_predictions.csv"))


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_file_streamed_in_small_chunks_gives_the_same_predictions(binary_job, tmp_path, fmt):
    frame = pd.read_csv(binary_job / "input" / "data" / "test" / "test.csv", dtype={"uid": str})
    source = tmp_path / f"rows.{fmt}"
    frame.to_parquet(source, index=False) if fmt == "parquet" else frame.to_csv(source, index=False)
    whole = score_file(binary_job / "model", source, tmp_path / f"whole.{fmt}")
    chunked = score_file(binary_job / "model", source, tmp_path / f"chunked.{fmt}", chunk_rows=5)  # 32 rows: 7 chunks
    read = pd.read_parquet if fmt == "parquet" else read_csv_ids_as_text
    pd.testing.assert_frame_equal(read(chunked), read(whole), check_exact=False, atol=1e-6, rtol=0)
    assert len(read(chunked)) == 32


def test_a_failure_part_way_through_leaves_no_output_file(binary_job, tmp_path, capsys):
    frame = pd.read_csv(binary_job / "input" / "data" / "test" / "test.csv", dtype={"uid": str})
    frame["score"] = frame["score"].astype(object)
    frame.loc[25, "score"] = "twelve"  # in the fourth chunk of 8
    source = tmp_path / "rows.csv"
    frame.to_csv(source, index=False)
    output = tmp_path / "scored.csv"
    assert main(["--model", str(binary_job / "model"), "--input", str(source), "--output", str(output),
                 "--chunk-rows", "8"]) == 1
    assert "Column 'score'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [source]


def test_rows_encoded_by_the_upstream_step_score_like_raw_rows(tmp_path, tiny_bert, run_main):
    """A model trained with an upstream step's risk tables (USE_PRECOMPUTED_RISK_TABLES) takes the rows
    that step has already encoded, as the training job did: the batch scorer must not map rates as
    categories. A model that fitted its own tables has no such step before it."""
    from helpers.data import hyperparameters, make_rows, write_job

    tables = {"region": {"bins": {"north": 0.9, "south": 0.55, "east": 0.2, "west": 0.1}, "default_bin": 0.6}}
    frames = {s: make_rows(n, seed=i) for i, (s, n) in enumerate((("train", 40), ("val", 12), ("test", 12)))}
    base = write_job(tmp_path / "job", hyperparameters(tiny_bert, max_epochs=1), frames=frames)
    upstream = base / "input" / "data" / "model_artifacts_input"
    upstream.mkdir()
    (upstream / "risk_table_map.json").write_text(json.dumps(tables))
    assert run_main(base, {"USE_PRECOMPUTED_RISK_TABLES": "true"}) == 0, (base / "output" / "failure").read_text()
    raw = frames["test"]
    encoded = raw.assign(region=raw["region"].map(tables["region"]["bins"]).fillna(0.6).astype(float))
    raw.to_csv(tmp_path / "raw.csv", index=False)
    encoded.to_csv(tmp_path / "encoded.csv", index=False)
    from_raw = pd.read_csv(score_file(base / "model", tmp_path / "raw.csv"))
    from_encoded = pd.read_csv(score_file(base / "model", tmp_path / "encoded.csv"))
    np.testing.assert_allclose(from_encoded["prob_1"], from_raw["prob_1"], atol=1e-6)
    job = pd.read_csv(base / "output" / "data" / "test_predictions.csv")
    np.testing.assert_allclose(from_raw["prob_1"], job["prob_1"], atol=TOLERANCE)
