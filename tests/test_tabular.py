"""Imputation, risk tables and labels: fitted on train only, applied the same way everywhere."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.impute import SimpleImputer

from contracts.errors import DataError
from processing.labels import LabelEncoder
from processing.numeric import NumericImputer, parse_numeric
from processing.risk_tables import MISSING_CATEGORY, RiskTableEncoder


def test_imputer_matches_scikit_learn_mean_strategy():
    train = pd.DataFrame({"a": [1.0, np.nan, 3.0, 10.0], "b": [np.nan, 2.0, 2.0, 5.0]})
    other = pd.DataFrame({"a": [np.nan, 7.0], "b": [np.nan, np.nan]})
    ours = NumericImputer(["a", "b"]).fit(train)
    reference = SimpleImputer(strategy="mean").fit(train)
    np.testing.assert_allclose(ours.transform(other), reference.transform(other))
    assert ours.statistics_ == pytest.approx({"a": 14 / 3, "b": 3.0})


def test_imputer_round_trips_through_its_artifact():
    fitted = NumericImputer(["a"]).fit(pd.DataFrame({"a": [1.0, 2.0]}))
    again = NumericImputer.from_artifact(fitted.to_artifact(), ["a"])
    np.testing.assert_array_equal(again.transform(pd.DataFrame({"a": [np.nan]})), [[1.5]])


def test_unfitted_encoders_refuse_to_transform():
    with pytest.raises(NotFittedError):
        NumericImputer(["a"]).transform(pd.DataFrame({"a": [1.0]}))
    with pytest.raises(NotFittedError):
        RiskTableEncoder(["c"], 2).transform(pd.DataFrame({"c": ["x"]}))


def test_all_missing_numeric_column_is_a_data_error():
    with pytest.raises(DataError, match=r"\['a'\] have no values in the train file"):
        NumericImputer(["a"]).fit(pd.DataFrame({"a": [np.nan, np.nan]}))


def test_non_numeric_values_are_shown():
    with pytest.raises(DataError, match=r"Column 'a' in the val file must be numeric .* 'n/a', 'abc'"):
        parse_numeric(pd.DataFrame({"a": ["1", "n/a", "abc", "2"]}), ["a"], "val")


def test_infinite_values_are_refused_with_their_rows():
    frame = pd.DataFrame({"a": [1.0, np.inf, 2.0, -np.inf, np.nan]})
    with pytest.raises(
        DataError, match=r"Column 'a' in the train file has 2 infinite value\(s\) \(inf, -inf\) at row\(s\) 2, 4 "
    ):
        parse_numeric(frame, ["a"], "train")
    np.testing.assert_array_equal(parse_numeric(frame.iloc[[0, 2, 4]], ["a"], "train")["a"], [1.0, 2.0, np.nan])


def test_a_categorical_field_read_as_numbers_is_described_by_its_own_role():
    frame = pd.DataFrame({"a": ["1", "2"], "c": ["7", "north"]})
    with pytest.raises(
        DataError,
        match=r"'c' .* \(it is in cat_field_list but not in categorical_features_to_encode.*"
        r"add it to categorical_features_to_encode",
    ):
        parse_numeric(frame, ["a", "c"], "test", passthrough=["c"])
    with pytest.raises(DataError, match=r"'c' .* \(it is in tab_field_list\).*move the field to cat_field_list"):
        parse_numeric(frame, ["a", "c"], "test")


def test_risk_table_is_the_smoothed_positive_rate():
    frame = pd.DataFrame({"c": ["x", "x", "x", "y", "y", "z"]})
    labels = np.array([1, 1, 0, 0, 0, 1])
    encoder = RiskTableEncoder(["c"], num_classes=2, smooth_factor=0.5).fit(frame, labels)
    prior, pseudo = 0.5, 0.5 * 6
    expected_x = (2 + pseudo * prior) / (3 + pseudo)
    assert encoder.tables_["c"]["bins"]["x"] == pytest.approx(expected_x)
    assert encoder.tables_["c"]["default_bin"] == pytest.approx(prior)
    encoded = encoder.transform(pd.DataFrame({"c": ["x", "never-seen"]}))
    np.testing.assert_allclose(encoded[:, 0], [expected_x, prior])


def test_risk_table_without_smoothing_is_the_category_mean():
    frame = pd.DataFrame({"c": ["x", "x", "y", None]})
    encoder = RiskTableEncoder(["c"], 2).fit(frame, np.array([1, 0, 1, 0]))
    assert encoder.tables_["c"]["bins"] == {"x": 0.5, "y": 1.0, MISSING_CATEGORY: 0.0}


def test_rare_categories_take_the_default():
    frame = pd.DataFrame({"c": ["x", "x", "y"]})
    encoder = RiskTableEncoder(["c"], 2, count_threshold=2).fit(frame, np.array([1, 1, 0]))
    assert set(encoder.tables_["c"]["bins"]) == {"x"}
    assert encoder.transform(pd.DataFrame({"c": ["y"]}))[0, 0] == pytest.approx(2 / 3)


def test_numeric_categories_match_across_int_float_and_text():
    encoder = RiskTableEncoder(["c"], 2).fit(pd.DataFrame({"c": [3, 4]}), np.array([1, 0]))
    encoded = encoder.transform(pd.DataFrame({"c": ["3", "4"]}))
    np.testing.assert_array_equal(encoded[:, 0], [1.0, 0.0])
    encoded = encoder.transform(pd.DataFrame({"c": [3.0, np.nan]}))
    assert encoded[0, 0] == 1.0


def test_multiclass_risk_table_has_one_rate_per_class():
    frame = pd.DataFrame({"c": ["x", "x", "y", "y"]})
    encoder = RiskTableEncoder(["c"], num_classes=3).fit(frame, np.array([0, 2, 1, 1]))
    np.testing.assert_allclose(encoder.transform(pd.DataFrame({"c": ["x", "y"]})), [[0.5, 0, 0.5], [0, 1, 0]])


def test_risk_tables_accept_the_upstream_artifact_format():
    tables = {"c": {"bins": {"x": 0.9, "y": 0.1}, "default_bin": 0.4}}
    encoder = RiskTableEncoder.from_artifact(tables, ["c"], 2)
    np.testing.assert_allclose(encoder.transform(pd.DataFrame({"c": ["y", "q"]}))[:, 0], [0.1, 0.4])
    with pytest.raises(DataError, match="no entry for \\['d'\\]"):
        RiskTableEncoder.from_artifact(tables, ["d"], 2)


def test_labels_map_by_text_form_and_unknown_labels_are_listed():
    encoder = LabelEncoder([0, 1])
    np.testing.assert_array_equal(encoder.transform(pd.Series([1, 0, 1.0]), "train"), [1, 0, 1])
    np.testing.assert_array_equal(encoder.transform(pd.Series(["1", "0"]), "train"), [1, 0])
    np.testing.assert_array_equal(encoder.transform(pd.Series([True, False]), "train"), [1, 0])
    with pytest.raises(DataError, match=r"The test file has label values .* '2' \(3 rows\), missing \(1 rows\)"):
        encoder.transform(pd.Series([2, 2, 2, None, 1]), "test")


def test_string_classes_keep_configured_order():
    encoder = LabelEncoder(["neg", "neu", "pos"])
    np.testing.assert_array_equal(encoder.transform(pd.Series(["pos", "neg"]), "val"), [2, 0])
