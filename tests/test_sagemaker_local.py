"""The real image as SageMaker runs it, through the SageMaker Python SDK's local mode (docker-compose on
this machine): one instance with SDK v2 and v3, two instances as one cluster, a job as a tuning job
starts it, and script mode on a stand-in of SageMaker's PyTorch framework image."""

from __future__ import annotations

import io
import json
import re
import subprocess
import tarfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.data import hyperparameters, write_job
from helpers.engine import PRETRAINED_CHANNEL, run_local_deployment, run_local_training_job
from helpers.jobs import MODEL_FILES, ROOT

pytestmark = pytest.mark.container

EVALUATION_FILES = {"metrics.json", "predict_results.pth", "val_predictions.csv", "test_predictions.csv",
                    "tensorboard_eval"}
ANSI_CODE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.mark.parametrize("sdk", ["v2", "v3"])
def test_sagemaker_local_mode_runs_the_image_as_a_training_job_and_packs_its_outputs(sagemaker_local_job, sdk):
    """The SDK (v2: ``Estimator(instance_type="local")``, v3: ``ModelTrainer`` in
    ``Mode.LOCAL_CONTAINER``) writes /opt/ml/input/config (string-valued hyperparameters, the four
    channels, one host), mounts the channels, runs ``train`` and packs /opt/ml/model and
    /opt/ml/output into model.tar.gz and output.tar.gz."""
    started = time.monotonic()
    job = sagemaker_local_job(instance_count=1, sdk=sdk)
    print(f"SageMaker {sdk} local training job: {time.monotonic() - started:.1f} s")
    assert job.returncode == 0 and job.report.get("ok"), job.describe()
    assert {"model.tar.gz", "output.tar.gz"} <= set(job.archives), job.describe()
    packed = {name.split("/")[0] for name in job.contents["model.tar.gz"]} - {"", "."}
    assert packed == set(MODEL_FILES), sorted(packed)
    output = set(job.contents["output.tar.gz"])
    assert {f"data/{name}" for name in EVALUATION_FILES} <= output, sorted(output)
    assert "failure" not in output, sorted(output)
    (host, config), = job.report["hosts"].items()
    assert config["resourceconfig.json"]["hosts"] == [host], config
    assert set(config["inputdataconfig.json"]) == {"train", "val", "test", "pretrained"}, config
    hparams = config["hyperparameters.json"]
    assert hparams["tokenizer"] == "/opt/ml/input/data/pretrained", config
    assert all(isinstance(v, str) for v in hparams.values()), config
    assert hparams["tab_field_list"] == {"v2": "['score', 'count']", "v3": '["score", "count"]'}[sdk], config
    # v2's compose gives the container a TTY, so the job's log carries terminal codes around its lines
    assert re.search(r"test/auroc=\d\.\d{4}", ANSI_CODE.sub("", job.log)), job.describe()


COMPOSE_PREFIX = re.compile(r"^(?:\S+-)?(?P<host>algo-\d+(?:-[a-z0-9]+)?)\s+\| ?(?P<line>.*)$")  # <project>-<host> |


def container_lines(job) -> dict[str, list[str]]:
    """Each container's log lines as it printed them (docker-compose prefixes them with the host, and
    v2's terminal adds control codes)."""
    lines: dict[str, list[str]] = {}
    for raw in ANSI_CODE.sub("", job.log).replace("\r", "\n").splitlines():
        found = COMPOSE_PREFIX.match(raw.strip())
        if found:
            lines.setdefault(found["host"], []).append(found["line"].rstrip())
    return lines


def archived(job, archive: str, member: str) -> bytes:
    with tarfile.open(job.archives[archive]) as tar:
        return tar.extractfile(tar.getmember(member)).read()


def test_two_instances_train_one_job_of_world_size_two(sagemaker_local_job):
    """The platform writes resourceconfig.json per host and nothing else (the image's `train` runs no
    toolkit, so no SM_HOSTS): the two containers must still form one DDP job, and only global rank 0
    may write the model folder the two share in local mode."""
    started = time.monotonic()
    job = sagemaker_local_job(instance_count=2, rows=(64, 16, 16))
    print(f"two-instance local training job: {time.monotonic() - started:.1f} s")
    assert job.returncode == 0 and job.report.get("ok"), job.describe()
    hosts = sorted(job.report["hosts"])
    assert len(hosts) == 2, job.describe()
    lines = container_lines(job)
    for rank, host in enumerate(hosts):
        assert job.report["hosts"][host]["resourceconfig.json"]["hosts"] == hosts, job.describe()
        planned = [line for line in lines.get(host, []) if "Training with " in line]
        assert planned and "Training with 2 process(es), 1 cpu device(s) per node on 2 nodes " \
            f"(this is node {rank}), strategy ddp" in planned[0], (host, planned, job.describe())
        print(f"{host}: {planned[0].split(': ', 1)[-1]}")
    writers = [host for host in hosts if any("Model in /opt/ml/model" in line for line in lines[host])]
    assert writers == [hosts[0]], writers
    packed = {name.split("/")[0] for name in job.contents["model.tar.gz"]} - {"", "."}
    assert packed == set(MODEL_FILES), sorted(packed)
    output = job.contents["output.tar.gz"]
    assert "failure" not in output and {f"data/{name}" for name in EVALUATION_FILES} <= set(output), output
    curves = [name for name in output if name.startswith("data/tensorboard_train/events.out.tfevents")]
    assert len(curves) == 1, curves  # the SDK merges every host's output/: only rank 0 wrote curves


def test_a_tuning_job_gets_its_objective_after_every_validation(sagemaker_local_job):
    """A hyperparameter tuning job adds _tuning_objective_metric and reads the objective with its
    metric definition while the job runs (to stop weak jobs early); the last value is the final one."""
    job = sagemaker_local_job(val_check_interval=0.5, batch_size=8, _tuning_objective_metric="val:auroc")
    assert job.returncode == 0 and job.report.get("ok"), job.describe()
    (host, config), = job.report["hosts"].items()
    assert config["hyperparameters.json"]["_tuning_objective_metric"] == "val:auroc", config
    lines = container_lines(job)[host]
    objective = [float(m[1]) for line in lines if (m := re.match(r"^val/auroc=([0-9.]+)$", line))]
    assert len(objective) == 3, lines[-60:]  # two validations in the epoch, then the final evaluation
    final = json.loads(archived(job, "output.tar.gz", "data/metrics.json"))["val"]["auroc"]
    assert objective[-1] == pytest.approx(final, abs=1e-4)
    packed = {name.split("/")[0] for name in job.contents["model.tar.gz"]} - {"", "."}
    assert packed == set(MODEL_FILES), sorted(packed)
    assert any("Ignoring the platform's own hyperparameters: _tuning_objective_metric" in line for line in lines)


def test_script_mode_on_a_framework_image_installs_the_requirements_and_keeps_its_torch(
    tmp_path, tiny_bert, docker_engine, framework_image
):
    """`PyTorch(entry_point="pytorch_training.py", source_dir=...)` on SageMaker's framework image:
    the toolkit pip-installs the source folder's requirements.txt (no torch: the image's stays), then
    runs the script, which reads code/hyperparams/hyperparameters.json and the job's values over it."""
    source = tmp_path / "source"
    subprocess.run(["make", "-s", "script-mode", f"SCRIPT_MODE_DIR={source}"], cwd=ROOT, check=True, timeout=120)
    shipped = hyperparameters(Path(PRETRAINED_CHANNEL), max_epochs=1, batch_size=16)
    (source / "hyperparams" / "hyperparameters.json").write_text(json.dumps(shipped))
    data = write_job(tmp_path / "data", {}, rows=(40, 12, 12)) / "input" / "data"
    channels = {split: data / split for split in ("train", "val", "test")} | {"pretrained": tiny_bert}
    started = time.monotonic()
    job = run_local_training_job(
        docker_engine, framework_image, tmp_path / "work", channels, {"max_epochs": 2},
        environment={"HF_HUB_OFFLINE": "1"},
        script_mode={"entry_point": "pytorch_training.py", "source_dir": str(source),
                     "framework_version": "2.13", "py_version": "py311"},
    )
    print(f"script-mode local training job: {time.monotonic() - started:.1f} s")
    assert job.returncode == 0 and job.report.get("ok"), job.describe()
    log = ANSI_CODE.sub("", job.log)
    assert "Installing collected packages" in log and "lightning" in log, job.describe()
    assert not re.search(r"(Downloading|Collecting) torch[-=]", log), "the framework image's torch was replaced"
    assert re.search(r"Requirement already satisfied: torch\b", log), job.describe()
    packed = {name.split("/")[0] for name in job.contents["model.tar.gz"]} - {"", "."}
    assert packed == set(MODEL_FILES), sorted(packed)
    config = json.loads(archived(job, "model.tar.gz", "hyperparameters.json"))
    assert (config["max_epochs"], config["batch_size"]) == (2, 16)  # the job's value over the shipped file


ROW_COLUMNS = ["uid", "review", "score", "count", "region"]  # docs/deploy.md: the order of a row without a header
PROBABILITIES = ["prob_0", "prob_1"]


def test_a_model_the_sdk_trained_is_deployed_answers_predict_and_batch_transforms_a_headerless_csv(
    tmp_path, sagemaker_local_job, docker_engine, training_image
):
    """The user's path after training: ``Model(image_uri, model_data).deploy()`` to a local endpoint,
    ``predict()`` the test rows (CSV with a header in, JSON out; JSON records in, CSV out), delete
    the endpoint, then ``model.transformer(...)`` on a header-less CSV split by line, in mini-batches
    of up to 1 MB (more than one here), assembled by line. Every answer must be the training job's
    own test prediction for that row, and the transform's output must join its input line by line."""
    job = sagemaker_local_job(instance_count=1)
    assert job.returncode == 0 and job.report.get("ok"), job.describe()
    expected = pd.read_csv(io.BytesIO(archived(job, "output.tar.gz", "data/test_predictions.csv")),
                           dtype={"uid": str}).set_index("uid")
    test_file = job.channels["test"] / "test.csv"
    rows = pd.read_csv(test_file, dtype={"uid": str, "review": str})
    records = json.loads(rows.drop(columns="label").to_json(orient="records"))

    copies = -(-1_200_000 // len(rows[ROW_COLUMNS].to_csv(index=False, header=False)))  # past one 1 MB mini-batch
    many = pd.concat([rows[ROW_COLUMNS].assign(uid=rows["uid"] + f"~{k}") for k in range(copies)], ignore_index=True)
    (tmp_path / "transform-input").mkdir()
    many.to_csv(tmp_path / "transform-input" / "rows.csv", index=False, header=False)

    started = time.monotonic()
    deployment = run_local_deployment(
        docker_engine, training_image, tmp_path / "deployment", job.archives["model.tar.gz"],
        requests=[
            {"name": "csv", "body": test_file.read_bytes(), "content_type": "text/csv", "accept": "application/json"},
            {"name": "json", "body": json.dumps(records).encode(), "content_type": "application/json",
             "accept": "text/csv"},
        ],
        transform={"input": tmp_path / "transform-input", "content_type": "text/csv", "split_type": "Line",
                   "assemble_with": "Line", "accept": "text/csv", "strategy": "MultiRecord", "max_payload": 1},
    )
    print(f"local endpoint and batch transform of {len(many)} rows: {time.monotonic() - started:.1f} s")
    assert deployment.returncode == 0 and deployment.report.get("ok"), deployment.describe()

    def assert_the_jobs_predictions(scored: pd.DataFrame, ids: pd.Series) -> None:
        want = expected.loc[ids.to_numpy()]
        np.testing.assert_allclose(scored[PROBABILITIES].to_numpy(), want[PROBABILITIES].to_numpy(), atol=1e-5, rtol=0)
        assert scored["prediction"].tolist() == want["prediction"].tolist()

    from_csv = pd.DataFrame(json.loads(deployment.report["responses"]["csv"])["predictions"])
    assert from_csv["uid"].tolist() == rows["uid"].tolist()
    assert_the_jobs_predictions(from_csv, rows["uid"])
    from_json = pd.read_csv(io.StringIO(deployment.report["responses"]["json"]), header=None, dtype={0: str},
                            names=["uid", *PROBABILITIES, "prediction"])
    assert from_json["uid"].tolist() == rows["uid"].tolist()
    assert_the_jobs_predictions(from_json, rows["uid"])
    assert deployment.report["port_closed"] and deployment.left_running == [], deployment.describe()

    assert deployment.report["transform_outputs"] == ["rows.csv.out"], deployment.describe()
    lines = (deployment.transform_output / "rows.csv.out").read_text().splitlines()
    assert len(lines) == len(many), (len(lines), len(many))  # one line per input line, no blank line between batches
    out = pd.read_csv(io.StringIO("\n".join(lines)), header=None, dtype={0: str},
                      names=["uid", *PROBABILITIES, "prediction"])
    assert out["uid"].tolist() == many["uid"].tolist()  # line i answers input line i
    assert_the_jobs_predictions(out, out["uid"].str.split("~").str[0])
    requests = [line for line in ANSI_CODE.sub("", deployment.log).splitlines() if '"POST /invocations' in line]
    assert len(requests) >= 2 + 2, requests  # the endpoint's two, then the transform's mini-batches
