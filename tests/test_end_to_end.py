"""The whole job as a user runs it: pytorch_training.py as a subprocess against a temporary /opt/ml."""

from __future__ import annotations

import json
import re

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
import torch

from export.staging import WORK_PREFIX
from helpers.data import hyperparameters, write_job
from helpers.jobs import MODEL_FILES, run_script

METRIC_LINE = re.compile(r"^(val|test)/(\w+)=(-?\d+\.\d+)$", re.MULTILINE)

pytestmark = pytest.mark.subprocess


def test_writes_every_model_artifact(script_job):
    base, _ = script_job
    present = {p.name for p in (base / "model").iterdir()}
    assert set(MODEL_FILES) <= present
    assert not list(base.rglob(f"{WORK_PREFIX}*")), "staging folder left behind"
    assert not (base / "output" / "failure").exists()


def test_writes_evaluation_outputs(script_job):
    base, _ = script_job
    data = base / "output" / "data"
    for name in ("predict_results.pth", "metrics.json", "val_predictions.csv", "test_predictions.csv"):
        assert (data / name).is_file(), name
    for name in ("roc_curve.png", "pr_curve.png"):
        assert (data / "tensorboard_eval" / name).read_bytes()[:4] == b"\x89PNG"
    assert list((data / "tensorboard_eval").glob("events.out.tfevents.*"))
    assert list((base / "checkpoints").glob("epoch=*-step=*.ckpt"))
    assert (base / "checkpoints" / "last.ckpt").is_file()


def test_prints_one_line_per_final_metric_matching_metrics_json(script_job):
    base, result = script_job
    lines = METRIC_LINE.findall(result.stdout)
    final = {f"{s}/{m}": float(v) for s, m, v in lines[-12:]}  # the job's last lines: the final metrics
    metrics = json.loads((base / "output" / "data" / "metrics.json").read_text())
    for split in ("val", "test"):
        for name in ("auroc", "average_precision", "f1_score", "precision", "recall", "accuracy"):
            assert final[f"{split}/{name}"] == pytest.approx(metrics[split][name], abs=1e-4)
    during = lines[:-12]  # after each of the 3 validations: val/loss and the 6 metrics, for tuning jobs
    assert len(during) == 3 * 7 and {s for s, _, _ in during} == {"val"}


def test_model_learned_the_synthetic_signal(script_job):
    base, _ = script_job
    metrics = json.loads((base / "output" / "data" / "metrics.json").read_text())
    assert metrics["test"]["auroc"] > 0.9


def test_prediction_file_has_ids_labels_and_probabilities(script_job):
    base, _ = script_job
    test_input = pd.read_csv(base / "input" / "data" / "test" / "test.csv")
    predictions = pd.read_csv(base / "output" / "data" / "test_predictions.csv")
    assert list(predictions.columns) == ["uid", "label", "prob_0", "prob_1", "prediction"]
    assert predictions["uid"].tolist() == test_input["uid"].tolist()
    assert predictions["label"].tolist() == test_input["label"].tolist()
    np.testing.assert_allclose(predictions[["prob_0", "prob_1"]].sum(axis=1), 1.0, atol=1e-5)
    results = torch.load(base / "output" / "data" / "predict_results.pth", weights_only=True)
    np.testing.assert_allclose(results["y_pred"].numpy()[:, 1], predictions["prob_1"], atol=1e-6)
    assert results["y_true"].tolist() == test_input["label"].tolist()


def test_onnx_model_matches_pytorch_rebuilt_from_artifacts(script_job):
    from transformers import AutoTokenizer

    from hyperparams.config import Config
    from models.backbone import Backbone
    from models.registry import build_model
    from processing.dataset import BatchCollator, EncodedSplit, TextKeys
    from processing.files import read_table
    from processing.numeric import NumericImputer
    from processing.risk_tables import RiskTableEncoder
    from processing.tabular import TabularEncoders
    from processing.text.pipeline import build_text_pipeline

    base, _ = script_job
    model_dir = base / "model"
    bundle = torch.load(model_dir / "model_artifacts.pth", weights_only=True)
    config = Config.model_validate(bundle["config"])
    model = build_model(config, Backbone.from_dict(bundle["backbone_config"]))
    model.load_state_dict(torch.load(model_dir / "model.pth", weights_only=True))
    model.eval()

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    frame = read_table(base / "input" / "data" / "test" / "test.csv", ["uid", "review"]).head(9)
    pipeline = build_text_pipeline(config.steps_for("text"), tokenizer, max_sen_len=config.max_sen_len,
                                   max_total_chunks=config.max_total_chunks)
    encoders = TabularEncoders(
        NumericImputer.from_artifact(json.loads((model_dir / "impute_dict.json").read_text()), config.tab_field_list),
        RiskTableEncoder.from_artifact(json.loads((model_dir / "risk_table_map.json").read_text()), ["region"], 2),
    )
    split = EncodedSplit({"text": pipeline.encode(frame["review"].tolist())}, encoders.transform(config, frame, "test"),
                         np.zeros(len(frame), dtype=np.int64))
    batch = BatchCollator(split, TextKeys())(list(range(len(frame))))
    with torch.inference_mode():
        expected = model(batch).softmax(-1).numpy()
    session = ort.InferenceSession(str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input_ids", "attention_mask", "tabular"]
    (actual,) = session.run(None, {k: batch[k].numpy() for k in ("input_ids", "attention_mask", "tabular")})
    np.testing.assert_allclose(actual, expected, atol=1e-5)
    job_predictions = pd.read_csv(base / "output" / "data" / "test_predictions.csv").head(9)
    np.testing.assert_allclose(actual[:, 1], job_predictions["prob_1"], atol=1e-5)


@pytest.mark.parametrize("fmt", ["tsv", "parquet"])
def test_other_input_formats_give_predictions_in_the_same_format(tmp_path, tiny_bert, fmt):
    base = write_job(tmp_path, hyperparameters(tiny_bert, max_epochs=1), fmt=fmt, rows=(48, 20, 20))
    result = run_script(base)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    path = base / "output" / "data" / f"test_predictions.{fmt}"
    frame = pd.read_parquet(path) if fmt == "parquet" else pd.read_csv(path, sep="\t")
    assert len(frame) == 20 and "prob_1" in frame.columns
