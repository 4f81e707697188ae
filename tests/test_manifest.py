"""model/manifest.json: enough to trace a model to its data, code, config and environment."""

from __future__ import annotations

import hashlib
import json
import subprocess
from datetime import datetime
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from export.manifest import config_sha256, training_summary
from helpers.jobs import ROOT
from hyperparams.config import Config


@pytest.fixture(scope="module")
def manifest(binary_job) -> dict:
    return json.loads((binary_job / "model" / "manifest.json").read_text())


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_inputs_name_each_split_file_with_size_hash_and_rows(binary_job, manifest):
    assert manifest["manifest_version"] == 2
    for split in ("train", "val", "test"):
        path = binary_job / "input" / "data" / split / f"{split}.csv"
        entry = manifest["inputs"][split]
        assert entry["rows"] == len(pd.read_csv(path)) == {"train": 96, "val": 32, "test": 32}[split]
        assert entry["sha256"] == sha256(path)  # one file: the split's hash is the file's
        [file] = entry["files"]
        assert file == {"path": str(path.resolve()), "bytes": len(path.read_bytes()), "sha256": sha256(path),
                        "rows": entry["rows"]}


def test_no_model_artifacts_input_was_read(manifest):
    assert manifest["model_artifacts_input"] == {}  # see test_precomputed for a job that reads them


def test_config_is_the_resolved_one_with_a_canonical_hash(binary_job, manifest):
    resolved = json.loads((binary_job / "model" / "hyperparameters.json").read_text())
    assert manifest["config"] == resolved
    assert manifest["config"]["batch_size"] == 16 and manifest["config"]["seed"] == 42  # given and defaulted
    canonical = json.dumps(resolved, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert manifest["config_sha256"] == hashlib.sha256(canonical).hexdigest()
    reordered = dict(reversed(list(resolved.items())))
    assert config_sha256(reordered) == manifest["config_sha256"]
    assert config_sha256({**resolved, "lr": resolved["lr"] * 2}) != manifest["config_sha256"]


def test_model_class_and_parameter_count_are_those_of_the_saved_model(binary_job, manifest):
    from models.backbone import Backbone
    from models.registry import build_model

    artifacts = torch.load(binary_job / "model" / "model_artifacts.pth", weights_only=True)
    model = build_model(Config.model_validate(artifacts["config"]), Backbone.from_dict(artifacts["backbone_config"]))
    state = torch.load(binary_job / "model" / "model.pth", weights_only=True)
    buffers = {name for name, _ in model.named_buffers()}
    assert manifest["model"]["parameters"] == sum(t.numel() for name, t in state.items() if name not in buffers)
    assert manifest["model"]["model_class"] == "multimodal_bert"
    assert manifest["model"]["python_class"] == "models.classifier.Classifier"
    assert 0 < manifest["model"]["trainable_parameters"] <= manifest["model"]["parameters"]


def test_library_versions_and_git_commit(manifest):
    import onnxruntime
    import sklearn
    import transformers

    libraries = manifest["environment"]["libraries"]
    assert libraries["torch"] == torch.__version__
    assert libraries["transformers"] == transformers.__version__
    assert libraries["onnxruntime"] == onnxruntime.__version__
    assert libraries["scikit-learn"] == sklearn.__version__
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    if head.returncode == 0:
        assert manifest["code"]["git_commit"]["commit"] == head.stdout.strip()
        assert isinstance(manifest["code"]["git_commit"]["dirty"], bool)
    else:
        assert manifest["code"]["git_commit"] is None


def test_timing_training_metrics_and_onnx_parity(binary_job, manifest):
    started = datetime.fromisoformat(manifest["started_at"])
    ended = datetime.fromisoformat(manifest["ended_at"])
    assert started.tzinfo is not None and started < ended
    assert manifest["duration_seconds"] == pytest.approx((ended - started).total_seconds(), abs=1e-3)
    written = (binary_job / "model" / "manifest.json").stat().st_mtime
    assert 0 <= written - ended.timestamp() < 60  # the end is stamped just before the manifest is written

    training = manifest["training"]
    assert training["epochs_completed"] == 2 and training["global_step"] == 12  # 96 rows / batch 16, two epochs
    best = training["best"]
    assert (binary_job / "checkpoints" / f"epoch={best['epoch']}-step={best['step']}.ckpt").is_file()
    assert best["checkpoint"].endswith(f"epoch={best['epoch']}-step={best['step']}.ckpt")
    assert training["monitor"] == "val/loss" and best["score"] > 0
    assert training["exported_weights"] == {"source": "last step", "step": 12, "reason": "load_ckpt is false"}

    assert manifest["metrics"] == json.loads((binary_job / "output" / "data" / "metrics.json").read_text())
    parity = manifest["onnx_parity"]
    assert parity["passed"] is True and 0 <= parity["max_abs_diff"] <= parity["tolerance"] == 1e-4


def test_artifacts_list_every_other_model_file_with_its_hash(binary_job, manifest):
    model_dir = binary_job / "model"
    files = sorted(p.name for p in model_dir.iterdir() if p.name != "manifest.json")
    assert sorted(manifest["artifacts"]) == files
    for name in ("model.onnx", "model.pth", "hyperparameters.json"):
        assert manifest["artifacts"][name]["sha256"] == sha256(model_dir / name)
        assert manifest["artifacts"][name]["bytes"] == (model_dir / name).stat().st_size


def stub_trainer(best_path: str, folder: str = "/opt/ml/checkpoints") -> SimpleNamespace:
    """What training_summary reads of a Trainer after fit."""
    checkpoint = SimpleNamespace(best_model_path=best_path, best_model_score=None, dirpath=folder)
    return SimpleNamespace(checkpoint_callback=checkpoint, current_epoch=3, global_step=30, precision="32-true",
                           accelerator=object(), num_devices=1, num_nodes=1)


BEST = "/opt/ml/checkpoints/epoch=1-step=20.ckpt"
NO_BEST = "load_ckpt is true, but no best checkpoint was saved"


@pytest.mark.parametrize(
    "load_ckpt, best_path, expected",
    [
        (True, BEST, {"source": "best checkpoint", "checkpoint": BEST, "epoch": 1, "step": 20}),
        (True, "", {"source": "last step", "step": 30, "reason": NO_BEST}),
        (False, BEST, {"source": "last step", "step": 30, "reason": "load_ckpt is false"}),
    ],
)
def test_exported_weights_are_those_trained_model_chose(load_ckpt, best_path, expected):
    config = Config(id_name="uid", text_name="review", label_name="label", full_field_list=["uid", "review", "label"],
                    model_class="bert", load_ckpt=load_ckpt)
    assert training_summary(stub_trainer(best_path), config)["exported_weights"] == expected


def test_the_exported_best_checkpoint_is_the_one_in_this_runs_folder():
    """A resumed checkpoint records where the folder was when it was written; the export reads this run's."""
    config = Config(id_name="uid", text_name="review", label_name="label", full_field_list=["uid", "review", "label"],
                    model_class="bert", load_ckpt=True)
    moved = stub_trainer("/mnt/old-job/checkpoints/epoch=1-step=20.ckpt", folder="/opt/ml/checkpoints")
    assert training_summary(moved, config)["exported_weights"]["checkpoint"] == BEST
