"""The Config beyond single errors: SageMaker's string values, notes for idle settings, the
shipped examples, and the generated field table in docs/configuration.md."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from contracts.errors import ConfigError
from helpers.data import MINIMAL_FIELDS
from hyperparams.config import Config
from hyperparams.inactive import inactive_settings
from hyperparams.loading import validate_config
from hyperparams.reference import END, START, markdown_table, replace_table, table_in, type_name
from processing.tabular import TabularEncoders

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "hyperparams" / "examples"
REFERENCE_EXAMPLES = (
    Path(__file__).resolve().parent / "reference_examples"
)  # the project's reference examples, as given

BASE = MINIMAL_FIELDS


# --- SageMaker strings ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field,raw,expected",
    [
        ("fp16", "true", True),
        ("load_ckpt", "False", False),
        ("kernel_size", "[3, 5, 7]", [3, 5, 7]),
        ("imputation_dict", '{"a": 1}', {"a": 1.0}),
        ("lr", "1e-5", 1e-5),
        ("batch_size", "32", 32),
        ("cat_field_list", "['c']", ["c"]),
        ("multiclass_categories", '["x", "y"]', ["x", "y"]),
        ("devices", "2", 2),
        ("devices", "auto", "auto"),
        ("num_nodes", "null", None),
        ("id_name", '"id"', "id"),
    ],
)
def test_sagemaker_string_values_become_typed_values(field, raw, expected):
    config = validate_config({**BASE, field: raw})
    assert getattr(config, field) == expected
    assert type(getattr(config, field)) is type(expected)


def test_column_names_that_look_like_numbers_stay_text():
    raw = {**BASE, "id_name": "123", "full_field_list": '["123", "text", "y", "a", "c"]'}
    assert validate_config(raw).id_name == "123"


def test_the_resolved_config_a_job_saves_validates_to_the_same_config():
    config = validate_config(
        {**BASE, "risk_tables": {"c": {"bins": {"k": 0.5}, "default_bin": 0.4}}, "imputation_dict": {"a": 1}}
    )
    assert validate_config(json.loads(json.dumps(config.model_dump(mode="json")))) == config


# --- idle settings --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes,note",
    [
        (
            {"model_class": "bert", "kernel_size": [3]},
            "kernel_size = [3] has no effect: only multimodal_cnn use it, and model_class is bert",
        ),
        ({"num_layers": 3}, "num_layers = 3 has no effect: only multimodal_cnn and lstm use it"),
        ({"num_experts": 8}, "num_experts = 8 has no effect: only multimodal_moe use it"),
        (
            {"model_class": "multimodal_cnn", "reinit_layers": 1},
            "reinit_layers = 1 has no effect: only multimodal_bert and",
        ),
        ({"momentum": 0.8}, "momentum = 0.8 has no effect: only SGD use it, and optimizer is AdamW"),
        ({"optimizer": "SGD", "adam_epsilon": 1e-6}, "adam_epsilon = 1e-06 has no effect: only Adam and AdamW use it"),
        ({"lr_decay": 0.1}, "lr_decay = 0.1 has no effect: run_scheduler is true"),
        ({"run_scheduler": False, "warmup_steps": 10}, "warmup_steps = 10 has no effect: run_scheduler is false"),
        ({"model_class": "lstm"}, "tab_field_list = ['a'] has no effect: model_class lstm reads text only"),
        (
            {"model_class": "bert", "input_tab_dim": 4},
            "input_tab_dim = 4 has no effect: model_class bert reads text only",
        ),
        (
            {"smooth_factor": 0.1, "risk_tables": {"c": {"bins": {"k": 0.5}, "default_bin": 0.4}}},
            "smooth_factor = 0.1 has no effect: risk_tables are given",
        ),
        (
            {"count_threshold": 5, "categorical_features_to_encode": []},
            "count_threshold = 5 has no effect: no categorical field is risk-encoded",
        ),
        (
            {"max_total_chunks": 3, "text_processing_steps": ["text_normalizer", "tokenizer"]},
            "max_total_chunks = 3 has no effect: no text column has a dialogue_chunker",
        ),
        (
            {"model_class": "lstm", "lr": 1e-4, "head_lr": 3e-3},
            "lr = 0.0001 has no effect: model_class lstm has no pretrained transformer, "
            "so every parameter trains at head_lr",
        ),
        (
            {"model_class": "multimodal_cnn", "lr": 1e-4, "head_lr": 3e-3},
            "lr = 0.0001 has no effect: model_class multimodal_cnn has no pretrained transformer",
        ),
    ],
)
def test_a_set_field_without_effect_gets_one_note(changes, note):
    notes = inactive_settings(validate_config({**BASE, **changes}))
    field = note.split(" =")[0]
    about_field = [n for n in notes if n.startswith(f"Hyperparameter {field} = ")]
    assert len(about_field) == 1 and note in about_field[0], notes


@pytest.mark.parametrize(
    "changes",
    [
        {},  # defaults are never noted
        {"model_class": "multimodal_cnn", "kernel_size": [3], "num_layers": 2, "num_channels": [8, 8]},
        {"optimizer": "SGD", "momentum": 0.5},
        {"run_scheduler": False, "lr_decay": 0.1},
        {"model_class": "bert", "tab_field_list": [], "cat_field_list": []},  # empty lists ask for nothing
        {"smooth_factor": 0.2, "count_threshold": 3},
        {"max_total_chunks": 3, "chunk_trancate": False},
        {"lr": 1e-4, "head_lr": 3e-3},  # the transformer trains at lr
        {"model_class": "lstm", "tab_field_list": [], "cat_field_list": [], "lr": 1e-4},  # no head_lr: all at lr
    ],
)
def test_settings_that_act_are_not_noted(changes):
    assert inactive_settings(validate_config({**BASE, **changes})) == []


@pytest.mark.parametrize(
    ("changes", "names"),
    [
        ({}, ["a", "c__risk"]),
        ({"is_binary": False, "num_classes": 2, "multiclass_categories": ["n", "p"]}, ["a", "c__risk"]),
        (
            {"is_binary": False, "num_classes": 3, "multiclass_categories": ["x", "y", "z"]},
            ["a", "c__risk_x", "c__risk_y", "c__risk_z"],
        ),
    ],
    ids=["binary", "two named classes", "three classes"],
)
def test_the_encoded_columns_are_the_declared_tabular_features(changes, names):
    """Two classes encode a category by its positive rate, more classes by one rate per class."""
    config = validate_config({**BASE, **changes})
    labels = np.arange(6) % config.num_classes
    frame = pd.DataFrame({"a": [1.0, 2.0, None, 4.0, 5.0, 6.0], "c": list("ppqqrr")})
    encoded = TabularEncoders.fit(config, frame, labels).transform(config, frame, "train")
    assert config.tabular_feature_names == names
    assert encoded.shape == (6, len(names)) == (6, config.tabular_dim)


# --- the shipped examples -------------------------------------------------------------------


def test_reference_examples_validate_except_the_inconsistent_one():
    outcomes = {}
    for path in sorted(REFERENCE_EXAMPLES.glob("*.json")):
        try:
            validate_config(json.loads(path.read_text()))
            outcomes[path.name] = "ok"
        except ConfigError as exc:
            outcomes[path.name] = str(exc)
    assert len(outcomes) == 5
    assert outcomes.pop("binary_multimodal_bert.json") == (
        "Invalid hyperparameters: cat_field_list names 'marketplace', which is not in full_field_list; "
        "add 'marketplace' to full_field_list or remove it from cat_field_list."
    )
    assert set(outcomes.values()) == {"ok"}


def test_shipped_examples_validate_and_differ_from_the_reference_only_where_needed():
    shipped = {p.name: json.loads(p.read_text()) for p in EXAMPLES.glob("*.json")}
    reference = {p.name: json.loads(p.read_text()) for p in REFERENCE_EXAMPLES.glob("*.json")}
    assert shipped.keys() == reference.keys()
    for name, raw in shipped.items():
        validate_config(raw)
        changed = {k for k in raw.keys() | reference[name].keys() if raw.get(k) != reference[name].get(k)}
        assert changed == ({"full_field_list"} if name == "binary_multimodal_bert.json" else set()), name
    fixed = shipped["binary_multimodal_bert.json"]["full_field_list"]
    assert fixed == [*reference["binary_multimodal_bert.json"]["full_field_list"], "marketplace"]


# --- the reference table in docs/configuration.md ---------------------------------------------


def test_configuration_page_table_is_the_generated_one():
    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert table_in(page) == markdown_table(), (
        "docs/configuration.md is stale: run python -m hyperparams.reference docs/configuration.md"
    )


def test_table_has_every_field_once_with_type_default_and_meaning():
    rows = markdown_table().splitlines()[2:]
    names = [row.split("|")[1].strip().strip("`") for row in rows]
    assert names == list(Config.model_fields)
    lr = next(row for row in rows if row.startswith("| `lr` "))
    assert (
        lr
        == "| `lr` | float > 0 | `2e-05` | Peak learning rate (of the pretrained transformer, when head_lr is set). |"
    )
    optimizer = next(row for row in rows if row.startswith("| `optimizer` "))
    assert "One of: `SGD`, `Adam`, `AdamW`." in optimizer
    assert "| `id_name` | str non-empty | required |" in markdown_table()


def test_table_follows_the_field_descriptions(monkeypatch):
    monkeypatch.setattr(Config.model_fields["seed"], "description", "A changed description.")
    assert "| `seed` | int >= 0, <= 4294967295 | `42` | A changed description. |" in markdown_table()


@pytest.mark.parametrize(
    "field,expected",
    [
        ("kernel_size", "list[int > 0] non-empty"),
        ("devices", 'int or "auto"'),
        ("risk_tables", "dict[str, {bins, default_bin}]"),
        ("multiclass_categories", "list[int or str]"),
        ("dropout_keep", "float > 0, <= 1"),
    ],
)
def test_type_names(field, expected):
    info = Config.model_fields[field]
    assert type_name(info.annotation, info.metadata) == expected


def test_replace_table_rewrites_only_between_the_markers():
    text = f"before\n{START}\nold\n{END}\nafter"
    assert replace_table(text, "new") == f"before\n{START}\nnew\n{END}\nafter"
    with pytest.raises(ValueError, match="markers"):
        replace_table("no markers", "new")
