"""Upstream pipeline inputs: precomputed imputation and risk tables, already-encoded columns, feature selection."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle

import numpy as np
import pandas as pd
import pytest
import torch

from contracts.environment import RunSwitches
from contracts.errors import ConfigError, DataError
from helpers.data import hyperparameters, make_rows, write_job
from hyperparams.loading import validate_config
from processing.preparation import prepare_data
from processing.risk_tables import GivenRiskTables
from processing.safe_pickle import load_plain_pickle
from processing.upstream_inputs import apply_upstream_inputs
from processing.validation import validate_splits

# As the upstream imputation and risk-table steps write them.
IMPUTE = {"score": 3.0, "count": 25.0}
TABLES = {"region": {"bins": {"north": 0.9, "south": 0.55, "east": 0.2, "west": 0.1}, "default_bin": 0.6}}
BOTH = RunSwitches(use_precomputed_imputation=True, use_precomputed_risk_tables=True, dry_run=False)
NEITHER = RunSwitches(use_precomputed_imputation=False, use_precomputed_risk_tables=False, dry_run=False)
FLAGS_ON = {"USE_PRECOMPUTED_IMPUTATION": "true", "USE_PRECOMPUTED_RISK_TABLES": "true"}


class RunsShell:
    """What a hostile upstream step could pickle: unpickling it would run a shell command."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def apply(config, folder, switches):
    return apply_upstream_inputs(config, folder, switches).config


def artifacts_dir(base, **files) -> object:
    folder = base / "input" / "data" / "model_artifacts_input"
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        name = name.replace("_json", ".json").replace("_pkl", ".pkl")
        if name.endswith(".pkl"):
            (folder / name).write_bytes(pickle.dumps(content))
        else:
            (folder / name).write_text(json.dumps(content))
    return folder


def upstream_transformed(frame: pd.DataFrame) -> pd.DataFrame:
    """The split as an upstream step leaves it: numerics imputed, region replaced by its rate."""
    out = frame.copy()
    out[["score", "count"]] = out[["score", "count"]].fillna(IMPUTE)
    table = TABLES["region"]
    out["region"] = out["region"].map(table["bins"]).fillna(table["default_bin"]).astype(float)
    return out


def test_artifacts_replace_fitting_and_json_is_preferred_over_pickle(tmp_path, tiny_bert):
    folder = artifacts_dir(tmp_path, impute_dict_json=IMPUTE, impute_dict_pkl={"score": 0.0, "count": 0.0},
                           risk_table_map_json=TABLES)
    config = apply(validate_config(hyperparameters(tiny_bert)), folder, BOTH)
    assert config.imputation_dict == IMPUTE
    assert config.risk_tables == TABLES


def test_pickles_in_the_upstream_format_load_with_numpy_numbers_and_integer_categories(tmp_path, tiny_bert):
    folder = artifacts_dir(
        tmp_path,
        impute_dict_pkl={"score": np.float64(3.5), "count": np.int64(7)},
        risk_table_map_pkl={"region": {"bins": {3: np.float64(0.75), "north": 0.5}, "default_bin": np.float32(0.25)}},
    )
    config = apply(validate_config(hyperparameters(tiny_bert)), folder, BOTH)
    assert config.imputation_dict == {"score": 3.5, "count": 7.0}
    assert config.risk_tables == {"region": {"bins": {"3": 0.75, "north": 0.5}, "default_bin": 0.25}}
    encoder = GivenRiskTables.from_artifact(config.risk_tables, ["region"], 2)
    np.testing.assert_allclose(encoder.transform(pd.DataFrame({"region": [3.0, 4.0]}))[:, 0], [0.75, 0.25])
    encoded = encoder.transform(pd.DataFrame({"region": ["3", "north", "x"]}))
    np.testing.assert_allclose(encoded[:, 0], [0.75, 0.5, 0.25])


def test_a_pickle_that_would_run_code_is_refused_unrun(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "risk_table_map.pkl"
    path.write_bytes(pickle.dumps({"region": RunsShell(f"touch {marker}")}))
    with pytest.raises(DataError, match=r"risk_table_map.pkl was not loaded: it references posix.system"):
        load_plain_pickle(path)
    assert not marker.exists()


def test_the_job_refuses_a_malicious_pickle_with_a_failure_file(tmp_path, tiny_bert, run_main):
    base = write_job(tmp_path, hyperparameters(tiny_bert), rows=(30, 10, 10))
    marker = tmp_path / "ran"
    artifacts_dir(base, impute_dict_pkl={"score": RunsShell(f"touch {marker}")})
    assert run_main(base, FLAGS_ON) == 1
    reason = (base / "output" / "failure").read_text().splitlines()[0]
    assert "impute_dict.pkl was not loaded" in reason and "impute_dict.json" in reason
    assert not marker.exists()
    assert not (base / "model").exists()


@pytest.mark.parametrize("flag,stem", [("USE_PRECOMPUTED_IMPUTATION", "impute_dict"),
                                       ("USE_PRECOMPUTED_RISK_TABLES", "risk_table_map")])
def test_flag_set_with_the_artifact_missing_fails_instead_of_refitting(tmp_path, tiny_bert, run_main, flag, stem):
    base = write_job(tmp_path, hyperparameters(tiny_bert), rows=(30, 10, 10))
    artifacts_dir(base, other_json={})
    assert run_main(base, {flag: "true"}) == 1
    reason = (base / "output" / "failure").read_text().splitlines()[0]
    assert reason.startswith(f"{flag} is true but ")
    assert f"has no {stem}.json or {stem}.pkl" in reason and f"set {flag}=false" in reason
    assert not (base / "model").exists()


def test_artifacts_are_ignored_while_the_flags_are_false(tmp_path, tiny_bert, caplog):
    folder = artifacts_dir(tmp_path, impute_dict_json=IMPUTE, risk_table_map_json=TABLES)
    config = validate_config(hyperparameters(tiny_bert))
    with caplog.at_level(logging.INFO):
        assert apply(config, folder, NEITHER) == config
    assert "USE_PRECOMPUTED_IMPUTATION is false; fitting on train instead" in caplog.text


def test_the_files_read_are_the_selection_and_the_flagged_artifacts(tmp_path, tiny_bert):
    folder = artifacts_dir(tmp_path, impute_dict_json=IMPUTE, impute_dict_pkl=IMPUTE, risk_table_map_pkl=TABLES,
                           selected_features_json=["score", "region"])
    config = validate_config(hyperparameters(tiny_bert))
    assert [p.name for p in apply_upstream_inputs(config, folder, BOTH).files] == [
        "selected_features.json", "impute_dict.json", "risk_table_map.pkl"
    ]
    assert [p.name for p in apply_upstream_inputs(config, folder, NEITHER).files] == ["selected_features.json"]
    assert apply_upstream_inputs(config, tmp_path / "absent", NEITHER).files == []


def test_flag_and_hyperparameter_for_the_same_artifact_conflict(tmp_path, tiny_bert):
    folder = artifacts_dir(tmp_path, impute_dict_json=IMPUTE)
    config = validate_config(hyperparameters(tiny_bert, imputation_dict={"score": 1.0, "count": 1.0}))
    switches = RunSwitches(use_precomputed_imputation=True, use_precomputed_risk_tables=False, dry_run=False)
    with pytest.raises(ConfigError, match="remove imputation_dict or set USE_PRECOMPUTED_IMPUTATION=false"):
        apply(config, folder, switches)


@pytest.mark.parametrize(
    "files,message",
    [
        ({"impute_dict_json": {"score": 1.0}}, r"impute_dict.json has no entry for \['count'\]"),
        ({"impute_dict_json": {"score": "mean", "count": 1.0}}, r"the value for 'score' must be a number, not 'mean'"),
        ({"risk_table_map_json": {"region": {"north": 0.5}}}, r"risk table for 'region' in .* must look like"),
        ({"risk_table_map_json": {}}, r"risk_table_map.json has no entry for \['region'\]"),
        ({"impute_dict_json": [1, 2]}, r"impute_dict.json must map each numeric field"),
    ],
)
def test_malformed_artifacts_are_named(tmp_path, tiny_bert, files, message):
    folder = artifacts_dir(tmp_path, **{"impute_dict_json": IMPUTE, "risk_table_map_json": TABLES, **files})
    with pytest.raises(DataError, match=message):
        apply(validate_config(hyperparameters(tiny_bert)), folder, BOTH)


@pytest.mark.parametrize(
    "content", [["score", "region", "not_a_tabular_field"], {"selected_features": ["score", "region"]}]
)
def test_selected_features_restrict_the_tabular_fields(tmp_path, tiny_bert, content, caplog):
    folder = artifacts_dir(tmp_path, selected_features_json=content)
    config = validate_config(hyperparameters(tiny_bert, input_tab_dim=3))
    with caplog.at_level(logging.INFO):
        restricted = apply(config, folder, NEITHER)
    assert restricted.tab_field_list == ["score"]
    assert restricted.cat_field_list == ["region"]
    assert restricted.tabular_feature_names == ["score", "region__risk"]
    assert restricted.full_field_list == [f for f in config.full_field_list if f != "count"]  # files may lack it
    if isinstance(content, list):
        assert "['not_a_tabular_field'], which are not in tab_field_list or cat_field_list; ignored" in caplog.text


def test_split_files_need_not_hold_the_fields_a_selection_drops(tmp_path, tiny_bert):
    folder = artifacts_dir(tmp_path, selected_features_json=["score", "region"])
    config = apply(validate_config(hyperparameters(tiny_bert)), folder, NEITHER)
    frames = {split: make_rows(20, seed=i).drop(columns=["count"]) for i, split in enumerate(("train", "val", "test"))}
    validate_splits(config, frames, dict.fromkeys(frames, "file"))
    with pytest.raises(DataError, match=r"lacks 1 configured column\(s\): 'score' \(tab_field_list\)"):
        validate_splits(config, {**frames, "val": frames["val"].drop(columns=["score"])}, dict.fromkeys(frames, "file"))


def test_selection_that_keeps_no_tabular_field_is_an_error(tmp_path, tiny_bert):
    folder = artifacts_dir(tmp_path, selected_features_json=["review"])
    with pytest.raises(ConfigError, match=r"selected_features.json selects none of the tabular fields"):
        apply(validate_config(hyperparameters(tiny_bert)), folder, NEITHER)


def test_malformed_selection_is_named(tmp_path, tiny_bert):
    folder = artifacts_dir(tmp_path, selected_features_json={"features": ["score"]})
    with pytest.raises(DataError, match=r"selected_features.json must hold a JSON list of column names"):
        apply(validate_config(hyperparameters(tiny_bert)), folder, NEITHER)


def test_columns_encoded_upstream_give_the_same_model_inputs_as_raw_ones(tmp_path, tiny_bert, tokenizer):
    config = apply(
        validate_config(hyperparameters(tiny_bert)),
        artifacts_dir(tmp_path, impute_dict_json=IMPUTE, risk_table_map_json=TABLES),
        BOTH,
    )
    raw = {split: make_rows(24, seed=i) for i, split in enumerate(("train", "val", "test"))}
    encoded = {split: upstream_transformed(frame) for split, frame in raw.items()}
    files = dict.fromkeys(raw, tmp_path)
    from_raw = prepare_data(config, raw, tokenizer, files)
    from_encoded = prepare_data(config, encoded, tokenizer, files)
    for split in raw:
        expected = np.column_stack([encoded[split]["score"], encoded[split]["count"], encoded[split]["region"]])
        np.testing.assert_allclose(from_raw.splits[split].tabular, expected, rtol=1e-6)
        np.testing.assert_allclose(from_encoded.splits[split].tabular, expected, rtol=1e-6)


def test_encoded_column_with_missing_values_takes_the_default_rate():
    encoder = GivenRiskTables.from_artifact(TABLES, ["region"], 2)
    encoded = encoder.transform(pd.DataFrame({"region": [0.9, np.nan, 0.1]}))
    np.testing.assert_allclose(encoded[:, 0], [0.9, 0.6, 0.1])


def test_integer_category_codes_are_mapped_even_when_some_are_unseen():
    encoder = GivenRiskTables.from_artifact({"c": {"bins": {"1": 0.3, "2": 0.7}, "default_bin": 0.5}}, ["c"], 2)
    np.testing.assert_allclose(encoder.transform(pd.DataFrame({"c": [1, 2, 9]}))[:, 0], [0.3, 0.7, 0.5])


def test_rates_from_another_risk_table_are_an_error():
    encoder = GivenRiskTables.from_artifact(TABLES, ["region"], 2)
    with pytest.raises(DataError, match=r"Column 'region' holds fractional numbers .*\(e\.g\. \[0\.33\]\)"):
        encoder.transform(pd.DataFrame({"region": [0.9, 0.33, 0.1]}))


def test_multiclass_columns_holding_single_rates_are_an_error():
    tables = {"c": {"bins": {"a": [0.2, 0.3, 0.5]}, "default_bin": [0.3, 0.3, 0.4]}}
    encoder = GivenRiskTables.from_artifact(tables, ["c"], 3)
    np.testing.assert_allclose(encoder.transform(pd.DataFrame({"c": ["a", "b"]})), [[0.2, 0.3, 0.5], [0.3, 0.3, 0.4]])
    with pytest.raises(DataError, match="multiclass task needs one rate per class"):
        encoder.transform(pd.DataFrame({"c": [0.2, 0.5]}))


def test_job_on_upstream_encoded_splits_uses_and_saves_the_upstream_artifacts(tmp_path, tiny_bert, run_main):
    sizes = {"train": 40, "val": 12, "test": 12}
    frames = {split: upstream_transformed(make_rows(n, seed=i)) for i, (split, n) in enumerate(sizes.items())}
    base = write_job(tmp_path, hyperparameters(tiny_bert, max_epochs=1), frames=frames)
    bins = {k: np.float64(v) for k, v in TABLES["region"]["bins"].items()}
    upstream_pickle = {"region": {"bins": bins, "default_bin": np.float64(0.6)}}
    artifacts_dir(base, impute_dict_json=IMPUTE, risk_table_map_pkl=upstream_pickle,
                  selected_features_json={"selected_features": ["score", "region"]})
    assert run_main(base, FLAGS_ON) == 0
    model = base / "model"
    assert json.loads((model / "risk_table_map.json").read_text()) == TABLES
    assert json.loads((model / "impute_dict.json").read_text()) == {"score": 3.0}
    resolved = json.loads((model / "hyperparameters.json").read_text())
    assert (resolved["tab_field_list"], resolved["cat_field_list"]) == (["score"], ["region"])
    bundle = torch.load(model / "model_artifacts.pth", weights_only=True)
    assert bundle["tabular_feature_names"] == ["score", "region__risk"]
    lineage = json.loads((model / "manifest.json").read_text())["model_artifacts_input"]
    folder = base / "input" / "data" / "model_artifacts_input"
    assert sorted(lineage) == ["impute_dict.json", "risk_table_map.pkl", "selected_features.json"]
    for name, entry in lineage.items():
        content = (folder / name).read_bytes()
        assert entry == {"path": str((folder / name).resolve()), "bytes": len(content),
                         "sha256": hashlib.sha256(content).hexdigest()}


def test_settings_made_idle_by_upstream_artifacts_are_noted(tmp_path, tiny_bert, caplog):
    """smooth_factor does nothing once risk_table_map comes from upstream: the note reflects the
    config after the channel is applied, not before."""
    from contracts.paths import resolve_paths
    from export.manifest import RunRecord
    from job.steps import configure

    base = write_job(tmp_path, hyperparameters(tiny_bert, smooth_factor=0.1), rows=(20, 8, 8))
    artifacts_dir(base, risk_table_map_json=TABLES)
    switches = RunSwitches(use_precomputed_imputation=False, use_precomputed_risk_tables=True, dry_run=False)
    with caplog.at_level(logging.WARNING):
        setup = configure(resolve_paths({"SAGEMAKER_BASE_DIR": str(base)}), switches, RunRecord())
    assert setup.config.risk_tables == TABLES
    assert "Hyperparameter smooth_factor = 0.1 has no effect: risk_tables are given" in caplog.text
