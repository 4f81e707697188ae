"""The real image under a real Docker engine: ``docker run`` on a mounted /opt/ml writes every output,
``docker stop`` leaves a checkpoint that a restart resumes from, a bad hyperparameter fails
cleanly, and ``serve`` answers on the port SageMaker names. (The SDK's local mode runs it as SageMaker
does: test_sagemaker_local.py.)

The image is the repository's Dockerfile built FROM a CPU stand-in for the PyTorch base image (no
registry is reachable here); the fixtures in conftest.py start the engine and build both images
(tests/helpers/engine.py). The tiny BERT is mounted read-only at the path the hyperparameters name.
"""

from __future__ import annotations

import json
import re
import tarfile
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from helpers.data import hyperparameters, write_job
from helpers.engine import free_port
from helpers.jobs import MODEL_FILES

pytestmark = pytest.mark.container

EVALUATION_FILES = {"metrics.json", "predict_results.pth", "val_predictions.csv", "test_predictions.csv",
                    "tensorboard_eval"}
METRIC_LINE = r"^{split}/auroc=\d\.\d{{4}}$"
ANSI_CODE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
STOP_GRACE_SECONDS = 30  # docker stop's wait between SIGTERM and SIGKILL; the job must exit well before
STOP_BOUND_SECONDS = 30  # asserted bound on stop-to-exit (measured ~2.4 s when the engine was first tried)


def run_args(base: Path, tiny_bert: Path) -> list[str]:
    """``docker run`` options: the job folder as /opt/ml, the tiny BERT where the hyperparameters
    name it (read-only), offline Hugging Face."""
    return ["-v", f"{base}:/opt/ml", "-v", f"{tiny_bert}:{tiny_bert}:ro", "-e", "HF_HUB_OFFLINE=1"]


def names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def log_of(result) -> str:
    text = result.stdout + result.stderr
    return text if len(text) < 8000 else "…" + text[-8000:]


@pytest.mark.parametrize("command", [("train",), ()], ids=["train", "default-command"])
def test_docker_run_trains_on_a_mounted_opt_ml_and_writes_every_output(
    tmp_path, tiny_bert, docker_engine, training_image, command
):
    base = write_job(tmp_path / "opt_ml", hyperparameters(tiny_bert, max_epochs=1), rows=(40, 12, 12))
    started = time.monotonic()
    result = docker_engine.docker("run", "--rm", *run_args(base, tiny_bert), training_image, *command,
                                  check=False, timeout=900)
    print(f"docker run {training_image} {' '.join(command)}: {time.monotonic() - started:.1f} s")
    assert result.returncode == 0, log_of(result)
    assert names(base / "model") == set(MODEL_FILES), log_of(result)
    assert names(base / "output" / "data") >= EVALUATION_FILES, names(base / "output" / "data")
    assert (base / "checkpoints" / "last.ckpt").is_file()
    assert not (base / "output" / "failure").exists(), (base / "output" / "failure").read_text()
    for split in ("val", "test"):
        assert re.search(METRIC_LINE.format(split=split), result.stdout, re.MULTILINE), log_of(result)


def test_docker_stop_saves_a_checkpoint_and_the_restarted_container_resumes_and_finishes(
    tmp_path, tiny_bert, docker_engine, training_image
):
    """``docker stop`` sends SIGTERM, then SIGKILL after the grace period. The job must save
    ``last.ckpt``, write its reason and exit by itself (status 1, not SIGKILL's 137) within
    ``STOP_BOUND_SECONDS``; ``docker start`` runs the same command again, which resumes."""
    hparams = hyperparameters(tiny_bert, max_epochs=6, val_check_interval=0.5, early_stop_patience=100)
    base = write_job(tmp_path / "opt_ml", hparams, rows=(160, 16, 16))  # 10 steps per epoch, checkpoint every 5
    name = f"multimodal-stop-{uuid.uuid4().hex[:8]}"
    docker = docker_engine.docker
    try:
        docker("run", "-d", "--name", name, *run_args(base, tiny_bert), training_image, "train")
        deadline = time.monotonic() + 300
        while not list((base / "checkpoints").glob("epoch=*-step=*.ckpt")):
            state = docker("inspect", "--format", "{{.State.Status}}", name).stdout.strip()
            assert state == "running", f"container {state} before its first checkpoint:\n{log_of(docker('logs', name))}"
            assert time.monotonic() < deadline, f"no checkpoint within 300 s:\n{log_of(docker('logs', name))}"
            time.sleep(0.1)
        stopped = time.monotonic()
        docker("stop", "--time", str(STOP_GRACE_SECONDS), name, timeout=STOP_GRACE_SECONDS + 60)
        stop_seconds = time.monotonic() - stopped
        print(f"docker stop to container exit: {stop_seconds:.1f} s")
        status = int(docker("inspect", "--format", "{{.State.ExitCode}}", name).stdout)
        first_log = log_of(docker("logs", name))
        assert status == 1, f"exit status {status} (137: killed after the grace period):\n{first_log}"
        assert stop_seconds < STOP_BOUND_SECONDS, first_log
        assert (base / "checkpoints" / "last.ckpt").is_file(), first_log
        reason = (base / "output" / "failure").read_text()
        assert reason.startswith("interrupted; checkpoint saved at"), reason
        assert not names(base / "model"), first_log
        saved_step = torch.load(base / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
        assert 5 <= saved_step < 60, saved_step

        restarted = docker("start", "--attach", name, check=False, timeout=900)
        status = int(docker("inspect", "--format", "{{.State.ExitCode}}", name).stdout)
        log = log_of(restarted)
        assert status == 0, log
        assert "Resuming from /opt/ml/checkpoints/last.ckpt" in restarted.stdout + restarted.stderr, log
        assert names(base / "model") == set(MODEL_FILES), log
        assert not (base / "output" / "failure").exists(), log
        assert re.search(METRIC_LINE.format(split="test"), restarted.stdout, re.MULTILINE), log
    finally:
        docker("rm", "--force", name, check=False)


def test_a_bad_hyperparameter_fails_the_container_with_the_reason_and_no_model(
    tmp_path, tiny_bert, docker_engine, training_image
):
    base = write_job(tmp_path / "opt_ml", hyperparameters(tiny_bert, lr=-0.1), rows=(40, 12, 12))
    result = docker_engine.docker("run", "--rm", *run_args(base, tiny_bert), training_image, "train",
                                  check=False, timeout=900)
    assert result.returncode != 0, log_of(result)
    failure = base / "output" / "failure"
    assert failure.is_file(), log_of(result)
    reason = failure.read_text().splitlines()[0]
    assert "'lr'" in reason, reason
    assert not names(base / "model"), names(base / "model")


def test_the_image_serves_a_model_on_the_port_sagemaker_names_and_stops_on_sigterm(
    binary_job, docker_engine, training_image
):
    """``docker run IMAGE serve`` as SageMaker starts a hosting container: the model in
    /opt/ml/model, the port from SAGEMAKER_BIND_TO_PORT (which the image's label allows), /ping once
    the model is loaded, the job's own predictions from /invocations, and ``docker stop`` ends the
    server cleanly."""
    labels = docker_engine.labels(training_image) or {}
    assert labels.get("com.amazonaws.sagemaker.capabilities.accept-bind-to-port") == "true", labels
    name = f"serve-{uuid.uuid4().hex[:8]}"
    host_port = free_port()
    docker_engine.docker("run", "-d", "--name", name, "-v", f"{binary_job / 'model'}:/opt/ml/model:ro",
                         "-e", "SAGEMAKER_BIND_TO_PORT=9191", "-e", "SAGEMAKER_MODEL_SERVER_WORKERS=1",
                         "-p", f"127.0.0.1:{host_port}:9191", training_image, "serve")
    try:
        url = f"http://127.0.0.1:{host_port}"
        deadline = time.monotonic() + 120
        while not answers(f"{url}/ping"):
            state = docker_engine.docker("inspect", "-f", "{{.State.Status}}", name).stdout.strip()
            assert state == "running" and time.monotonic() < deadline, docker_engine.docker("logs", name).stdout
            time.sleep(0.5)
        test_csv = (binary_job / "input" / "data" / "test" / "test.csv").read_bytes()
        request = urllib.request.Request(f"{url}/invocations", data=test_csv, method="POST",
                                         headers={"Content-Type": "text/csv", "Accept": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            scored = json.loads(response.read())["predictions"]
        job = pd.read_csv(binary_job / "output" / "data" / "test_predictions.csv", dtype={"uid": str})
        assert [row["uid"] for row in scored] == job["uid"].tolist()
        np.testing.assert_allclose([row["prob_1"] for row in scored], job["prob_1"], atol=1e-5, rtol=0)
        started = time.monotonic()
        docker_engine.docker("stop", "--time", str(STOP_GRACE_SECONDS), name, timeout=120)
        stopped_in = time.monotonic() - started
        exit_code = docker_engine.docker("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip()
        print(f"serve: stopped in {stopped_in:.1f} s with exit status {exit_code}")
        assert exit_code == "0" and stopped_in < STOP_BOUND_SECONDS, docker_engine.docker("logs", name).stdout
    finally:
        docker_engine.docker("rm", "--force", name, check=False)


def test_the_batch_scorer_runs_in_the_image_as_a_processing_job_runs_it(
    binary_job, docker_engine, training_image, tmp_path
):
    """A SageMaker Processing job on the image (docs/deploy.md): its entrypoint
    ``python -m inference.predict`` from the image's working directory, the training job's
    model.tar.gz and a file mounted under /opt/ml/processing, the predictions written to the output
    folder. (SDK v2's local mode uploads a Processing job's inputs to S3 first, which cannot exist
    here; this runs the container exactly as such a job would.)"""
    model_input, data_input, output = tmp_path / "model", tmp_path / "input", tmp_path / "output"
    for folder in (model_input, data_input, output):
        folder.mkdir()
    with tarfile.open(model_input / "model.tar.gz", "w:gz") as archive:  # as the platform packs model/
        for item in sorted((binary_job / "model").iterdir()):
            archive.add(item, arcname=item.name)
    test_csv = binary_job / "input" / "data" / "test" / "test.csv"
    (data_input / "rows.csv").write_bytes(test_csv.read_bytes())
    result = docker_engine.docker(
        "run", "--rm", "--entrypoint", "python",
        "-v", f"{model_input}:/opt/ml/processing/model:ro", "-v", f"{data_input}:/opt/ml/processing/input:ro",
        "-v", f"{output}:/opt/ml/processing/output", training_image,
        "-m", "inference.predict", "--model", "/opt/ml/processing/model/model.tar.gz",
        "--input", "/opt/ml/processing/input/rows.csv", "--output", "/opt/ml/processing/output",
        check=False, timeout=600,
    )
    assert result.returncode == 0, log_of(result)
    assert names(output) == {"rows_predictions.csv"}, log_of(result)
    scored = pd.read_csv(output / "rows_predictions.csv", dtype={"uid": str})
    job = pd.read_csv(binary_job / "output" / "data" / "test_predictions.csv", dtype={"uid": str})
    assert scored["uid"].tolist() == job["uid"].tolist() and scored["label"].tolist() == job["label"].tolist()
    np.testing.assert_allclose(scored[["prob_0", "prob_1"]], job[["prob_0", "prob_1"]], atol=1e-5, rtol=0)


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False
