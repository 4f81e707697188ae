"""Out-of-fold risk encoding of the training rows: no training row's rate holds its own label, while
val, test and the saved risk_table_map keep the tables fitted on every training row."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from helpers.data import NEGATIVE, NEUTRAL, POSITIVE, hyperparameters, make_rows, write_job
from hyperparams.loading import validate_config
from processing.risk_tables import RiskTableEncoder, fold_split
from processing.tabular import TabularEncoders

SEED = 7


def id_column_frame(rows: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """An id-like column (one value per row) beside a real category, and a 30% positive label."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(rows) < 0.3).astype(np.int64)
    frame = pd.DataFrame({"product_id": [f"sku-{seed}-{i}" for i in range(rows)], "c": rng.choice(list("abcd"), rows)})
    return frame, labels


def test_an_id_like_column_carries_no_label_information_into_training():
    """In sample, an id's rate is its row's label (AUROC 1 on the training rows); out of fold every
    id is unseen in the other folds, so each row gets its fold's prior: nothing to learn from."""
    frame, labels = id_column_frame(2000)
    in_sample = RiskTableEncoder(["product_id"], 2, folds=1).fit_transform(frame, labels)[:, 0]
    out_of_fold = RiskTableEncoder(["product_id"], 2, folds=5, seed=SEED).fit_transform(frame, labels)[:, 0]
    assert roc_auc_score(labels, in_sample) == 1.0
    np.testing.assert_array_equal(in_sample, labels)
    assert abs(roc_auc_score(labels, out_of_fold) - 0.5) < 0.05
    assert len(np.unique(out_of_fold)) <= 5  # one prior per fold
    np.testing.assert_allclose(out_of_fold, labels.mean(), atol=0.01)


def test_out_of_fold_rates_equal_a_computation_by_hand():
    """Each row's rate: the smoothed mean label of its category among the rows of the other folds,
    the other folds' prior when the category is rarer there than count_threshold or absent."""
    frame = pd.DataFrame({"c": list("xxxxyyyyzzxyxyzz"), "d": list("pqpqpqpqpqpqpqpq")})
    labels = np.array([1, 1, 0, 1, 0, 0, 1, 0, 1, 1, 0, 0, 1, 1, 0, 1])
    smooth, threshold, folds = 0.25, 2, 3
    encoder = RiskTableEncoder(["c", "d"], 2, smooth_factor=smooth, count_threshold=threshold, folds=folds, seed=SEED)
    encoded = encoder.fit_transform(frame, labels)

    expected = np.zeros((len(frame), 2))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=SEED)
    for rest, held_out in splitter.split(np.zeros(len(labels)), labels):
        prior = labels[rest].mean()
        pseudo = smooth * len(rest)
        for column, field in enumerate(("c", "d")):
            for row in held_out:
                same = [r for r in rest if frame[field][r] == frame[field][row]]
                if len(same) >= threshold:
                    expected[row, column] = (labels[same].sum() + pseudo * prior) / (len(same) + pseudo)
                else:
                    expected[row, column] = prior
    np.testing.assert_allclose(encoded, expected, rtol=1e-6)


def test_multiclass_rates_are_out_of_fold_one_per_class():
    frame, _ = id_column_frame(300, seed=3)
    labels = np.random.default_rng(3).integers(0, 3, len(frame))
    encoder = RiskTableEncoder(["c"], 3, folds=4, seed=SEED)
    encoded = encoder.fit_transform(frame, labels)
    assert encoded.shape == (300, 3)
    np.testing.assert_allclose(encoded.sum(axis=1), 1.0, rtol=1e-6)  # rates of the three classes of one category
    for rest, held_out in fold_split(labels, 4, SEED):
        rows = frame.index[held_out][frame["c"].iloc[held_out] == "a"]
        others = rest[frame["c"].iloc[rest].to_numpy() == "a"]
        expected = np.bincount(labels[others], minlength=3) / len(others)
        np.testing.assert_allclose(encoded[rows], np.broadcast_to(expected, (len(rows), 3)), rtol=1e-6)


@pytest.mark.parametrize("folds", [1, 2, 5, 10])
def test_the_saved_tables_do_not_depend_on_the_folds(folds):
    frame, labels = id_column_frame(500)
    reference = RiskTableEncoder(["product_id", "c"], 2, smooth_factor=0.1, count_threshold=3).fit(frame, labels)
    encoder = RiskTableEncoder(["product_id", "c"], 2, smooth_factor=0.1, count_threshold=3, folds=folds, seed=SEED)
    encoder.fit_transform(frame, labels)
    assert encoder.tables_ == reference.tables_
    other = pd.DataFrame({"product_id": ["sku-0-1", "new"], "c": ["a", "b"]})
    np.testing.assert_array_equal(encoder.transform(other), reference.transform(other))


def test_the_fold_split_is_stratified_and_decided_by_the_seed_alone():
    labels = np.random.default_rng(0).integers(0, 2, 1000)
    np.random.seed(123)  # a global random state must not matter
    first = fold_split(labels, 5, SEED)
    np.random.seed(456)
    again = fold_split(labels, 5, SEED)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(first, again))
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(first, fold_split(labels, 5, SEED + 1)))
    assert sorted(np.concatenate([held_out for _, held_out in first]).tolist()) == list(range(1000))
    for _, held_out in first:
        assert abs(labels[held_out].mean() - labels.mean()) < 0.01


def test_too_few_rows_for_the_folds_fall_back_to_fewer_folds_or_in_sample():
    assert len(fold_split(np.array([0, 1, 1]), 5, SEED)) == 2
    assert fold_split(np.array([0, 1]), 5, SEED) == []
    frame = pd.DataFrame({"c": ["x", "y"]})
    encoded = RiskTableEncoder(["c"], 2, folds=5).fit_transform(frame, np.array([0, 1]))
    np.testing.assert_array_equal(encoded[:, 0], [0.0, 1.0])


def test_the_job_encodes_training_rows_out_of_fold_and_says_so(tiny_bert, caplog):
    config = validate_config(hyperparameters(tiny_bert))
    frame = make_rows(200, seed=1)
    labels = frame["label"].to_numpy()
    with caplog.at_level(logging.INFO):
        encoders, train_features = TabularEncoders.fit_transform(config, frame, labels)
    assert "the 200 training rows are encoded out of fold (5 stratified folds, seed 42)" in caplog.text
    fitted = TabularEncoders.fit(config, frame, labels)
    assert encoders.risk_tables.tables_ == fitted.risk_tables.tables_
    in_sample = fitted.transform(config, frame, "train")
    np.testing.assert_array_equal(train_features[:, :2], in_sample[:, :2])  # numeric fields as before
    assert not np.allclose(train_features[:, 2], in_sample[:, 2])  # region's rates out of fold

    in_sample_config = validate_config(hyperparameters(tiny_bert, risk_table_folds=1))
    _, features = TabularEncoders.fit_transform(in_sample_config, frame, labels)
    np.testing.assert_array_equal(features, in_sample)


def test_given_risk_tables_are_used_as_they_are_and_the_log_says_why(tiny_bert, caplog):
    tables = {"region": {"bins": {"north": 0.9, "south": 0.55, "east": 0.2, "west": 0.1}, "default_bin": 0.6}}
    config = validate_config(hyperparameters(tiny_bert, risk_tables=tables))
    frame = make_rows(50, seed=1)
    with caplog.at_level(logging.INFO):
        encoders, features = TabularEncoders.fit_transform(config, frame, frame["label"].to_numpy())
    np.testing.assert_array_equal(features, encoders.transform(config, frame, "train"))
    assert "Risk tables of ['region'] are given" in caplog.text
    assert "so the training rows get in-sample rates" in caplog.text


def weak_signal_rows(rows: int, seed: int) -> pd.DataFrame:
    """Rows whose label shows weakly in each field (a sentiment word in most reviews, right 85% of the
    time; two noisy numbers; a region), and a product id that is new in every row, as in real data."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(rows) < 0.4).astype(int)
    texts = []
    for label in labels:
        words = list(rng.choice(NEUTRAL, size=rng.integers(4, 10)))
        if rng.random() < 0.8:
            words.append(rng.choice(POSITIVE if (label == 1) == (rng.random() < 0.85) else NEGATIVE))
        texts.append(" ".join(words))
    regions = ["north", "south", "east", "west"]
    return pd.DataFrame({
        "uid": [f"{seed}-{i}" for i in range(rows)],
        "review": texts,
        "score": (0.4 * labels + rng.normal(0, 1, rows)).round(3),
        "count": (0.4 * labels + rng.normal(0, 1, rows)).round(3),
        "region": [rng.choice(regions, p=[0.4, 0.3, 0.2, 0.1] if y else [0.1, 0.2, 0.3, 0.4]) for y in labels],
        "product_id": [f"p{seed}-{i:06d}" for i in range(rows)],
        "label": labels,
    })


def test_with_an_id_column_the_model_is_as_good_as_without_it(tmp_path, tiny_bert, run_main):
    """End to end: with a product id in cat_field_list and the default folds, test AUROC is that of the
    same job without the column. In sample (risk_table_folds=1) the model fits the training labels
    through the id instead (training loss near 0) and scores worse on test, where every id is new."""
    frames = {split: weak_signal_rows(n, seed) for seed, (split, n) in enumerate((("train", 400), ("val", 80),
                                                                                   ("test", 800)))}
    with_id = {
        "full_field_list": ["uid", "review", "score", "count", "region", "product_id", "label"],
        "cat_field_list": ["region", "product_id"],
    }
    settings = {"max_epochs": 8, "lr": 2e-3, "hidden_common_dim": 64, "dropout_keep": 1.0, "warmup_steps": 10,
                "batch_size": 32, "early_stop_patience": 100}
    auroc, loss = {}, {}
    for name, fields in (("without id", {}), ("with id", with_id), ("in sample", {**with_id, "risk_table_folds": 1})):
        base = write_job(tmp_path / name.replace(" ", "_"), hyperparameters(tiny_bert, **settings, **fields),
                         frames=frames)
        assert run_main(base) == 0, (base / "output" / "failure").read_text()
        auroc[name] = json.loads((base / "output" / "data" / "metrics.json").read_text())["test"]["auroc"]
        events = EventAccumulator(str(base / "output" / "data" / "tensorboard_train"))
        events.Reload()
        loss[name] = events.Scalars("train/loss_epoch")[-1].value
    print(f"test AUROC {auroc}, last training loss {loss}")
    assert auroc["with id"] == pytest.approx(auroc["without id"], abs=0.04)
    assert loss["with id"] > 0.2 and loss["in sample"] < 0.05
    assert auroc["in sample"] < auroc["with id"] - 0.03
