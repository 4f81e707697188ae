"""Config loading: SageMaker string coercion, merging of the two files, errors that name the field."""

from __future__ import annotations

import json
import logging

import pytest

from contracts.errors import ConfigError
from helpers.data import MINIMAL_FIELDS
from hyperparams.coercion import coerce_literal, coerce_text
from hyperparams.loading import read_hyperparameters, validate_config

BASE = MINIMAL_FIELDS


@pytest.mark.parametrize(
    "raw,expected",
    [("true", True), ("False", False), ("[3, 5, 7]", [3, 5, 7]), ("['a', 'b']", ["a", "b"]), ('{"a": 1}', {"a": 1}),
     ("2e-5", 2e-5), ("32", 32), ("null", None), ("None", None), ("plain words", "plain words"), (7, 7)],
)
def test_literal_coercion(raw, expected):
    assert coerce_literal(raw) == expected


def test_literal_coercion_never_evaluates_code():
    assert coerce_literal("__import__('os').system('echo hacked')") == "__import__('os').system('echo hacked')"


def test_text_fields_keep_strings_but_unwrap_json_quotes():
    assert coerce_text('"uid"') == "uid"
    assert coerce_text("123") == "123"
    assert coerce_text("true") == "true"


def test_sagemaker_strings_validate_to_typed_values():
    raw = {k: json.dumps(v) for k, v in BASE.items()} | {
        "batch_size": "32", "lr": "2e-5", "fp16": "true", "kernel_size": "[3, 5, 7]", "is_binary": "True",
        "class_weights": "[1.0, 2.5]", "id_name": '"id"',
    }
    config = validate_config(raw)
    assert (config.batch_size, config.lr, config.fp16, config.kernel_size) == (32, 2e-5, True, [3, 5, 7])
    assert config.class_weights == [1.0, 2.5]
    assert config.id_name == "id"
    assert config.full_field_list == BASE["full_field_list"]


def test_python_str_renderings_validate():
    config = validate_config({**BASE, "full_field_list": str(BASE["full_field_list"]), "fp16": "False"})
    assert config.full_field_list == BASE["full_field_list"] and config.fp16 is False


def test_misspelt_key_is_an_error_with_a_suggestion():
    with pytest.raises(ConfigError, match=r"Unknown hyperparameter 'bach_size': did you mean 'batch_size'"):
        validate_config({**BASE, "bach_size": 3})


def test_wrong_value_names_field_and_value():
    with pytest.raises(ConfigError, match=r"'lr' = -1.0: Input should be greater than 0"):
        validate_config({**BASE, "lr": "-1.0"})


def test_several_problems_are_all_listed():
    with pytest.raises(ConfigError) as info:
        validate_config({**BASE, "lr": 0, "batch_size": -1})
    message = str(info.value)
    assert "1 more problem listed below" in message.splitlines()[0]
    assert "batch_size" in message and "lr" in message


def test_job_file_overrides_shipped_file_and_platform_keys_are_dropped(tmp_path):
    shipped = tmp_path / "code.json"
    job = tmp_path / "job.json"
    shipped.write_text(json.dumps({**BASE, "lr": 0.1, "batch_size": 8}))
    job.write_text(json.dumps({"lr": "0.5", "sagemaker_program": "pytorch_training.py", "sagemaker_region": "x"}))
    raw = read_hyperparameters([shipped, job])
    assert raw["lr"] == "0.5" and raw["batch_size"] == 8
    assert not any(k.startswith("sagemaker_") for k in raw)


def test_a_tuning_job_validates_with_the_keys_sagemaker_adds(tmp_path, caplog):
    """A hyperparameter tuning job adds _tuning_objective_metric (and the SDK sagemaker_* keys),
    all as strings; the job ignores them, logs them once, and any other unknown key is an error."""
    job = tmp_path / "hyperparameters.json"
    tuned = {
        **{k: json.dumps(v) for k, v in BASE.items()},
        "lr": "3.5e-05",
        "_tuning_objective_metric": '"val:auroc"',
        "sagemaker_estimator_class_name": '"Estimator"',
        "sagemaker_estimator_module": '"sagemaker.estimator"',
    }
    job.write_text(json.dumps(tuned))
    with caplog.at_level(logging.INFO):
        config = validate_config(read_hyperparameters([job]))
    assert config.lr == 3.5e-05
    noted = [r.getMessage() for r in caplog.records if "platform's own hyperparameters" in r.getMessage()]
    assert noted == [
        "Ignoring the platform's own hyperparameters: _tuning_objective_metric, sagemaker_estimator_class_name, "
        "sagemaker_estimator_module"
    ]
    job.write_text(json.dumps({**tuned, "_objective": '"x"'}))
    with pytest.raises(ConfigError, match="Unknown hyperparameter '_objective'"):
        validate_config(read_hyperparameters([job]))


def test_missing_files_and_bad_json_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="No hyperparameters file found"):
        read_hyperparameters([tmp_path / "a.json"])
    bad = tmp_path / "bad.json"
    bad.write_text("{'lr': 1,}")
    with pytest.raises(ConfigError, match="not valid JSON"):
        read_hyperparameters([bad])


def test_derived_tabular_columns():
    config = validate_config(BASE)
    assert config.tabular_feature_names == ["a", "c__risk"]
    multi = validate_config({**BASE, "is_binary": False, "num_classes": 3, "multiclass_categories": ["x", "y", "z"]})
    assert multi.tabular_feature_names == ["a", "c__risk_x", "c__risk_y", "c__risk_z"]
