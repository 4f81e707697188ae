"""What write_evaluation leaves in output/data, read back with the standard tool for each file:
json, torch.load(weights_only=True), pandas/pyarrow, matplotlib for PNGs and TensorBoard's own
event reader."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn import metrics as skm
from sklearn.preprocessing import label_binarize
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from evaluation.plots import confusion_figure, pr_figure, roc_figure
from evaluation.report import SplitResult, metric_lines, write_evaluation, write_predictions
from hyperparams.config import Config
from inference.outputs import prediction_frame
from processing.files import read_table

FIGURES = ["roc_curve", "pr_curve", "confusion_matrix", "calibration"]
METRICS = ["auroc", "average_precision", "f1_score", "precision", "recall", "accuracy"]
MULTICLASS = ["low", "medium", "high"]
BASE = {
    "id_name": "uid", "text_name": "review", "label_name": "label", "full_field_list": ["uid", "review", "label"],
    "model_class": "bert",
}


def scores(rows: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, rows)
    logits = rng.normal(size=(rows, k))
    logits[np.arange(rows), y] += 1.5
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, probs.astype(np.float32)


def split_results(folder: Path, config: Config, fmt: str) -> dict[str, SplitResult]:
    """Fixed scores for val/test input files written in ``fmt`` and read back as the job reads them."""
    k = config.num_classes
    results = {}
    for seed, split in enumerate(("val", "test")):
        y, probs = scores(40, k, seed)
        labels = np.asarray(config.class_labels, dtype=object)[y]
        frame = pd.DataFrame({"uid": [f"{i:06d}" for i in range(40)], "label": labels})
        if k == 2:
            frame["label"] = frame["label"].astype("int64")
        path = folder / f"{split}.{fmt}"
        if fmt == "parquet":
            frame.to_parquet(path, index=False)
        else:
            frame.to_csv(path, sep="\t" if fmt == "tsv" else ",", index=False)
        results[split] = SplitResult(y, probs, read_table(path, ["uid", "review"]), path)
    return results


def evaluate(folder: Path, config: Config, fmt: str) -> dict[str, SplitResult]:
    results = split_results(folder, config, fmt)
    write_evaluation(folder / "out", config, results, step=7)
    return results


@pytest.fixture(scope="module")
def binary(tmp_path_factory):
    folder = tmp_path_factory.mktemp("binary")
    return folder / "out", evaluate(folder, Config(**BASE), "csv")


@pytest.fixture(scope="module")
def multiclass(tmp_path_factory):
    folder = tmp_path_factory.mktemp("multiclass")
    config = Config(**BASE, is_binary=False, num_classes=3, multiclass_categories=MULTICLASS)
    return folder / "out", evaluate(folder, config, "parquet")


def test_binary_metrics_json_has_every_metric_the_threshold_and_the_best_f1_threshold(binary):
    out, results = binary
    assert sorted(p.name for p in out.glob("*_predictions.*")) == ["test_predictions.csv", "val_predictions.csv"]
    metrics = json.loads((out / "metrics.json").read_text())
    for split, r in results.items():
        predicted = (r.probs[:, 1] >= 0.5).astype(int)
        assert metrics[split]["threshold"] == 0.5
        assert metrics[split]["rows"] == 40
        assert metrics[split]["auroc"] == pytest.approx(skm.roc_auc_score(r.y_true, r.probs[:, 1]))
        assert metrics[split]["f1_score"] == pytest.approx(skm.f1_score(r.y_true, predicted))
        assert set(METRICS) <= set(metrics[split])
    tuned = metrics["best_f1_threshold"]
    assert tuned["found_on"] == "val"
    val = results["val"]
    precision, recall, _ = skm.precision_recall_curve(val.y_true, val.probs[:, 1])
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    assert tuned["val"]["f1_score"] == pytest.approx(f1[:-1].max())
    test = results["test"]
    at_best = (test.probs[:, 1] >= tuned["threshold"]).astype(int)
    assert tuned["test"]["f1_score"] == pytest.approx(skm.f1_score(test.y_true, at_best))
    assert tuned["test"]["recall"] == pytest.approx(skm.recall_score(test.y_true, at_best))


def test_multiclass_metrics_json_has_macro_and_per_class_values(multiclass):
    out, results = multiclass
    predictions = pd.read_parquet(out / "test_predictions.parquet")
    assert predictions["label"].tolist() == [MULTICLASS[i] for i in results["test"].y_true]
    metrics = json.loads((out / "metrics.json").read_text())
    assert "best_f1_threshold" not in metrics and "missing" not in metrics  # binary only: not applicable
    test = results["test"]
    onehot = label_binarize(test.y_true, classes=[0, 1, 2])
    assert metrics["test"]["auroc"] == pytest.approx(skm.roc_auc_score(test.y_true, test.probs, multi_class="ovr"))
    assert list(metrics["test"]["per_class"]["auroc"]) == MULTICLASS
    assert metrics["test"]["per_class"]["average_precision"]["high"] == pytest.approx(
        skm.average_precision_score(onehot[:, 2], test.probs[:, 2])
    )


def test_predict_results_pth_holds_labels_and_probabilities_per_split(binary):
    out, results = binary
    saved = torch.load(out / "predict_results.pth", weights_only=True)
    assert saved["y_true"].tolist() == results["test"].y_true.tolist()
    np.testing.assert_array_equal(saved["y_pred"].numpy(), results["test"].probs)
    for split in ("val", "test"):
        np.testing.assert_array_equal(saved[split]["y_pred"].numpy(), results[split].probs)


@pytest.mark.parametrize("kind", ["binary", "multiclass"])
def test_tensorboard_events_hold_every_metric_and_figure(kind, request):
    out, _ = request.getfixturevalue(kind)
    metrics = json.loads((out / "metrics.json").read_text())
    events = EventAccumulator(str(out / "tensorboard_eval"), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    tags = events.Tags()
    for split in ("val", "test"):
        for name in METRICS:
            (event,) = events.Scalars(f"{split}/{name}")
            assert event.value == pytest.approx(metrics[split][name], abs=1e-6)
            assert event.step == 7
    if kind == "binary":
        assert events.Scalars("best_f1_threshold/test/f1_score")[0].value == pytest.approx(
            metrics["best_f1_threshold"]["test"]["f1_score"], abs=1e-6
        )
    else:
        assert events.Scalars("test/recall/medium")[0].value == pytest.approx(
            metrics["test"]["per_class"]["recall"]["medium"], abs=1e-6
        )
    assert sorted(tags["images"]) == sorted(f"eval/{name}" for name in FIGURES)
    for name in FIGURES:
        (image,) = events.Images(f"eval/{name}")
        assert image.encoded_image_string[:4] == b"\x89PNG" and image.width > 400 and image.height > 300
        png = out / "tensorboard_eval" / f"{name}.png"
        pixels = mpimg.imread(io.BytesIO(png.read_bytes()), format="png")
        assert pixels.shape[0] > 300 and pixels.shape[1] > 400


def test_degenerate_splits_still_give_every_file(tmp_path, caplog):
    """One class in val, a single test row: metrics go missing with reasons, nothing crashes."""
    def result(y, probs):
        frame = pd.DataFrame({"uid": [f"{i:06d}" for i in range(len(y))], "label": y})
        return SplitResult(np.array(y), np.array(probs, dtype=np.float32), frame, tmp_path / "in.csv")

    results = {"val": result([0, 0, 0], [[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]]), "test": result([1], [[0.3, 0.7]])}
    metrics = write_evaluation(tmp_path / "out", Config(**BASE), results)
    assert "auroc" not in metrics["val"] and "only class 0" in metrics["val"]["missing"]["auroc"]
    assert "best_f1_threshold" not in metrics  # F1 is undefined on a val split without positives
    reason = metrics["missing"]["best_f1_threshold"]
    assert reason == "no val sample has the positive label 1, so F1 is undefined at every threshold"
    assert f"best_f1_threshold is missing: {reason}" in caplog.text
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["missing"] == metrics["missing"]
    assert metrics["test"]["accuracy"] == 1.0
    for name in FIGURES:
        assert (tmp_path / "out" / "tensorboard_eval" / f"{name}.png").stat().st_size > 1000
    assert len(pd.read_csv(tmp_path / "out" / "test_predictions.csv")) == 1


def legend_texts(fig) -> list[str]:
    return [t.get_text() for t in fig.axes[0].get_legend().get_texts()]


def test_binary_roc_and_pr_figures_show_val_and_test_with_their_auc_and_ap(binary):
    _, results = binary
    data = {split: (r.y_true, r.probs) for split, r in results.items()}
    roc, pr = roc_figure(data, [0, 1]), pr_figure(data, [0, 1])
    for split, r in results.items():
        assert f"{split} (AUC {skm.roc_auc_score(r.y_true, r.probs[:, 1]):.3f})" in legend_texts(roc)
        assert f"{split} (AP {skm.average_precision_score(r.y_true, r.probs[:, 1]):.3f})" in legend_texts(pr)
    axes = roc.axes[0]
    assert axes.get_title() and axes.get_xlabel() == "False positive rate" and "True positive rate" in axes.get_ylabel()
    assert pr.axes[0].get_xlabel() == "Recall" and pr.axes[0].get_ylabel() == "Precision"


def test_multiclass_roc_figure_has_one_vs_rest_curves_and_the_macro_average(multiclass):
    _, results = multiclass
    data = {split: (r.y_true, r.probs) for split, r in results.items()}
    legend = legend_texts(roc_figure(data, MULTICLASS))
    test = results["test"]
    for k, label in enumerate(MULTICLASS):
        assert f"test class {label} (AUC {skm.roc_auc_score(test.y_true == k, test.probs[:, k]):.3f})" in legend
    macro = skm.roc_auc_score(test.y_true, test.probs, multi_class="ovr")
    assert f"test macro (AUC {macro:.3f})" in legend
    assert len([t for t in legend if t.startswith("val ")]) == 4
    macro_ap = skm.average_precision_score(label_binarize(test.y_true, classes=[0, 1, 2]), test.probs)
    assert f"test macro (AP {macro_ap:.3f})" in legend_texts(pr_figure(data, MULTICLASS))


def test_confusion_matrix_counts_true_against_predicted_classes():
    truth = {"test": np.array([0, 0, 1, 2, 2, 2])}
    predicted = {"test": np.array([0, 1, 1, 2, 0, 2])}
    fig = confusion_figure(truth, predicted, MULTICLASS, threshold=None)
    ax = fig.axes[0]
    cells = [int(t.get_text()) for t in ax.texts]
    # rows are true classes, columns predicted
    assert cells == [1, 1, 0, 0, 1, 0, 1, 0, 2]
    assert [t.get_text() for t in ax.get_xticklabels()] == MULTICLASS
    assert "6 rows" in ax.get_title()


@pytest.mark.parametrize("fmt", ["csv", "tsv", "parquet"])
@pytest.mark.parametrize("labels", [[0, 1], MULTICLASS])
def test_prediction_files_keep_the_input_format_ids_and_label_values(tmp_path, fmt, labels):
    multiclass = len(labels) == 3
    config = Config(
        **BASE, is_binary=not multiclass, num_classes=len(labels), multiclass_categories=labels if multiclass else None
    )
    test = split_results(tmp_path, config, fmt)["test"]
    frame = prediction_frame(test.frame["uid"], test.frame["label"], test.probs, labels, "uid", "label")
    path = write_predictions(frame, tmp_path, "test", test.file)
    assert path.name == f"test_predictions.{fmt}"
    if fmt == "parquet":
        frame = pd.read_parquet(path)
    else:
        raw = path.read_text()
        assert "\n000007" + ("\t" if fmt == "tsv" else ",") in raw  # ids keep their leading zeros
        frame = pd.read_csv(path, sep="\t" if fmt == "tsv" else ",", dtype={"uid": str})
    assert list(frame.columns) == ["uid", "label", *(f"prob_{c}" for c in labels), "prediction"]
    assert frame["uid"].tolist() == [f"{i:06d}" for i in range(40)]
    assert frame["label"].tolist() == [labels[i] for i in test.y_true]
    expected_type = str if multiclass else (int, np.integer)
    for column in ("label", "prediction"):
        assert all(isinstance(v, expected_type) for v in frame[column]), column
    np.testing.assert_allclose(frame[[f"prob_{c}" for c in labels]].to_numpy(), test.probs, atol=1e-7)
    chosen = (test.probs[:, 1] >= 0.5).astype(int) if not multiclass else test.probs.argmax(axis=1)
    assert frame["prediction"].tolist() == [labels[i] for i in chosen]


def test_training_log_folder_has_loss_learning_rate_and_validation_metrics(binary_job):
    events = EventAccumulator(str(binary_job / "output" / "data" / "tensorboard_train"), size_guidance={"scalars": 0})
    events.Reload()
    tags = events.Tags()["scalars"]
    assert "train/loss_step" in tags and "train/loss_epoch" in tags and "val/loss" in tags
    assert any(t.startswith("lr-") for t in tags), tags
    for name in METRICS:
        assert f"val/{name}" in tags
    learning_rates = [e.value for t in tags if t.startswith("lr-") for e in events.Scalars(t)]
    assert len(learning_rates) >= 2 and max(learning_rates) > 0
    assert len(events.Scalars("val/loss")) == 2  # one validation per epoch, two epochs


METRIC_LINE = re.compile(r"^(val|test)/(\w+)=([0-9]+\.[0-9]{4})$")


def test_metric_lines_are_one_per_computed_metric_and_skip_missing_ones(capsys):
    metrics = {
        "val": {"auroc": 0.91234, "threshold": 0.5, "rows": 40, "missing": {"recall": "no sample has the label 1"}},
        "test": {"auroc": 0.5, "f1_score": 1.0, "threshold": 0.5, "rows": 40, "per_class": {}},
        "best_f1_threshold": {"threshold": 0.4, "found_on": "val", "test": {"f1_score": 0.8}},
    }
    lines = metric_lines(metrics)
    assert lines == ["val/auroc=0.9123", "test/auroc=0.5000", "test/f1_score=1.0000"]
    assert all(METRIC_LINE.match(line) for line in lines)
