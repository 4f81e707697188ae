"""Every validation rule through the real entry script: exit status 1, a first line in
output/failure that names the field, file or value and what to change, and nothing in model/.

Configuration errors must stop the job before any data or model is touched, so those cases run
with no data at all and a tokenizer path that does not exist: a message about the configuration
proves the rule ran first. Data errors must stop it before tokenization, so no tokenized-text
cache may exist afterwards.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from contracts.errors import DataError
from helpers.data import hyperparameters, make_rows, write_job
from helpers.jobs import assert_failed_cleanly
from hyperparams.loading import validate_config
from processing.files import _first_invalid_utf8
from processing.validation import validate_splits

DELETE = object()

CONFIG_CASES = {
    # name: (hyperparameter changes, fragments the failure's first line must contain)
    "misspelt key": ({"bach_size": 3}, ["'bach_size'", "did you mean 'batch_size'", "Remove it or fix its spelling"]),
    "missing required field": ({"id_name": DELETE}, ["'id_name' is missing", "add it"]),
    "negative lr as a string": ({"lr": "-0.1"}, ["'lr' = -0.1", "greater than 0"]),
    "zero batch_size": ({"batch_size": 0}, ["'batch_size' = 0", "greater than 0"]),
    "zero max_epochs": ({"max_epochs": "0"}, ["'max_epochs' = 0", "greater than 0"]),
    "negative hidden_common_dim": ({"hidden_common_dim": -1}, ["'hidden_common_dim' = -1", "greater than 0"]),
    "zero max_total_chunks": ({"max_total_chunks": 0}, ["'max_total_chunks' = 0", "greater than 0"]),
    "max_sen_len too small": ({"max_sen_len": 2}, ["'max_sen_len' = 2", "greater than or equal to 4"]),
    "dropout_keep zero": ({"dropout_keep": 0}, ["'dropout_keep' = 0", "greater than 0"]),
    "dropout_keep above one": ({"dropout_keep": 1.5}, ["'dropout_keep' = 1.5", "less than or equal to 1"]),
    "unknown model_class": (
        {"model_class": "transformer"},
        ["'model_class' = 'transformer'", "'multimodal_bert'", "'lstm'"],
    ),
    "unknown optimizer": ({"optimizer": "RMSprop"}, ["'optimizer' = 'RMSprop'", "'SGD', 'Adam' or 'AdamW'"]),
    "bimodal and trimodal text": (
        {"primary_text_name": "review", "secondary_text_name": "region"},
        ["text_name is for one text column", "not both"],
    ),
    "primary text without secondary": (
        {"text_name": DELETE, "primary_text_name": "review"},
        ["needs both primary_text_name and secondary_text_name", "set secondary_text_name"],
    ),
    "no text column": ({"text_name": DELETE}, ["no text column configured", "set text_name"]),
    "binary with three classes": (
        {"num_classes": 3},
        ["is_binary is true but num_classes is 3", "set num_classes to 2"],
    ),
    "multiclass without categories": (
        {"is_binary": "false", "num_classes": 3},
        ["is_binary is false, so multiclass_categories is required"],
    ),
    "categories and num_classes disagree": (
        {"is_binary": False, "num_classes": 3, "multiclass_categories": ["a", "b"]},
        ["num_classes is 3 but multiclass_categories has 2 values", "make them agree"],
    ),
    "duplicate categories": (
        {"is_binary": False, "num_classes": 3, "multiclass_categories": "['a', 'b', 'a']"},
        ["multiclass_categories", "lists 'a' more than once", "list each class once"],
    ),
    "class_weights length": (
        {"class_weights": "[1.0, 2.0, 3.0]"},
        ["class_weights has 3 values but num_classes is 2", "one weight per class"],
    ),
    "negative class weight": ({"class_weights": [1.0, -2.0]}, ["'class_weights[1]' = -2.0", "greater than 0"]),
    "unknown early_stop_metric": (
        {"early_stop_metric": "val/f2"},
        ["early_stop_metric 'val/f2' is not computed", "'val/loss'"],
    ),
    "early_stop_metric not in metric_choices": (
        {"early_stop_metric": "val/auroc", "metric_choices": ["f1_score"]},
        ["early_stop_metric 'val/auroc' is not computed", "add auroc to metric_choices"],
    ),
    "unknown metric": ({"metric_choices": ["auroc", "mcc"]}, ["'metric_choices[1]' = 'mcc'", "'average_precision'"]),
    "duplicate metric": ({"metric_choices": ["auroc", "auroc"]}, ["metric_choices lists 'auroc' more than once"]),
    "empty metric_choices": ({"metric_choices": []}, ["'metric_choices' = []", "at least 1 item"]),
    "numeric field missing from full_field_list": (
        {"tab_field_list": ["score", "count", "extra"]},
        ["tab_field_list names 'extra', which is not in full_field_list", "add 'extra' to full_field_list"],
    ),
    "categorical field missing from full_field_list": (
        {"full_field_list": ["uid", "review", "score", "count", "label"]},
        ["cat_field_list names 'region', which is not in full_field_list", "add 'region' to full_field_list"],
    ),
    "id missing from full_field_list": (
        {"full_field_list": ["review", "score", "count", "region", "label"]},
        ["id_name names 'uid', which is not in full_field_list", "add 'uid' to full_field_list"],
    ),
    "label missing from full_field_list": (
        {"full_field_list": ["uid", "review", "score", "count", "region"]},
        ["label_name names 'label', which is not in full_field_list", "add 'label' to full_field_list"],
    ),
    "text missing from full_field_list": (
        {"full_field_list": ["uid", "score", "count", "region", "label"]},
        ["text_name names 'review', which is not in full_field_list", "add 'review' to full_field_list"],
    ),
    "secondary text missing from full_field_list": (
        {"text_name": DELETE, "primary_text_name": "review", "secondary_text_name": "notes"},
        ["secondary_text_name names 'notes', which is not in full_field_list", "add 'notes' to full_field_list"],
    ),
    "field numeric and categorical": (
        {"cat_field_list": ["region", "score"]},
        ["field 'score' is used as tab_field_list and as cat_field_list", "only one role"],
    ),
    "label is the id": ({"label_name": "uid"}, ["field 'uid' is used as id_name and as label_name"]),
    "text column as numeric feature": (
        {"tab_field_list": ["score", "review"]},
        ["field 'review' is used as text_name and as tab_field_list"],
    ),
    "duplicate numeric field": (
        {"tab_field_list": ["score", "score"]},
        ["tab_field_list lists 'score' more than once"],
    ),
    "duplicate in full_field_list": (
        {"full_field_list": ["uid", "uid", "review", "score", "count", "region", "label"]},
        ["full_field_list lists 'uid' more than once", "list each field once"],
    ),
    "encode a field that is not categorical": (
        {"categorical_features_to_encode": ["score"]},
        ["categorical_features_to_encode names 'score', which are not in cat_field_list"],
    ),
    "wrong input_tab_dim": (
        {"input_tab_dim": 5},
        ["input_tab_dim is 5 but the tabular input has 3 columns", "score, count, region__risk"],
    ),
    "multimodal model without tabular fields": (
        {"tab_field_list": [], "cat_field_list": []},
        ["model_class multimodal_bert fuses text with tabular features", "use model_class bert or lstm"],
    ),
    "tokenizer step not last": (
        {"text_processing_steps": ["tokenizer", "text_normalizer"]},
        ["text_processing_steps", "tokenizer must be the last step"],
    ),
    "unknown text step": (
        {"text_processing_steps": ["stemmer", "tokenizer"]},
        ["'text_processing_steps[0]' = 'stemmer'", "'dialogue_splitter'"],
    ),
    "trimodal steps in a bimodal config": (
        {"primary_text_processing_steps": ["tokenizer"]},
        ["primary_text_processing_steps does not apply to a bimodal config", "use text_processing_steps"],
    ),
    "cnn channels per layer": (
        {"model_class": "multimodal_cnn", "num_layers": 3, "num_channels": [64, 64]},
        ["num_channels has 2 values but num_layers is 3", "one channel count per layer"],
    ),
    "moe with one expert": (
        {"model_class": "multimodal_moe", "num_experts": 1},
        ["'num_experts' = 1", "greater than or equal to 2"],
    ),
    "fractional batch count": ({"val_check_interval": 2.5}, ["'val_check_interval' = 2.5", "whole number of batches"]),
    "smooth_factor above one": ({"smooth_factor": 2}, ["'smooth_factor' = 2", "less than or equal to 1"]),
    "momentum of one": ({"momentum": 1.0, "optimizer": "SGD"}, ["'momentum' = 1.0", "less than 1"]),
    "boolean that is not": ({"fp16": "maybe"}, ["'fp16' = 'maybe'", "use true or false"]),
    "number that is not": ({"batch_size": "thirty-two"}, ["'batch_size' = 'thirty-two'", "use a whole number"]),
    "list that is not": ({"full_field_list": "uid"}, ["'full_field_list' = 'uid'", "use a JSON list"]),
    "same text batch keys": (
        {"text_input_ids_key": "ids", "text_attention_mask_key": "ids"},
        ["text_input_ids_key and text_attention_mask_key are both 'ids'", "different names"],
    ),
    "text batch key taken": (
        {"text_attention_mask_key": "labels"},
        ["text_attention_mask_key is 'labels'", "choose another name"],
    ),
    "imputation values incomplete": (
        {"imputation_dict": {"score": 3.0}},
        ["imputation_dict has no entry for 'count'", "remove imputation_dict to fit it on train"],
    ),
    "risk table for an unknown field": (
        {
            "risk_tables": {
                "region": {"bins": {"north": 0.5}, "default_bin": 0.4},
                "city": {"bins": {}, "default_bin": 0.1},
            }
        },
        ["risk_tables has entries for 'city'", "remove them"],
    ),
    "risk table without default": (
        {"risk_tables": {"region": {"bins": {"north": 0.5}}}},
        ["'risk_tables.region.default_bin' is missing"],
    ),
    "risk table with two rates for a binary task": (
        {"risk_tables": {"region": {"bins": {"north": [0.4, 0.6]}, "default_bin": 0.5}}},
        [
            "risk table 'region' gives [0.4, 0.6] for 'north'",
            "a task with 2 classes needs one rate (of the positive class)",
        ],
    ),
    "negative seed": ({"seed": -1}, ["'seed' = -1", "greater than or equal to 0"]),
    "zero devices": ({"devices": 0}, ["'devices' = 0", "positive number of devices"]),
    "unknown strategy": ({"strategy": "deepspeed"}, ["'strategy' = 'deepspeed'", "'auto', 'ddp' or 'fsdp'"]),
    "unknown accelerator": ({"accelerator": "tpu"}, ["'accelerator' = 'tpu'", "'cpu'"]),
    "empty column name": ({"id_name": ""}, ["'id_name' = ''", "at least 1 character"]),
    "empty kernel_size": (
        {"model_class": "multimodal_cnn", "kernel_size": []},
        ["'kernel_size' = []", "at least 1 item"],
    ),
}


def write_config_only(base, changes: dict, tokenizer) -> None:
    hparams = {k: v for k, v in hyperparameters(tokenizer, **changes).items() if v is not DELETE}
    folder = base / "code" / "hyperparams"
    folder.mkdir(parents=True)
    (folder / "hyperparameters.json").write_text(json.dumps(hparams))


def assert_rejected(base, status: int, fragments) -> None:
    assert_failed_cleanly(base, status, *fragments)
    assert not (base / "checkpoints" / "preprocessed").exists(), "text was tokenized before the error"


@pytest.mark.parametrize("changes,fragments", CONFIG_CASES.values(), ids=CONFIG_CASES.keys())
def test_bad_configuration_stops_before_anything_is_loaded(tmp_path, run_main, changes, fragments):
    write_config_only(tmp_path, changes, tokenizer=tmp_path / "no-such-tokenizer")
    assert_rejected(tmp_path, run_main(tmp_path), fragments)


@pytest.mark.parametrize("kind", ["configurations", "data files"])
def test_there_are_at_least_thirty_distinct_cases_of_each_kind(kind):
    cases = (
        [f for _, f in CONFIG_CASES.values()]
        if kind == "configurations"
        else [c.fragments for c in DATA_CASES.values()]
    )
    messages = [tuple(fragments) for fragments in cases]
    assert len(set(messages)) == len(messages) >= 30


def test_job_file_values_are_validated_too(tmp_path, run_main):
    write_config_only(tmp_path, {}, tokenizer=tmp_path / "no-such-tokenizer")
    job_file = tmp_path / "input" / "config" / "hyperparameters.json"
    job_file.parent.mkdir(parents=True)
    job_file.write_text(json.dumps({"lr": "fast", "sagemaker_program": "pytorch_training.py"}))
    assert_rejected(tmp_path, run_main(tmp_path), ["'lr' = 'fast'", "use a number"])


@pytest.mark.parametrize(
    "content,fragments",
    [("{'lr': 1,}", ["is not valid JSON", "line 1, column 2"]), ("[1, 2]", ["must hold a JSON object", "not list"])],
    ids=["not json", "not an object"],
)
def test_unreadable_hyperparameter_file(tmp_path, run_main, content, fragments):
    folder = tmp_path / "code" / "hyperparams"
    folder.mkdir(parents=True)
    (folder / "hyperparameters.json").write_text(content)
    assert_rejected(tmp_path, run_main(tmp_path), ["hyperparameters.json", *fragments])


def test_no_hyperparameter_file(tmp_path, run_main):
    assert_rejected(
        tmp_path, run_main(tmp_path), ["No hyperparameters file found", "code/hyperparams/hyperparameters.json"]
    )


@pytest.mark.parametrize("variable", ["USE_PRECOMPUTED_IMPUTATION", "USE_PRECOMPUTED_RISK_TABLES", "DRY_RUN"])
def test_environment_flag_spelling(tmp_path, tiny_bert, run_main, variable):
    base = write_job(tmp_path, hyperparameters(tiny_bert), rows=(20, 8, 8))
    assert_rejected(base, run_main(base, {variable: "perhaps"}), [f"{variable}='perhaps'", "true, false"])


def test_max_sen_len_beyond_the_tokenizer_stops_before_data(tmp_path, tiny_bert, run_main):
    write_config_only(tmp_path, {"max_sen_len": 128}, tokenizer=tiny_bert)
    assert_rejected(
        tmp_path, run_main(tmp_path), ["max_sen_len is 128", "at most 64 tokens", "set max_sen_len to 64 or less"]
    )


def test_tokenizer_that_cannot_load(tmp_path, run_main):
    write_config_only(tmp_path, {}, tokenizer=tmp_path / "no-such-tokenizer")
    assert_rejected(
        tmp_path, run_main(tmp_path), ["no-such-tokenizer", "could not be loaded", "set tokenizer to a local folder"]
    )


# --- data files -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataCase:
    """Bad input data: a change to the frames before they are written and/or damage to the files
    under input/data afterwards, with the fragments the failure's first line must contain."""

    fragments: list[str]
    frames: Callable[[dict[str, pd.DataFrame]], None] | None = None
    files: Callable[[Path], None] | None = None
    hparams: dict = field(default_factory=dict)
    env: dict = field(default_factory=dict)
    fmt: str = "csv"


MULTICLASS = {"is_binary": False, "num_classes": 3, "multiclass_categories": ["low", "medium", "high"]}
PRECOMPUTED = {"USE_PRECOMPUTED_IMPUTATION": "true", "USE_PRECOMPUTED_RISK_TABLES": "true"}
IMPUTE = '{"score": 3.0, "count": 25.0}'
TABLES = '{"region": {"bins": {"north": 0.9, "south": 0.5, "east": 0.2, "west": 0.1}, "default_bin": 0.6}}'


def _frames(multiclass: bool = False):
    return {s: make_rows(n, i, multiclass) for i, (s, n) in enumerate((("train", 40), ("val", 16), ("test", 16)))}


def _set(split: str, column: str, values: dict):
    """Cells (row -> value) of one split; the column holds objects first unless every value is a float."""

    def change(frames):
        frame = frames[split]
        if not all(isinstance(v, float) for v in values.values()):
            frame[column] = frame[column].astype(object)
        for row, value in values.items():
            frame.loc[row, column] = value

    return change


def _rename(old: str, new: str, *splits: str):
    """A column renamed in the given splits (default: all)."""

    def change(frames):
        for split in splits or list(frames):
            frames[split] = frames[split].rename(columns={old: new})

    return change


def _fill(column: str, value, *splits: str):
    """A whole column set to one value in the given splits (default: all)."""

    def change(frames):
        for split in splits or list(frames):
            frames[split][column] = value

    return change


def _drop(split: str, column: str):
    def change(frames):
        frames[split] = frames[split].drop(columns=[column])

    return change


def _no_rows(split: str):
    def change(frames):
        frames[split] = frames[split].iloc[:0]

    return change


def _binary_labels(negative, positive):
    def change(frames):
        for frame in frames.values():
            frame["label"] = frame["label"].map({0: negative, 1: positive})

    return change


def _duplicate_column(frames):
    frames["train"] = pd.concat([frames["train"], frames["train"][["score"]]], axis=1)


def _list_column(frames):
    frames["val"]["score"] = [[score, score / 2] for score in frames["val"]["score"]]


def _resave(split: str, suffix: str = "csv", **to_csv):
    """The split's file written again as CSV with other settings (separator, encoding)."""

    def damage(data: Path):
        path = data / split / f"{split}.{suffix}"
        frame = pd.read_csv(path, sep="\t" if suffix == "tsv" else ",")
        frame.to_csv(path, index=False, errors="replace", **to_csv)  # characters the encoding lacks become "?"

    return damage


def _as_json_lines(split: str):
    """The split exported as JSON lines instead of CSV."""

    def damage(data: Path):
        path = data / split / f"{split}.csv"
        pd.read_csv(path).to_json(path.with_suffix(".json"), orient="records", lines=True)
        path.unlink()

    return damage


def _shards(split: str, fmt: str = "csv", change=None):
    """The split's file rewritten as three shards in a Spark-style folder; ``change(index, frame)``
    may alter a shard (or return None to leave it empty, zero bytes)."""

    def damage(data: Path):
        path = data / split / f"{split}.{fmt}"
        frame = pd.read_parquet(path) if fmt == "parquet" else pd.read_csv(path)
        path.unlink()
        for index, part in enumerate((frame.iloc[:5], frame.iloc[5:9], frame.iloc[9:])):
            shard = data / split / f"part-{index:05d}.{fmt}"
            part = change(index, part) if change else part
            if part is None:
                shard.write_bytes(b"")
            elif fmt == "parquet":
                part.to_parquet(shard, index=False)
            else:
                part.to_csv(shard, index=False)
        (data / split / "_SUCCESS").write_text("")

    return damage


def _artifacts(**files: str):
    """Files (name -> content) in the model_artifacts_input channel."""

    def damage(data: Path):
        folder = data / "model_artifacts_input"
        folder.mkdir()
        for name, content in files.items():
            (folder / name).write_text(content)

    return damage


DATA_CASES = {
    # --- columns
    "column missing in one split": DataCase(
        ["The val file", "lacks 1 configured column(s): 'score' (tab_field_list)", "Its columns are ['uid'"],
        frames=_drop("val", "score"),
    ),
    "misspelt column": DataCase(
        ["'review' (text_name, did you mean 'Review'?)", "Fix the column names"],
        frames=_rename("review", "Review"),
    ),
    "column name with a trailing space": DataCase(
        ["The train file", "'score' (tab_field_list, did you mean 'score '?)"],
        frames=_rename("score", "score ", "train"),
    ),
    "test split without labels": DataCase(["The test file", "'label' (label_name)"], frames=_drop("test", "label")),
    "column listed only in full_field_list": DataCase(
        ["lacks 1 configured column(s): 'notes' (full_field_list)"],
        hparams={"full_field_list": ["uid", "review", "score", "count", "region", "label", "notes"]},
    ),
    "tabular column of a text-only model": DataCase(
        ["The val file", "'count' (tab_field_list)", "Its columns are"],
        frames=_drop("val", "count"),
        hparams={"model_class": "bert"},
    ),
    "duplicate column name": DataCase(
        ["train.csv has more than one column named 'score'", "rename or remove the extra column"],
        frames=_duplicate_column,
    ),
    "split with no rows": DataCase(["The val file", "has a header but no rows"], frames=_no_rows("val")),
    # --- labels
    "unknown label": DataCase(
        ["The test file has label values", "'7' (3 rows)", "expected one of [0, 1]", "or clean the labels"],
        frames=_set("test", "label", dict.fromkeys([3, 7, 9], 7)),
    ),
    "missing label": DataCase(
        ["The train file has label values", "missing (2 rows)", "give those rows a label or remove them"],
        frames=_set("train", "label", {1: np.nan, 2: np.nan}),
    ),
    "blank labels in parquet": DataCase(
        ["The val file has label values", "blank (2 rows)"],
        frames=_set("val", "label", {0: "", 5: ""}),
        hparams=MULTICLASS,
        fmt="parquet",
    ),
    "binary labels 1 and 2": DataCase(
        ["'2' (", "if this file's labels [1, 2] are the classes, set multiclass_categories to them"],
        frames=_binary_labels(1, 2),
    ),
    "binary labels as words": DataCase(
        ["expected one of [0, 1]", "if this file's labels ['no', 'yes'] are the classes"],
        frames=_binary_labels("no", "yes"),
    ),
    "unknown multiclass label": DataCase(
        ["The val file has label values", "'urgent' (1 rows)", "set multiclass_categories/num_classes to match"],
        frames=_set("val", "label", {2: "urgent"}),
        hparams=MULTICLASS,
    ),
    "one class in train": DataCase(
        ["has only one class (1)", "add rows of another class"],
        frames=_fill("label", 1, "train"),
    ),
    # --- values
    "text in a numeric column": DataCase(
        [
            "Column 'count' in the test file must be numeric (it is in tab_field_list)",
            "'twelve' at row(s) 15",
            "clean them",
        ],
        frames=_set("test", "count", {14: "twelve"}),
    ),
    "text in a column of upstream codes": DataCase(
        [
            "Column 'region' in the train file",
            "not in categorical_features_to_encode",
            "'north'",
            "add it to categorical_features_to_encode",
        ],
        hparams={"categorical_features_to_encode": []},
    ),
    "infinity in a csv": DataCase(
        [
            "Column 'score' in the train file has 2 infinite value(s) (inf, -inf) at row(s) 4, 9",
            "replace them with finite numbers",
        ],
        frames=_set("train", "score", {3: "inf", 8: "-inf"}),
    ),
    "infinity in a parquet float column": DataCase(
        ["Column 'count' in the val file has 1 infinite value(s) (-inf) at row(s) 2"],
        frames=_set("val", "count", {1: -np.inf}),
        fmt="parquet",
    ),
    "lists in a numeric parquet column": DataCase(
        ["Column 'score' in the val file must hold one number per row", "holds lists or structs", "flatten it"],
        frames=_list_column,
        fmt="parquet",
    ),
    "numeric column without values": DataCase(
        ["Numeric column(s) ['count'] have no values in the train file"],
        frames=_fill("count", np.nan, "train"),
    ),
    "text column without any text": DataCase(
        ["Text column 'review' (text_name) is empty in all 16 rows of the val file", "an empty column is not"],
        frames=_fill("review", np.nan, "val"),
    ),
    # --- files
    "empty file": DataCase(["train.csv is empty"], files=lambda d: (d / "train" / "train.csv").write_text("")),
    "no file": DataCase(
        ["No .csv, .tsv or .parquet file in the test folder", "set test_filename"],
        files=lambda d: (d / "test" / "test.csv").unlink(),
    ),
    "wrong extension": DataCase(
        ["No .csv, .tsv or .parquet file in the val folder", "val.txt"],
        files=lambda d: (d / "val" / "val.csv").rename(d / "val" / "val.txt"),
    ),
    "json lines instead of csv": DataCase(
        ["No .csv, .tsv or .parquet file in the train folder", "(found ['train.json'])"],
        files=_as_json_lines("train"),
    ),
    "missing channel folder": DataCase(
        ["The val data folder", "does not exist; put the val split there"],
        files=lambda d: shutil.rmtree(d / "val"),
    ),
    "configured file name not found": DataCase(
        ["train_filename is 'training.csv'", "holds only ['train.csv']", "fix the name"],
        hparams={"train_filename": "training.csv"},
    ),
    "configured file of another format": DataCase(
        ["train.xlsx is not a .csv, .tsv or .parquet file", "convert it"],
        files=lambda d: (d / "train" / "train.xlsx").write_bytes(b"PK\x03\x04"),
        hparams={"train_filename": "train.xlsx"},
    ),
    "malformed csv": DataCase(
        ["train.csv could not be read as CSV", "Write it again", "an unclosed quote"],
        files=lambda d: (d / "train" / "train.csv").write_bytes(b'uid,review\n"unterminated'),
    ),
    "corrupt parquet": DataCase(
        ["val.parquet could not be read as PARQUET", "not Parquet at all"],
        fmt="parquet",
        files=lambda d: (d / "val" / "val.parquet").write_bytes(b"PAR1 not really parquet"),
    ),
    "shard with other columns": DataCase(
        ["part-00001.csv has other columns than part-00000.csv", "it lacks ['score']", "same columns"],
        files=_shards("val", change=lambda index, part: part.drop(columns=["score"]) if index == 1 else part),
    ),
    "empty shard": DataCase(
        ["part-00002.parquet is empty"],
        fmt="parquet",
        files=_shards("train", fmt="parquet", change=lambda index, part: None if index == 2 else part),
    ),
    "channel mixing formats": DataCase(
        ["The test folder", "mixes formats (csv: test.csv; parquet: test.parquet)", "set test_filename"],
        files=lambda d: pd.read_csv(d / "test" / "test.csv").to_parquet(d / "test" / "test.parquet"),
    ),
    "tsv written with commas": DataCase(
        [
            "train.tsv reads as a single column 'uid,review,score",
            "separated by commas",
            "save it with tabs or rename it to .csv",
        ],
        fmt="tsv",
        files=_resave("train", suffix="tsv", sep=","),
    ),
    "csv written with semicolons": DataCase(
        ["test.csv reads as a single column 'uid;review", "separated by semicolons", "save it with commas."],
        files=_resave("test", sep=";"),
    ),
    "latin-1 csv": DataCase(
        ["train.csv is not UTF-8 text: line 6 holds the byte b'\\xe9'", "save it as UTF-8"],
        frames=_set("train", "review", {4: "café très belle"}),
        files=_resave("train", encoding="latin-1"),
    ),
    "utf-16 csv": DataCase(
        ["val.csv is UTF-16 text, not UTF-8", "save it as UTF-8"], files=_resave("val", encoding="utf-16")
    ),
    # --- upstream artifacts in model_artifacts_input
    "imputation artifact not json": DataCase(
        ["impute_dict.json is not valid UTF-8 JSON", "rewrite it or remove it"],
        env=PRECOMPUTED,
        files=_artifacts(**{"impute_dict.json": "{'score': 3.0}", "risk_table_map.json": TABLES}),
    ),
    "imputation value not finite": DataCase(
        ["impute_dict.json: the value for 'count' is nan; it must be a finite number"],
        env=PRECOMPUTED,
        files=_artifacts(**{"impute_dict.json": '{"score": 3.0, "count": NaN}', "risk_table_map.json": TABLES}),
    ),
    "risk table without bins": DataCase(
        ["The risk table for 'region'", "has no 'bins'", "must look like"],
        env=PRECOMPUTED,
        files=_artifacts(**{"impute_dict.json": IMPUTE, "risk_table_map.json": '{"region": {"default_bin": 0.6}}'}),
    ),
    "risk table without default_bin": DataCase(
        ["The risk table for 'region'", "has no 'default_bin'"],
        env=PRECOMPUTED,
        files=_artifacts(**{"impute_dict.json": IMPUTE, "risk_table_map.json": '{"region": {"bins": {"north": 0.9}}}'}),
    ),
    "column encoded with another risk table": DataCase(
        ["Column 'region' holds fractional numbers that are neither categories nor rates", "(e.g. [0.33"],
        env=PRECOMPUTED,
        frames=_fill("region", 0.33),
        files=_artifacts(**{"impute_dict.json": IMPUTE, "risk_table_map.json": TABLES}),
    ),
    "upstream risk table of one rate for a multiclass task": DataCase(
        [
            "After applying the upstream artifacts in",
            "risk table 'region' gives 0.9 for 'north'",
            "a task with 3 classes needs a list of 3 rates, one per class",
        ],
        hparams=MULTICLASS,
        env={"USE_PRECOMPUTED_RISK_TABLES": "true"},
        files=_artifacts(**{"risk_table_map.json": TABLES}),
    ),
    "feature selection of unknown columns only": DataCase(
        ["selected_features.json selects none of the tabular fields", "select at least one of them"],
        files=_artifacts(**{"selected_features.json": '["Score", "Count"]'}),
    ),
    "feature selection in another format": DataCase(
        ["selected_features.json must hold a JSON list of column names"],
        files=_artifacts(**{"selected_features.json": '{"features": ["score"]}'}),
    ),
}


@pytest.mark.parametrize("case", DATA_CASES.values(), ids=DATA_CASES.keys())
def test_bad_data_stops_before_tokenization(tmp_path, tiny_bert, run_main, case):
    frames = _frames(multiclass="multiclass_categories" in case.hparams)
    if case.frames:
        case.frames(frames)
    base = write_job(tmp_path, hyperparameters(tiny_bert, **case.hparams), fmt=case.fmt, frames=frames)
    if case.files:
        case.files(base / "input" / "data")
    assert_rejected(base, run_main(base, case.env), case.fragments)


def _validate(frames, **hparams):
    config = validate_config(hyperparameters("/no-tokenizer-needed", **hparams))
    validate_splits(config, frames, dict.fromkeys(frames, "file"))


def test_repeated_ids_are_a_warning_not_an_error(caplog):
    frames = _frames()
    frames["val"].loc[[3, 5, 9], "uid"] = "id-1-00003"
    with caplog.at_level(logging.WARNING):
        _validate(frames)
    assert "The val file has 3 rows whose uid is not unique (e.g. 'id-1-00003')" in caplog.text
    assert "join predictions back by row order" in caplog.text
    assert "train file" not in caplog.text


def test_some_empty_text_is_fine_and_whitespace_counts_as_empty():
    frames = _frames()
    frames["train"].loc[: len(frames["train"]) - 2, "review"] = np.nan
    _validate(frames)  # one row of text left: fine
    frames["train"]["review"] = frames["train"]["review"].fillna(" \n ").astype(str).str.replace(r"\S", " ", regex=True)
    with pytest.raises(
        DataError, match="Text column 'review' \\(text_name\\) is empty in all 40 rows of the train file"
    ):
        _validate(frames)


@pytest.mark.parametrize("block", [1, 2, 3, 7, 1 << 20])
def test_the_first_byte_that_is_not_utf8_is_found_across_read_blocks(tmp_path, block):
    path = tmp_path / "split.csv"
    path.write_bytes(b"a,b\n" + "é,😀\n".encode() * 3 + b"x,\xe9t\xc3\n")
    assert _first_invalid_utf8(path, block) == (5, b"\xe9")
    path.write_bytes(b"a\nb\n" + "é".encode()[:1])  # cut inside the last character
    assert _first_invalid_utf8(path, block) == (3, b"\xc3")
