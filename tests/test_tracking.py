"""Where a run is tracked: tuning-job metric lines after each validation, TensorBoard (also where
SageMaker syncs it from) with the hyperparameters, and MLflow when MLFLOW_TRACKING_URI is set."""

from __future__ import annotations

import contextlib
import io
import json
import re

import pytest
import yaml
from mlflow.tracking import MlflowClient
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from helpers.data import hyperparameters, write_job
from helpers.jobs import run_job_in_process

METRIC_LINE = re.compile(r"^val/auroc=([0-9.]+)$", re.MULTILINE)  # as a tuning job's metric definition reads it


@pytest.fixture(scope="module")
def tracked_job(tmp_path_factory, tiny_bert):
    """One epoch validated twice, with SageMaker's TensorBoard config and an MLflow file store."""
    hparams = hyperparameters(tiny_bert, max_epochs=1, val_check_interval=0.5, batch_size=4)  # 16 steps: lr logged
    base = write_job(tmp_path_factory.mktemp("tracked"), hparams, rows=(64, 16, 16))
    synced = base / "tensorboard_synced"
    config = base / "input" / "config"
    config.mkdir(parents=True)
    (config / "tensorboardoutputconfig.json").write_text(json.dumps({"LocalPath": str(synced)}))
    mlruns = f"file://{base / 'mlruns'}"
    env = {"MLFLOW_TRACKING_URI": mlruns, "MLFLOW_ALLOW_FILE_STORE": "true", "TRAINING_JOB_NAME": "tracked-job-1"}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = run_job_in_process(base, env)
    assert status == 0, (base / "output" / "failure").read_text()
    return base, printed.getvalue(), synced, mlruns


def test_the_tuning_metric_is_printed_after_each_validation_then_once_more_at_the_end(tracked_job):
    base, printed, _, _ = tracked_job
    values = [float(v) for v in METRIC_LINE.findall(printed)]
    final = json.loads((base / "output" / "data" / "metrics.json").read_text())["val"]["auroc"]
    assert len(values) == 3, printed[-2000:]  # two validations during the epoch, then the final evaluation
    assert values[-1] == pytest.approx(final, abs=1e-4)
    assert re.search(r"^val/loss=[0-9.]+$", printed, re.MULTILINE)


def test_training_curves_also_go_where_sagemaker_syncs_tensorboard(tracked_job):
    base, _, synced, _ = tracked_job
    for folder in (base / "output" / "data" / "tensorboard_train", synced):
        events = EventAccumulator(str(folder))
        events.Reload()
        tags = events.Tags()["scalars"]
        assert {"train/loss_epoch", "val/loss", "val/auroc"} <= set(tags), (folder, tags)
        assert any(t.startswith("lr-AdamW/") for t in tags)


def test_the_hyperparameters_are_logged_with_the_curves(tracked_job):
    base, _, _, _ = tracked_job
    curves = base / "output" / "data" / "tensorboard_train"
    events = EventAccumulator(str(curves))
    events.Reload()
    assert "_hparams_/session_start_info" in events.PluginTagToContent("hparams")  # TensorBoard's HParams tab
    saved = yaml.safe_load((curves / "hparams.yaml").read_text())
    assert saved["model_class"] == "multimodal_bert" and saved["max_epochs"] == 1 and saved["batch_size"] == 4
    assert saved["tab_field_list"] == ["score", "count"]


def test_mlflow_gets_params_metrics_per_validation_final_metrics_and_the_model(tracked_job):
    base, _, _, mlruns = tracked_job
    client = MlflowClient(mlruns)
    [experiment] = [e for e in client.search_experiments() if e.name == "multimodal-training"]
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "tracked-job-1"
    assert run.data.params["model_class"] == "multimodal_bert" and run.data.params["lr"] == "0.005"
    assert len(client.get_metric_history(run.info.run_id, "val/auroc")) == 2
    final = json.loads((base / "output" / "data" / "metrics.json").read_text())
    assert run.data.metrics["final/test/auroc"] == pytest.approx(final["test"]["auroc"])
    assert run.data.metrics["final/val/f1_score"] == pytest.approx(final["val"]["f1_score"])
    logged = {a.path for a in client.list_artifacts(run.info.run_id, "model")}
    assert {"model/model.pth", "model/model.onnx", "model/manifest.json"} <= logged


def test_a_run_without_those_settings_writes_only_its_own_curves(binary_job):
    """No tensorboardoutputconfig.json and no output/tensorboard folder: nothing but output/data."""
    assert not (binary_job / "output" / "tensorboard").exists()
    assert sorted(p.name for p in (binary_job / "output").iterdir()) == ["data"]
