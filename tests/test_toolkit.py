"""The job under the real ``sagemaker-training`` toolkit, set up the way a SageMaker training job is.

The toolkit's ``train`` command reads ``input/config`` under ``SAGEMAKER_BASE_DIR``: hyperparameters
with every value a JSON string (plus the platform's ``sagemaker_*`` keys), channels in
``inputdataconfig.json``, hosts in ``resourceconfig.json``, the spot checkpoint folder in
``checkpointconfig.json``. It runs ``sagemaker_program`` from ``code/`` (here: the code exactly as
the Dockerfile packages it) with ``SM_*`` variables and the hyperparameters as arguments.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from export.staging import WORK_PREFIX
from helpers.data import hyperparameters, write_job
from helpers.image import job_environment, lay_out_image
from helpers.jobs import MODEL_FILES

TOOLKIT_TRAIN = Path(sys.executable).parent / "train"
OUTPUT_DATA = {"metrics.json", "predict_results.pth", "val_predictions.csv", "test_predictions.csv",
               "tensorboard_eval", "tensorboard_train"}
PROGRESS_LINE = re.compile(r"epoch 1/1 step (\d+)/\1 loss \d+\.\d{4} \d+\.\d samples/s eta \d+m\d\ds$", re.MULTILINE)

pytestmark = pytest.mark.subprocess  # the toolkit's `train` runs the job in its own process


def sagemaker_job(root: Path, hparams: dict) -> Path:
    """A base dir as SageMaker prepares it for one host of a training job."""
    base = write_job(root / "opt_ml", hparams, rows=(40, 12, 12))
    (base / "code" / "hyperparams" / "hyperparameters.json").unlink()  # SageMaker's own file is the only config
    shutil.copytree(lay_out_image(root / "image").path("/opt/program"), base / "code", dirs_exist_ok=True)
    config = base / "input" / "config"
    config.mkdir(parents=True)
    platform = {
        "sagemaker_program": "pytorch_training.py",
        "sagemaker_submit_directory": "s3://bucket/job/source/sourcedir.tar.gz",
        "sagemaker_container_log_level": 20,
        "sagemaker_job_name": "multimodal-test",
        "sagemaker_region": "us-east-1",
    }
    written = {key: json.dumps(value) for key, value in {**hparams, **platform}.items()}
    (config / "hyperparameters.json").write_text(json.dumps(written))
    channel = {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"}
    (config / "inputdataconfig.json").write_text(json.dumps(dict.fromkeys(("train", "val", "test"), channel)))
    group = {"instance_group_name": "homogeneousCluster", "instance_type": "ml.m5.xlarge", "hosts": ["algo-1"]}
    (config / "resourceconfig.json").write_text(json.dumps({
        "current_host": "algo-1", "current_instance_type": "ml.m5.xlarge", "current_group_name": "homogeneousCluster",
        "hosts": ["algo-1"], "instance_groups": [group], "network_interface_name": "eth0",
    }))
    spot = {"LocalPath": str(root / "spot"), "S3Uri": "s3://bucket/ckpt"}
    (config / "checkpointconfig.json").write_text(json.dumps(spot))
    return base


def run_toolkit(base: Path) -> subprocess.CompletedProcess:
    env = {**job_environment(base), "SM_STUDIO_LOCAL_MODE": "true"}  # skips the toolkit's DNS wait for algo-1
    return subprocess.run([str(TOOLKIT_TRAIN)], env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def toolkit_job(tmp_path_factory, tiny_bert):
    root = tmp_path_factory.mktemp("toolkit")
    base = sagemaker_job(root, hyperparameters(tiny_bert, max_epochs=1))
    result = run_toolkit(base)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return root, base, result


def test_job_succeeds_and_the_toolkit_reports_success(toolkit_job):
    _, base, result = toolkit_job
    assert (base / "output" / "success").exists()
    assert not (base / "output" / "failure").exists()
    assert "Invoking user script" in result.stdout + result.stderr
    assert re.search(r"^test/auroc=\d\.\d{4}$", result.stdout, re.MULTILINE)


def test_model_and_output_data_hold_exactly_the_documented_files(toolkit_job):
    _, base, _ = toolkit_job
    assert {p.name for p in (base / "model").iterdir()} == set(MODEL_FILES)
    assert {p.name for p in (base / "output" / "data").iterdir()} == OUTPUT_DATA
    assert not list(base.rglob(f"{WORK_PREFIX}*"))


def test_checkpoints_go_to_the_checkpoint_config_local_path(toolkit_job):
    root, base, _ = toolkit_job
    assert (root / "spot" / "last.ckpt").is_file()
    assert list((root / "spot").glob("epoch=*-step=*.ckpt"))
    assert not (base / "checkpoints").exists()


def test_logs_have_plain_progress_lines_and_no_carriage_returns(toolkit_job):
    _, _, result = toolkit_job
    output = result.stdout + result.stderr
    assert "\r" not in output
    assert PROGRESS_LINE.search(result.stdout), result.stdout[-3000:]


def test_broken_hyperparameter_keeps_our_failure_reason(tmp_path, tiny_bert):
    base = sagemaker_job(tmp_path, hyperparameters(tiny_bert, lr=-0.1))
    result = run_toolkit(base)
    assert result.returncode != 0
    reason = (base / "output" / "failure").read_text().splitlines()[0]
    assert reason.startswith("Invalid hyperparameter 'lr' = -0.1: Input should be greater than 0"), reason
    assert not (base / "model").exists() or not any((base / "model").iterdir())
    assert not (base / "output" / "success").exists()
