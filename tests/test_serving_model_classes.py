"""Every model class answers the endpoint with its training job's own test predictions (ONNX Runtime,
through the same scoring code the endpoint runs)."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from helpers.data import hyperparameters, write_job
from helpers.jobs import run_job_in_process
from hyperparams.model_classes import MODEL_CLASSES
from serving.app import ServingSettings, create_app

SMALL = {"hidden_common_dim": 12, "kernel_size": [2, 3], "num_channels": [8, 8], "num_layers": 2, "num_experts": 2,
         "max_sen_len": 16, "max_total_chunks": 2}


@pytest.fixture(scope="module", params=MODEL_CLASSES)
def trained(request, tmp_path_factory, tiny_bert):
    model_class = request.param
    hparams = hyperparameters(tiny_bert, model_class=model_class, max_epochs=1, **SMALL)
    if model_class in ("bert", "lstm"):
        hparams.update(tab_field_list=[], cat_field_list=[])
    base = write_job(tmp_path_factory.mktemp(model_class), hparams, rows=(32, 10, 10))
    assert run_job_in_process(base) == 0, (base / "output" / "failure").read_text()
    return model_class, base


def test_the_endpoint_gives_the_jobs_test_predictions(trained):
    model_class, base = trained
    client = create_app(ServingSettings(base / "model")).test_client()
    rows = (base / "input" / "data" / "test" / "test.csv").read_bytes()
    accept = {"Accept": "text/csv;header=present"}
    response = client.post("/invocations", data=rows, content_type="text/csv", headers=accept)
    assert response.status_code == 200, response.get_data(as_text=True)
    scored = pd.read_csv(io.StringIO(response.get_data(as_text=True)), dtype={"uid": str})
    job = pd.read_csv(base / "output" / "data" / "test_predictions.csv", dtype={"uid": str})
    assert scored["uid"].tolist() == job["uid"].tolist(), model_class
    np.testing.assert_allclose(scored[["prob_0", "prob_1"]], job[["prob_0", "prob_1"]], atol=1e-5, rtol=0,
                               err_msg=model_class)
    assert scored["prediction"].tolist() == job["prediction"].tolist(), model_class
