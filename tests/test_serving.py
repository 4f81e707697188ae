"""The endpoint's application in this process (Flask's test client): every request format, every
response format, the job's own predictions, and bad requests that get a 4xx and leave it serving."""

from __future__ import annotations

import io
import json
import logging
import re

import numpy as np
import pandas as pd
import pytest

from serving.app import ServingSettings, create_app

TOLERANCE = 1e-5  # endpoint against the training job's test predictions


@pytest.fixture(scope="module")
def test_rows(binary_job) -> pd.DataFrame:
    return pd.read_csv(binary_job / "input" / "data" / "test" / "test.csv", dtype={"uid": str, "review": str})


@pytest.fixture(scope="module")
def job_predictions(binary_job) -> pd.DataFrame:
    return pd.read_csv(binary_job / "output" / "data" / "test_predictions.csv", dtype={"uid": str})


@pytest.fixture(scope="module")
def client(binary_job):
    return create_app(ServingSettings(binary_job / "model", max_payload_mb=0.05)).test_client()


ROW_COLUMNS = ["uid", "review", "score", "count", "region"]  # the order of a row without a header


def as_csv(frame: pd.DataFrame, header: bool = True) -> bytes:
    return frame.to_csv(index=False, header=header).encode()


def invoke(client, body, content_type, accept=None):
    headers = {"Accept": accept} if accept else {}
    return client.post("/invocations", data=body, content_type=content_type, headers=headers)


def predicted(response) -> pd.DataFrame:
    assert response.status_code == 200, response.get_data(as_text=True)
    kind = response.content_type.split(";")[0]
    text = response.get_data(as_text=True)
    if kind == "application/json":
        return pd.DataFrame(json.loads(text)["predictions"])
    if kind == "application/jsonlines":
        return pd.DataFrame([json.loads(line) for line in text.splitlines()])
    return pd.read_csv(io.StringIO(text), dtype={"uid": str})


def assert_job_predictions(scored: pd.DataFrame, job: pd.DataFrame, with_id: bool = True) -> None:
    if with_id:
        assert scored["uid"].tolist() == job["uid"].tolist()
    np.testing.assert_allclose(scored[["prob_0", "prob_1"]].to_numpy(), job[["prob_0", "prob_1"]].to_numpy(),
                               atol=TOLERANCE, rtol=0)
    assert scored["prediction"].tolist() == job["prediction"].tolist()


def test_ping_answers_once_the_app_exists(client):
    assert client.get("/ping").status_code == 200


def test_batch_transform_is_told_what_to_send(client, binary_job):
    # the platform takes whole megabytes, at least 1 (this client's limit is 0.05 MB)
    assert client.get("/execution-parameters").get_json() == {
        "MaxConcurrentTransforms": 1, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 1
    }
    settings = ServingSettings(binary_job / "model", max_payload_mb=20, workers=3)
    assert create_app(settings).test_client().get("/execution-parameters").get_json() == {
        "MaxConcurrentTransforms": 3, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 20
    }


@pytest.mark.parametrize(
    ("name", "body", "content_type"),
    [
        ("csv with a header, label included", lambda rows: as_csv(rows), "text/csv"),
        ("csv without a header", lambda rows: as_csv(rows[ROW_COLUMNS], header=False), "text/csv"),
        ("csv with header=present", lambda rows: as_csv(rows[ROW_COLUMNS]), "text/csv; header=present"),
        ("json records", lambda rows: rows.to_json(orient="records").encode(), "application/json"),
        ("json instances", lambda rows: json.dumps({"instances": json.loads(rows.to_json(orient="records"))}).encode(),
         "application/json"),
        ("json instances as lists",
         lambda rows: json.dumps({"instances": json.loads(rows[ROW_COLUMNS].to_json(orient="values"))}).encode(),
         "application/json"),
        ("json lines", lambda rows: rows.to_json(orient="records", lines=True).encode(), "application/jsonlines"),
        ("parquet", lambda rows: rows.to_parquet(index=False), "application/x-parquet"),
    ],
    ids=lambda value: value if isinstance(value, str) and " " in value else "",
)
def test_every_request_format_gives_the_jobs_test_predictions(client, test_rows, job_predictions, name, body,
                                                              content_type):
    scored = predicted(invoke(client, body(test_rows), content_type))
    assert_job_predictions(scored, job_predictions)
    assert list(scored.columns) == ["uid", "prob_0", "prob_1", "prediction"], name  # the label is not echoed


def test_a_row_without_its_id_is_scored_and_answered_without_one(client, test_rows, job_predictions):
    csv_rows = as_csv(test_rows[ROW_COLUMNS[1:]], header=False)
    scored = predicted(invoke(client, csv_rows, "text/csv"))
    assert list(scored.columns) == ["prob_0", "prob_1", "prediction"]
    assert_job_predictions(scored, job_predictions, with_id=False)


@pytest.mark.parametrize(
    ("accept", "kind"),
    [(None, "application/json"), ("*/*", "application/json"), ("application/jsonlines", "application/jsonlines"),
     ("text/csv", "text/csv"), ("text/csv;header=present", "text/csv"), ("image/png, text/csv", "text/csv")],
)
def test_the_response_format_follows_accept(client, test_rows, job_predictions, accept, kind):
    response = invoke(client, as_csv(test_rows.head(5)), "text/csv", accept)
    assert response.status_code == 200 and response.content_type.startswith(kind)
    text = response.get_data(as_text=True)
    if kind != "application/json":  # batch transform's AssembleWith=Line adds the newline after each response
        assert not text.endswith("\n") and "\n\n" not in text, repr(text[-80:])
    if kind == "text/csv":
        lines = text.splitlines()
        header = "header=present" in accept
        assert len(lines) == 5 + header  # one line per row: batch transform joins them to its input by line
        assert (lines[0] == "uid,prob_0,prob_1,prediction") == header
        scored = pd.read_csv(io.StringIO(text), header=0 if header else None, dtype={0: str, "uid": str})
        scored.columns = ["uid", "prob_0", "prob_1", "prediction"]
    else:
        scored = predicted(response)
    assert_job_predictions(scored, job_predictions.head(5))


def test_the_torch_engine_gives_the_same_predictions(binary_job, test_rows, job_predictions):
    client = create_app(ServingSettings(binary_job / "model", engine="torch")).test_client()
    assert_job_predictions(predicted(invoke(client, as_csv(test_rows), "text/csv")), job_predictions)


def test_a_threshold_decides_the_binary_prediction(binary_job, test_rows):
    client = create_app(ServingSettings(binary_job / "model", threshold=0.999)).test_client()
    scored = predicted(invoke(client, as_csv(test_rows), "text/csv"))
    assert scored["prediction"].tolist() == (scored["prob_1"] >= 0.999).astype(int).tolist()


def good_rows(test_rows) -> bytes:
    return as_csv(test_rows.head(3))


BAD_REQUESTS = {
    # name: (body given the test rows, content type, accept, status, fragment of the error)
    "unknown content type": (good_rows, "application/xml", None, 415, "Content type 'application/xml' is not one"),
    "no content type": (good_rows, None, None, 415, "is not one this endpoint reads"),
    "unknown accept": (good_rows, "text/csv", "image/png", 406, "Accept 'image/png' asks for nothing"),
    "empty body": (lambda rows: b"", "text/csv", None, 400, "The request body is empty"),
    "blank body": (lambda rows: b"  \n ", "application/json", None, 400, "The request body is empty"),
    "malformed json": (lambda rows: b'[{"uid": "1",', "application/json", None, 400, "The body is not valid JSON"),
    "json that is not a list": (lambda rows: b'{"rows": []}', "application/json", None, 400, "hold a list of records"),
    "json with no rows": (lambda rows: b"[]", "application/json", None, 400, "holds no rows"),
    "json rows of mixed kinds": (lambda rows: b'[{"uid": "1"}, [1, 2]]', "application/json", None, 400,
                                 "Each row is an object keyed by column name"),
    "malformed json lines": (lambda rows: b'{"uid": "1"}\n{"uid": ', "application/jsonlines", None, 400,
                             "not valid JSON lines"),
    "csv with an unclosed quote": (lambda rows: b'uid,review,score,count,region\n1,"great\n', "text/csv", None, 400,
                                   "The CSV body could not be read: Error tokenizing data. C error: EOF inside string"),
    "csv row with too many fields": (lambda rows: b"uid,review,score,count,region\n1,a,2,3,x\n2,b,3,4,y,z,w\n",
                                     "text/csv", None, 400, "Expected 5 fields in line 3, saw 7"),
    "csv that is not utf-8": (lambda rows: "uid,review\n1,caf\u00e9".encode("latin-1"), "text/csv", None, 400,
                              "send UTF-8 CSV"),
    "header-less csv of the wrong width": (lambda rows: b"1,great dress,4.5\n", "text/csv", None, 400,
                                           "has 3 values, and this model reads 5 in this order: uid, review"),
    "missing column": (lambda rows: as_csv(rows.head(2).drop(columns=["score"])), "text/csv; header=present", None, 400,
                       "The request has no column(s) ['score'], which the model reads"),
    "header missing a column": (lambda rows: b"uid,review,score,count\n1,great dress,4.5,3\n", "text/csv", None, 400,
                                "The request has no column(s) ['region'], which the model reads"),
    "text in a numeric field": (lambda rows: as_csv(rows.head(2).assign(score=["4.5", "high"])), "text/csv", None, 400,
                                "Column 'score' in the request must be numeric"),
    "infinity in a numeric field": (lambda rows: rows.head(2).assign(score=[4.5, float("inf")]).to_parquet(),
                                    "application/x-parquet", None, 400, "infinite value"),
    "not parquet": (lambda rows: b"PAR1 not really", "application/x-parquet", None, 400, "not a readable Parquet file"),
    "over the payload limit": (lambda rows: as_csv(pd.concat([rows] * 40)), "text/csv", None, 413,
                               "larger than the endpoint's limit of 0.05 MB"),
    "lists of different lengths": (lambda rows: b'{"instances": [["1", "a", 1, 2, "x"], ["2", "b"]]}',
                                   "application/json", None, 400, "have different lengths"),
}


@pytest.mark.parametrize("case", BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys())
def test_a_bad_request_gets_a_4xx_naming_the_problem_and_the_next_request_is_served(client, test_rows, case):
    body, content_type, accept, status, fragment = case
    response = invoke(client, body(test_rows), content_type, accept)
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.get_json()
    assert error["status"] == status and fragment in error["error"], error
    assert invoke(client, good_rows(test_rows), "text/csv").status_code == 200


def test_at_least_fifteen_distinct_bad_requests():
    assert len({fragment for *_, fragment in BAD_REQUESTS.values()}) >= 15


def test_a_server_bug_is_a_500_and_its_traceback_is_logged(binary_job, test_rows, monkeypatch, caplog):
    client = create_app(ServingSettings(binary_job / "model")).test_client()

    def broken(*args, **kwargs):
        raise KeyError("a bug")

    monkeypatch.setattr("inference.saved_model.SavedModel.probabilities", broken)
    with caplog.at_level(logging.ERROR):
        response = invoke(client, good_rows(test_rows), "text/csv")
    assert response.status_code == 500
    assert response.get_json()["error"] == "Unexpected KeyError in the server; its log has the traceback."
    assert "Traceback" in caplog.text and "KeyError: 'a bug'" in caplog.text
    monkeypatch.undo()
    assert invoke(client, good_rows(test_rows), "text/csv").status_code == 200


def test_a_multiclass_model_answers_with_its_labels(multiclass_job):
    client = create_app(ServingSettings(multiclass_job / "model")).test_client()
    rows = pd.read_parquet(multiclass_job / "input" / "data" / "test" / "test.parquet")
    scored = predicted(invoke(client, rows.to_parquet(index=False), "application/x-parquet"))
    job = pd.read_parquet(multiclass_job / "output" / "data" / "test_predictions.parquet")
    assert scored["uid"].tolist() == job["uid"].tolist()
    probs = ["prob_low", "prob_medium", "prob_high"]
    np.testing.assert_allclose(scored[probs].to_numpy(), job[probs].to_numpy(), atol=TOLERANCE, rtol=0)
    assert scored["prediction"].tolist() == job["prediction"].tolist()


def test_sagemakers_settings_reach_the_server(tmp_path):
    from serving.server import settings_from_env

    (tmp_path / "model").mkdir()
    manifest = {"metrics": {"best_f1_threshold": {"threshold": 0.37}}}
    (tmp_path / "model" / "manifest.json").write_text(json.dumps(manifest))
    settings, options = settings_from_env({
        "SAGEMAKER_BASE_DIR": str(tmp_path), "SAGEMAKER_BIND_TO_PORT": "9001", "SAGEMAKER_MODEL_SERVER_WORKERS": "3",
        "SAGEMAKER_MODEL_SERVER_TIMEOUT": "120", "SAGEMAKER_MAX_PAYLOAD_IN_MB": "20", "INFERENCE_ENGINE": "torch",
        "PREDICTION_THRESHOLD": "best_f1",
    })
    assert (options["bind"], options["workers"], options["timeout"]) == ("0.0.0.0:9001", 3, 120)
    assert (settings.model, settings.engine, settings.threshold, settings.max_payload_mb, settings.workers) == (
        tmp_path / "model", "torch", 0.37, 20.0, 3)
    settings, options = settings_from_env({"SAGEMAKER_BASE_DIR": str(tmp_path)})
    assert (options["bind"], options["timeout"], settings.engine, settings.threshold, settings.max_payload_mb) == (
        "0.0.0.0:8080", 60, "onnx", 0.5, 6)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [("SAGEMAKER_MODEL_SERVER_WORKERS", "many", "SAGEMAKER_MODEL_SERVER_WORKERS='many' is not a positive number"),
     ("SAGEMAKER_BIND_TO_PORT", "0", "SAGEMAKER_BIND_TO_PORT='0' is not a positive number"),
     ("INFERENCE_ENGINE", "tensorrt", "INFERENCE_ENGINE='tensorrt'; set it to one of ['onnx', 'torch']"),
     ("PREDICTION_THRESHOLD", "1.5", "PREDICTION_THRESHOLD='1.5'; give a probability between 0 and 1"),
     ("PREDICTION_THRESHOLD", "best_f1", "holds no tuned threshold")],
)
def test_a_bad_server_setting_is_named(tmp_path, name, value, message):
    from contracts.errors import ConfigError
    from serving.server import settings_from_env

    with pytest.raises(ConfigError, match=re.escape(message)):
        settings_from_env({"SAGEMAKER_BASE_DIR": str(tmp_path), name: value})
