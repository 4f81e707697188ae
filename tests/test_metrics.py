"""Final metrics against values worked out by hand and against direct scikit-learn calls on fixed inputs."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.preprocessing import label_binarize

from evaluation.metrics import best_f1_threshold, compute_metrics
from inference.outputs import predicted_classes

ALL = ["auroc", "average_precision", "f1_score", "precision", "recall", "accuracy"]

# Binary: positives score 0.35, 0.8, 0.9, 0.55; negatives 0.1, 0.4, 0.6, 0.7.
Y_BIN = np.array([0, 0, 1, 1, 0, 1, 1, 0])
P_POS = np.array([0.1, 0.4, 0.35, 0.8, 0.6, 0.9, 0.55, 0.7])
PROBS_BIN = np.column_stack([1 - P_POS, P_POS])


def test_binary_metrics_match_hand_counts_and_scikit_learn():
    report = compute_metrics(Y_BIN, PROBS_BIN, ALL, [0, 1])
    # 11 of the 16 (positive, negative) pairs are ranked correctly.
    assert report.values["auroc"] == pytest.approx(11 / 16)
    # Ranked: P P N N P N P N -> precision at each positive 1, 1, 3/5, 4/7; each adds 1/4 recall.
    assert report.values["average_precision"] == pytest.approx((1 + 1 + 3 / 5 + 4 / 7) / 4)
    # At 0.5: TP 3 (0.8, 0.9, 0.55), FP 2 (0.6, 0.7), FN 1 (0.35), TN 2.
    assert report.values["precision"] == pytest.approx(3 / 5)
    assert report.values["recall"] == pytest.approx(3 / 4)
    assert report.values["f1_score"] == pytest.approx(6 / 9)
    assert report.values["accuracy"] == pytest.approx(5 / 8)
    assert report.threshold == 0.5 and report.rows == 8 and not report.missing

    predicted = (P_POS >= 0.5).astype(int)
    assert report.values["auroc"] == pytest.approx(skm.roc_auc_score(Y_BIN, P_POS))
    assert report.values["average_precision"] == pytest.approx(skm.average_precision_score(Y_BIN, P_POS))
    assert report.values["f1_score"] == pytest.approx(skm.f1_score(Y_BIN, predicted))


def test_binary_threshold_moves_the_thresholded_metrics_only():
    report = compute_metrics(Y_BIN, PROBS_BIN, ALL, [0, 1], threshold=0.6)
    # At 0.6: predicted positive 0.6, 0.7, 0.8, 0.9 -> TP 2, FP 2, FN 2.
    assert report.values["precision"] == pytest.approx(0.5)
    assert report.values["recall"] == pytest.approx(0.5)
    assert report.values["auroc"] == pytest.approx(11 / 16)
    assert report.to_dict()["threshold"] == 0.6


def test_best_f1_threshold_is_the_f1_optimum_on_the_curve():
    # F1 at each candidate threshold: 0.9 -> 2/5, 0.8 -> 4/6, 0.7 -> 4/7, 0.6 -> 4/8, 0.55 -> 6/9,
    # 0.4 -> 6/10, 0.35 -> 8/11 (best), 0.1 -> 8/12.
    assert best_f1_threshold(Y_BIN, P_POS) == pytest.approx(0.35)
    assert best_f1_threshold(np.zeros(4, dtype=int), np.array([0.1, 0.2, 0.3, 0.4])) is None


def test_binary_positive_class_is_the_second_of_two_categories():
    labels = np.array(["neg", "pos"])
    report = compute_metrics(Y_BIN, PROBS_BIN, ALL, ["neg", "pos"])
    as_text = labels[Y_BIN]
    predicted_text = labels[(P_POS >= 0.5).astype(int)]
    assert report.values["precision"] == pytest.approx(skm.precision_score(as_text, predicted_text, pos_label="pos"))
    assert report.values["recall"] == pytest.approx(skm.recall_score(as_text, predicted_text, pos_label="pos"))
    assert report.values["auroc"] == pytest.approx(skm.roc_auc_score(as_text == "pos", P_POS))


def test_binary_metrics_that_cannot_be_computed_are_missing_with_a_reason_not_zero():
    only_negatives = compute_metrics(np.zeros(4, dtype=int), PROBS_BIN[:4], ALL, ["neg", "pos"])
    for name in ("auroc", "average_precision", "recall"):
        assert name not in only_negatives.values
    assert "only class 'neg'" in only_negatives.missing["auroc"]
    assert "positive label 'pos'" in only_negatives.missing["recall"]
    # one false positive (0.8 is class 1 at 0.5) and no true positive: precision is a real 0
    assert only_negatives.values["precision"] == 0.0

    never_positive = compute_metrics(Y_BIN, np.column_stack([np.ones(8), np.zeros(8)]), ALL, [0, 1])
    assert "precision" not in never_positive.values
    assert "no sample is predicted as the positive class" in never_positive.missing["precision"]
    assert never_positive.to_dict()["missing"]["precision"] == never_positive.missing["precision"]


Y_MC = np.array([0, 1, 2, 2, 1, 0, 2, 1, 0])
PROBS_MC = np.array(
    [
        [0.7, 0.2, 0.1],
        [0.2, 0.5, 0.3],
        [0.1, 0.3, 0.6],
        [0.3, 0.4, 0.3],
        [0.1, 0.8, 0.1],
        [0.4, 0.35, 0.25],
        [0.2, 0.2, 0.6],
        [0.5, 0.3, 0.2],
        [0.6, 0.1, 0.3],
    ]
)
CLASSES = ["low", "medium", "high"]


def test_multiclass_metrics_match_scikit_learn_and_hand_counts():
    report = compute_metrics(Y_MC, PROBS_MC, ALL, CLASSES)
    predicted = PROBS_MC.argmax(axis=1)  # 0 1 2 1 1 0 2 0 0
    assert predicted.tolist() == [0, 1, 2, 1, 1, 0, 2, 0, 0]
    # per class: low TP3 FP1 FN0, medium TP2 FP1 FN1, high TP2 FP0 FN1
    precision = [3 / 4, 2 / 3, 1.0]
    recall = [1.0, 2 / 3, 2 / 3]
    f1 = [6 / 7, 4 / 6, 4 / 5]
    assert report.values["accuracy"] == pytest.approx(7 / 9)
    assert report.values["precision"] == pytest.approx(np.mean(precision))
    assert report.values["recall"] == pytest.approx(np.mean(recall))
    assert report.values["f1_score"] == pytest.approx(np.mean(f1))
    assert list(report.per_class["f1_score"].values()) == pytest.approx(f1)
    assert list(report.per_class["precision"]) == CLASSES

    onehot = label_binarize(Y_MC, classes=[0, 1, 2])
    assert report.values["auroc"] == pytest.approx(skm.roc_auc_score(Y_MC, PROBS_MC, multi_class="ovr"))
    assert report.values["average_precision"] == pytest.approx(skm.average_precision_score(onehot, PROBS_MC))
    for k, label in enumerate(CLASSES):
        assert report.per_class["auroc"][label] == pytest.approx(skm.roc_auc_score(onehot[:, k], PROBS_MC[:, k]))
        assert report.per_class["average_precision"][label] == pytest.approx(
            skm.average_precision_score(onehot[:, k], PROBS_MC[:, k])
        )
    assert report.values["f1_score"] == pytest.approx(skm.f1_score(Y_MC, predicted, average="macro"))
    assert not report.missing and report.threshold is None


def test_multiclass_class_never_predicted_counts_as_zero_in_the_macro_and_is_missing_itself():
    probs = PROBS_MC.copy()
    probs[:, 2] = 0.0  # "high" is never the arg-max
    probs /= probs.sum(axis=1, keepdims=True)
    report = compute_metrics(Y_MC, probs, ALL, CLASSES)
    predicted = probs.argmax(axis=1)
    assert report.per_class["precision"]["high"] is None
    assert "no sample is predicted as class 'high'" in report.missing["precision/high"]
    # scikit-learn's default macro (undefined -> 0), not the mean over the defined classes only
    sklearn_default = skm.precision_score(Y_MC, predicted, average="macro", zero_division=0)
    assert report.values["precision"] == pytest.approx(sklearn_default)
    assert report.values["precision"] < np.nanmean([report.per_class["precision"][c] or np.nan for c in CLASSES])
    assert report.per_class["recall"]["high"] == 0.0


def test_multiclass_split_missing_a_class_has_no_ranking_metrics_and_leaves_it_out_of_the_macro():
    y = np.array([0, 0, 2, 2, 2])
    probs = np.array([[0.8, 0.1, 0.1], [0.3, 0.1, 0.6], [0.2, 0.2, 0.6], [0.1, 0.3, 0.6], [0.5, 0.2, 0.3]])
    report = compute_metrics(y, probs, ALL, CLASSES)
    for name in ("auroc", "average_precision"):
        assert name not in report.values
        assert "['medium']" in report.missing[name]
    # "medium" is neither a label nor a prediction: low P 1/2 R 1/2, high P 2/3 R 2/3
    assert report.values["precision"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert report.values["f1_score"] == pytest.approx(skm.f1_score(y, probs.argmax(axis=1), average="macro"))
    assert report.per_class["f1_score"]["medium"] is None
    assert "neither the labels nor the predictions" in report.missing["f1_score/medium"]
    assert report.values["accuracy"] == pytest.approx(3 / 5)


def test_predicted_classes_threshold_is_inclusive():
    probs = np.array([[0.5, 0.5], [0.51, 0.49], [0.2, 0.8]])
    assert predicted_classes(probs, 0.5).tolist() == [1, 0, 1]
    assert predicted_classes(probs, 0.9).tolist() == [0, 0, 0]
    assert predicted_classes(PROBS_MC[:3]).tolist() == [0, 1, 2]
