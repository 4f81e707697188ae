"""Warm start: the pretrained_model channel holds an earlier job's model (model.tar.gz or its model/
files), whose weights the new job starts from; preprocessing is fitted on the new data, the manifest
records the parent, and a parent of another architecture is refused before any slow work."""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
from pathlib import Path

import pytest
import torch

import job.steps
from contracts.errors import ConfigError, DataError
from contracts.paths import resolve_paths
from helpers.data import hyperparameters, write_job
from helpers.jobs import assert_failed_cleanly, failure_reason
from hyperparams.loading import validate_config
from models.warm_start import ParentModel


def child_job(tmp_path, parent_job, tiny_bert, **overrides):
    """A job on the parent's data files, whose pretrained_model channel is returned (empty)."""
    base = write_job(tmp_path / "child", hyperparameters(tiny_bert, max_epochs=1, **overrides))
    shutil.copytree(parent_job / "input" / "data", base / "input" / "data", dirs_exist_ok=True)
    channel = base / "input" / "data" / "pretrained_model"
    channel.mkdir()
    return base, channel


def pack(model_dir, archive):
    """model/ packed as SageMaker packs it into model.tar.gz: the files at the top of the archive."""
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(model_dir.iterdir()):
            tar.add(path, arcname=path.name)
    return archive


@pytest.fixture
def starting_weights(monkeypatch):
    """The weights of the model the build step returns, before training."""
    captured = {}
    original = job.steps.build

    def build(*args, **kwargs):
        built = original(*args, **kwargs)
        captured.update({k: v.clone() for k, v in built.model.state_dict().items()})
        return built

    monkeypatch.setattr(job.steps, "build", build)
    return captured


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("form", ["model folder", "model.tar.gz"])
def test_a_job_starts_from_the_parent_models_weights(tmp_path, tiny_bert, binary_job, run_main, starting_weights,
                                                      form):
    parent_weights = binary_job / "model" / "model.pth"
    base, channel = child_job(tmp_path, binary_job, tiny_bert)
    if form == "model folder":
        shutil.copytree(binary_job / "model", channel / "model")
        source, digest = channel / "model" / "model.pth", sha256(parent_weights)
    else:
        source = pack(binary_job / "model", channel / "model.tar.gz")
        digest = sha256(source)
    assert run_main(base) == 0, failure_reason(base)

    parent = torch.load(parent_weights, weights_only=True)
    assert starting_weights.keys() == parent.keys()
    for name, tensor in parent.items():
        assert torch.equal(starting_weights[name], tensor), name  # the scaling too: fitted on the same rows
    manifest = json.loads((base / "model" / "manifest.json").read_text())
    assert manifest["parent_model"] == {
        "path": str(source.resolve()),
        "file": source.name,
        "bytes": source.stat().st_size,
        "sha256": digest,
        "model_class": "multimodal_bert",
    }
    assert not torch.equal(torch.load(base / "model" / "model.pth", weights_only=True)["head.4.weight"],
                           parent["head.4.weight"]), "the child trained"


def test_without_the_channel_the_manifest_names_no_parent(binary_job):
    assert json.loads((binary_job / "model" / "manifest.json").read_text())["parent_model"] is None


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"model_class": "multimodal_gate_fusion"},
         "model_class: 'multimodal_bert' there, 'multimodal_gate_fusion' here"),
        ({"hidden_common_dim": 32}, "hidden_common_dim: 16 there, 32 here"),
        ({"tab_field_list": ["score"], "full_field_list": ["uid", "review", "score", "region", "label"]},
         "the tabular features: ['score', 'count', 'region__risk'] there, ['score', 'region__risk'] here"),
    ],
)
def test_a_parent_of_another_architecture_is_refused_before_preprocessing(
    tmp_path, tiny_bert, binary_job, run_main, changes, fragment
):
    base, channel = child_job(tmp_path, binary_job, tiny_bert, **changes)
    pack(binary_job / "model", channel / "model.tar.gz")
    status = run_main(base)
    assert_failed_cleanly(base, status, "The model in the pretrained_model channel", fragment,
                          "set them as in its model/hyperparameters.json, or remove the channel")
    assert not (base / "checkpoints" / "preprocessed").exists()


def test_another_tokenizer_is_named(tmp_path, tiny_bert, binary_job):
    parent = ParentModel.find(pack(binary_job / "model", tmp_path / "model.tar.gz").parent)
    config = validate_config(hyperparameters(tiny_bert))
    vocab = dict(parent.artifacts["vocab"], extra=999)
    with pytest.raises(ConfigError, match=r"the tokenizer: '.*' \(a vocabulary of \d+\) there, '.*' "
                                          r"\(a vocabulary of \d+\) here"):
        parent.check(config, vocab, parent.artifacts["backbone_config"])


def test_the_channel_must_hold_one_model(tmp_path, binary_job):
    assert ParentModel.find(tmp_path / "absent") is None
    (tmp_path / "empty").mkdir()
    assert ParentModel.find(tmp_path / "empty") is None
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("a model is coming")
    with pytest.raises(DataError, match=r"holds \['notes.txt'\], not one model: give it a previous job's model.tar.gz"):
        ParentModel.find(junk)
    (junk / "bad.tar.gz").write_bytes(b"not an archive")
    with pytest.raises(DataError, match=r"bad.tar.gz cannot be read as a tar archive"):
        ParentModel.find(junk)
    weights_only = tmp_path / "weights_only"
    weights_only.mkdir()
    shutil.copy(binary_job / "model" / "model.pth", weights_only)
    with pytest.raises(DataError, match=r"has model.pth but no model_artifacts.pth"):
        ParentModel.find(weights_only)


def test_weights_of_another_shape_are_named(tmp_path, binary_job):
    parent = ParentModel.find(pack(binary_job / "model", tmp_path / "model.tar.gz").parent)
    model = torch.nn.Sequential(torch.nn.Linear(2, 3))
    with pytest.raises(ConfigError, match=r"do not fit the model this job builds \(missing \['0.weight', '0.bias'\]"):
        parent.initialise(model)


def test_the_channel_is_found_where_sagemaker_puts_it():
    assert resolve_paths({"SAGEMAKER_BASE_DIR": "/b"}).pretrained_model_dir == Path("/b/input/data/pretrained_model")
    moved = resolve_paths({"SAGEMAKER_BASE_DIR": "/b", "SM_CHANNEL_PRETRAINED_MODEL": "/m"})
    assert moved.pretrained_model_dir == Path("/m")
