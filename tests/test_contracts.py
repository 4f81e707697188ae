"""Contract resolution: base dir, SM_* overrides, checkpoint config, env flags, failure file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contracts.environment import env_flag
from contracts.errors import ConfigError, DataError
from contracts.failure import REASON_LIMIT, write_failure
from contracts.paths import resolve_paths


def test_defaults_to_opt_ml():
    paths = resolve_paths({})
    assert paths.base_dir == Path("/opt/ml")
    assert paths.channels["train"] == Path("/opt/ml/input/data/train")
    assert paths.model_dir == Path("/opt/ml/model")
    assert paths.output_data_dir == Path("/opt/ml/output/data")
    assert paths.failure_file == Path("/opt/ml/output/failure")
    assert paths.checkpoints_dir == Path("/opt/ml/checkpoints")
    assert paths.code_hyperparameters == Path("/opt/ml/code/hyperparams/hyperparameters.json")
    assert paths.job_hyperparameters == Path("/opt/ml/input/config/hyperparameters.json")
    assert paths.artifacts_input_dir == Path("/opt/ml/input/data/model_artifacts_input")


def test_base_dir_moves_everything(tmp_path):
    paths = resolve_paths({"SAGEMAKER_BASE_DIR": str(tmp_path)})
    assert paths.channels["val"] == tmp_path / "input" / "data" / "val"
    assert paths.model_dir == tmp_path / "model"
    assert paths.checkpoints_dir == tmp_path / "checkpoints"


def test_sagemaker_variables_override_single_locations(tmp_path):
    env = {
        "SAGEMAKER_BASE_DIR": str(tmp_path),
        "SM_CHANNEL_TRAIN": "/data/tr",
        "SM_CHANNEL_VAL": "/data/va",
        "SM_CHANNEL_TEST": "/data/te",
        "SM_MODEL_DIR": "/elsewhere/model",
        "SM_OUTPUT_DATA_DIR": "/elsewhere/out",
    }
    paths = resolve_paths(env)
    assert [paths.channels[s] for s in ("train", "val", "test")] == [
        Path("/data/tr"),
        Path("/data/va"),
        Path("/data/te"),
    ]
    assert paths.model_dir == Path("/elsewhere/model")
    assert paths.output_data_dir == Path("/elsewhere/out")
    assert paths.failure_file == tmp_path / "output" / "failure"


def test_shipped_hyperparameters_beside_the_code_when_the_base_folder_has_none(tmp_path):
    """``docker run -v DIR:/opt/ml`` hides the image's /opt/ml/code link, not the code it points to."""
    env = {"SAGEMAKER_BASE_DIR": str(tmp_path / "opt_ml")}
    in_base = tmp_path / "opt_ml" / "code" / "hyperparams" / "hyperparameters.json"
    beside_code = tmp_path / "program" / "hyperparams" / "hyperparameters.json"
    assert resolve_paths(env, program_dir=tmp_path / "program").code_hyperparameters == in_base
    beside_code.parent.mkdir(parents=True)
    beside_code.write_text("{}")
    assert resolve_paths(env, program_dir=tmp_path / "program").code_hyperparameters == beside_code
    in_base.parent.mkdir(parents=True)
    in_base.write_text("{}")
    assert resolve_paths(env, program_dir=tmp_path / "program").code_hyperparameters == in_base


def test_checkpoint_config_names_the_local_checkpoint_folder(tmp_path):
    config_dir = tmp_path / "input" / "config"
    config_dir.mkdir(parents=True)
    (config_dir / "checkpointconfig.json").write_text(json.dumps({"LocalPath": "/spot/ckpt", "S3Uri": "s3://b/k"}))
    assert resolve_paths({"SAGEMAKER_BASE_DIR": str(tmp_path)}).checkpoints_dir == Path("/spot/ckpt")


@pytest.mark.parametrize(
    "value,expected",
    [
        ("true", True),
        ("TRUE", True),
        ("1", True),
        ("yes", True),
        ("false", False),
        ("False", False),
        ("0", False),
        ("", False),
    ],
)
def test_env_flag_spellings(value, expected):
    assert env_flag("X", {"X": value}) is expected


def test_env_flag_rejects_unknown_spelling():
    with pytest.raises(ConfigError, match="USE_PRECOMPUTED_IMPUTATION='maybe'"):
        env_flag("USE_PRECOMPUTED_IMPUTATION", {"USE_PRECOMPUTED_IMPUTATION": "maybe"})


def test_failure_file_starts_with_the_users_reason_then_traceback(tmp_path):
    try:
        raise DataError("Column 'x' is missing; add it.\nmore detail")
    except DataError as exc:
        write_failure(tmp_path / "failure", exc)
    lines = (tmp_path / "failure").read_text().splitlines()
    assert lines[0] == "Column 'x' is missing; add it."
    assert lines[1] == "more detail"
    assert any("Traceback" in line for line in lines)


def test_failure_reason_is_capped_and_marks_unexpected_errors(tmp_path):
    try:
        raise RuntimeError("x" * 5000)
    except RuntimeError as exc:
        reason = write_failure(tmp_path / "failure", exc)
    assert len(reason) <= REASON_LIMIT
    assert reason.startswith("Unexpected RuntimeError")
