"""The real image under a real Docker engine: ``docker run`` on a mounted /opt/ml writes every output,
``docker stop`` leaves a checkpoint that a restart resumes from, a bad hyperparameter fails cleanly,
and the SageMaker SDK's local mode runs it as a training job would and packs its outputs.

The image is the repository's Dockerfile built FROM a CPU stand-in for the PyTorch base image (no
registry is reachable here); the fixtures in conftest.py start the engine and build both images
(tests/helpers/engine.py). The tiny BERT is mounted read-only at the path the hyperparameters name.
"""

from __future__ import annotations

import json
import re
import subprocess
import tarfile
import time
import uuid
from pathlib import Path

import pytest
import torch

from helpers.data import hyperparameters, write_job
from helpers.engine import PRETRAINED_CHANNEL, run_local_training_job
from helpers.jobs import MODEL_FILES, ROOT

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
