"""Radar's exact TreeSHAP (training.treeshap) against LightGBM's own pred_contrib.

Real LightGBM models of every kind Radar trains or could be handed: numeric and categorical
splits, missing values of every missing type (NaN seen in training, none seen so NaN reads
as 0, zero-as-missing), one output of a multiclass model, one-leaf trees; and the fallback
to pred_contrib when the tables cannot read a model or disagree with it.
"""

from __future__ import annotations

import logging

import lightgbm as lgb
import numpy as np
import pytest

from training import treeshap
from training.treeshap import Explainer, difference, edge_rows, explain, flatten, pred_contrib, with_missing

TOLERANCE = 1e-9  # far tighter than Radar's 1e-6: the tables are exact, not approximate


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Numeric columns with and without missing values, a count full of zeros and a
    category code column (with missing)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6))
    X[rng.random(n) < 0.3, 0] = np.nan  # missing in training: missing type NaN
    X[:, 2] = rng.poisson(0.7, n).astype(float)  # mostly zeros
    category = rng.integers(0, 9, n).astype(float)
    category[rng.random(n) < 0.15] = np.nan
    X[:, 4] = category
    X[:, 5] = np.round(rng.uniform(0, 10, n))  # repeated values exactly on thresholds
    logit = np.nan_to_num(X[:, 0]) + X[:, 1] - 0.6 * X[:, 2] + np.isin(category, [1, 4, 7]) + 0.2 * X[:, 5] - 1.0
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return X, y


def _train(X: np.ndarray, y: np.ndarray, rounds: int = 60, **params: object) -> lgb.Booster:
    base = {"objective": "binary", "num_leaves": 15, "max_depth": 5, "learning_rate": 0.2, "min_child_samples": 20,
            "verbose": -1, "seed": 1, "num_threads": 1, "deterministic": True, "cat_smooth": 1, "min_data_per_group": 5}
    data = lgb.Dataset(X, y, categorical_feature=[4], free_raw_data=False)
    return lgb.train({**base, **params}, data, num_boost_round=rounds)


def _test_rows(X: np.ndarray, trees: treeshap.FlatTrees) -> np.ndarray:
    """Ordinary rows, the same rows with values removed (NaN where training never had one),
    an unseen category, and rows on every split's edges."""
    odd = X[:50].copy()
    odd[:10, 4] = 42.0
    odd[10:20, 1] = np.nan
    return np.vstack([X, with_missing(X[:300]), odd, edge_rows(trees, 300)])


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return _data(3000, seed=3)


def _assert_equal_to_pred_contrib(booster: lgb.Booster, rows: np.ndarray, class_index: int = 0) -> None:
    trees = flatten(booster, class_index)
    reference = pred_contrib(booster, rows, class_index, num_threads=1)
    for parallel in (False, True):
        ours = explain(trees, rows, parallel=parallel)
        assert ours.shape == reference.shape
        assert difference(ours, reference) < TOLERANCE, parallel
    # The contributions add up to the raw score, as pred_contrib's do.
    raw = booster.predict(rows, raw_score=True)
    raw = raw[:, class_index] if raw.ndim == 2 else raw
    np.testing.assert_allclose(explain(trees, rows).sum(axis=1), raw, atol=1e-9)


def test_numeric_categorical_and_missing_values_equal_pred_contrib(data: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = data
    booster = _train(X, y)
    trees = flatten(booster)
    assert (trees.node_kind == treeshap.CATEGORICAL).any(), "the model should split on the category"
    assert (~trees.node_nan_left & (trees.node_kind == treeshap.NUMERIC)).any()
    _assert_equal_to_pred_contrib(booster, _test_rows(X, trees))


def test_zero_as_missing_equals_pred_contrib(data: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = data
    booster = _train(X, y, zero_as_missing=True)
    trees = flatten(booster)
    assert trees.node_zero_default.any(), "zero_as_missing gives splits of missing type Zero"
    _assert_equal_to_pred_contrib(booster, _test_rows(X, trees))


def test_one_output_of_a_multiclass_model_equals_pred_contrib(data: tuple[np.ndarray, np.ndarray]) -> None:
    X, _ = data
    rng = np.random.default_rng(5)
    y3 = np.where(np.nan_to_num(X[:, 0]) > 0.5, 1, np.where(X[:, 2] > 1, 2, 0))
    y3[rng.random(len(y3)) < 0.1] = 0
    booster = _train(X, y3, rounds=30, objective="multiclass", num_class=3)
    for class_index in range(3):
        _assert_equal_to_pred_contrib(booster, _test_rows(X, flatten(booster, class_index)), class_index)


def test_one_leaf_trees_only_move_the_expected_value() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = (rng.random(200) < 0.3).astype(int)
    # Too few rows per leaf to split: every tree is one leaf.
    booster = _train(X, y, rounds=5, min_child_samples=500)
    trees = flatten(booster)
    assert trees.n_trees >= 1 and len(trees.node_feature) == 0
    ours = explain(trees, X)
    np.testing.assert_allclose(ours, pred_contrib(booster, X), atol=1e-12)


def test_the_explainer_checks_itself_and_uses_the_tables(data: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = data
    booster = _train(X, y)
    explainer = Explainer(booster)
    assert explainer.method == "tables" and explainer.reason is None
    rows = _test_rows(X, explainer.trees)  # type: ignore[arg-type]
    ours = explainer.contributions(rows, num_threads=1)
    assert explainer.method == "tables", explainer.reason
    assert difference(ours, pred_contrib(booster, rows)) < TOLERANCE
    assert explainer.max_difference < TOLERANCE
    assert treeshap.explainer(booster) is treeshap.explainer(booster)  # made once per booster


def test_a_model_the_tables_cannot_read_falls_back_to_pred_contrib(
    data: tuple[np.ndarray, np.ndarray], caplog: pytest.LogCaptureFixture
) -> None:
    X, y = data
    # Random-forest mode averages its trees: the tables add trees up, so they refuse it.
    booster = _train(X, y, rounds=10, boosting="rf", bagging_fraction=0.7, bagging_freq=1)
    with caplog.at_level(logging.WARNING, logger="training.treeshap"):
        explainer = Explainer(booster)
    assert explainer.method == "pred_contrib" and "averaged" in (explainer.reason or "")
    assert "pred_contrib" in caplog.text
    np.testing.assert_array_equal(explainer.contributions(X[:100]), pred_contrib(booster, X[:100]))


def test_tables_that_disagree_on_the_edges_fall_back(
    data: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    X, y = data
    booster = _train(X, y, rounds=20)
    true_table = treeshap.leaf_table
    # Tables off by a millionth and a half: beyond the 1e-6 tolerance, as a misread rule would be.
    monkeypatch.setattr(treeshap, "leaf_table", lambda value, shares: true_table(value, shares) * (1 + 1.5e-6))
    explainer = Explainer(booster, tolerance=1e-6)
    assert explainer.method == "pred_contrib"
    assert "rows on the splits' edges" in (explainer.reason or "")
    assert 1e-6 < explainer.max_difference < 1e-5
    np.testing.assert_array_equal(explainer.contributions(X[:100]), pred_contrib(booster, X[:100]))


def test_tables_that_disagree_on_the_first_real_rows_fall_back(data: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = data
    booster = _train(X, y, rounds=20)
    explainer = Explainer(booster)
    assert explainer.method == "tables"
    # A misread rule that only real rows reach: one leaf's table is wrong.
    assert explainer.trees is not None
    explainer.trees.table[:8] += 0.5
    got = explainer.contributions(X[:500])
    assert explainer.method == "pred_contrib" and "first rows explained" in (explainer.reason or "")
    np.testing.assert_array_equal(got, pred_contrib(booster, X[:500]))
    # Decided for good: later batches are not checked again, and stay on pred_contrib.
    np.testing.assert_array_equal(explainer.contributions(X[500:600]), pred_contrib(booster, X[500:600]))


def test_pred_contrib_when_asked_for(data: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = data
    booster = _train(X, y, rounds=5)
    explainer = Explainer(booster, method="pred_contrib")
    assert explainer.method == "pred_contrib" and explainer.trees is None
    np.testing.assert_array_equal(explainer.contributions(X[:10]), pred_contrib(booster, X[:10]))


def test_a_matrix_of_the_wrong_width_is_refused(data: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = data
    trees = flatten(_train(X, y, rounds=3))
    with pytest.raises(ValueError, match="6 columns"):
        explain(trees, X[:, :5])


def test_a_split_that_only_sends_missing_values_apart_equals_pred_contrib() -> None:
    # A 0/1 column whose signal is being missing: LightGBM splits at an infinite threshold,
    # which its JSON dump writes as 1e300.
    rng = np.random.default_rng(0)
    flag = rng.integers(0, 2, 4000).astype(float)
    gone = rng.random(4000) < 0.4
    flag[gone] = np.nan
    X = np.column_stack([flag, rng.normal(size=4000)])
    y = (rng.random(4000) < np.where(gone, 0.8, 0.2)).astype(int)
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_leaves": 4, "num_threads": 1},
                        lgb.Dataset(X, y), 5)
    trees = flatten(booster)
    assert np.isinf(trees.node_threshold[trees.node_feature == 0]).all()
    rows = np.vstack([X[:200], edge_rows(trees, 200), [[1e301, 0.0], [np.finfo(float).max, 0.0]]])
    assert difference(explain(trees, rows), pred_contrib(booster, rows)) < TOLERANCE
