"""Predicting and explaining in one place (serving.explain): the outputs are the model's,
the reasons those of serving.reasons row for row, the reasons come the same whether the
checked tables or pred_contrib computed the contributions, and a model is read into tables
and checked when it is prepared, before any row is explained."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.rows import FeatureRows
from radar.config import ExplainConfig, ModelConfig
from serving.explain import predict_and_explain, prepare
from serving.reasons import explain_top_reasons, explainer_of, reasons_text
from training.baselines import ChannelRateBaseline
from training.models import ProbabilityModel
from tests.test_reasons import _bundle, _planted


@pytest.fixture(scope="module")
def planted() -> tuple[object, pd.DataFrame]:
    X, y = _planted(5000, seed=11)
    X_val, y_val = _planted(1500, seed=12)
    model = ProbabilityModel(ModelConfig(num_threads=1), seed=2).fit(X, y, X_val, y_val)
    X_test, _ = _planted(1500, seed=13)
    # Some values missing, one category never seen in training.
    X_test.loc[X_test.index[:200], "n_email_open_30d"] = np.nan
    X_test["lead_source"] = X_test["lead_source"].astype(object)
    X_test.loc[X_test.index[200:260], "lead_source"] = "podcast"
    return _bundle(model, X_test), X_test


def test_outputs_and_reasons_are_the_models_and_the_reasons_modules(planted: tuple[object, pd.DataFrame]) -> None:
    bundle, X = planted
    done = predict_and_explain(bundle, FeatureRows.from_frame(X), top_k=4)  # type: ignore[arg-type]
    np.testing.assert_array_equal(done.outputs["probability"], bundle.predict(X)["probability"].to_numpy())  # type: ignore[attr-defined]
    expected = explain_top_reasons(bundle, X, top_k=4)  # type: ignore[arg-type]
    assert done.reasons is not None
    assert done.reasons.records() == [[r.to_dict() for r in row] for row in expected]
    assert done.reasons.text().tolist() == [reasons_text(row) for row in expected]
    assert predict_and_explain(bundle, FeatureRows.from_frame(X), top_k=None).reasons is None  # type: ignore[arg-type]


def test_tables_and_pred_contrib_give_the_same_reasons(planted: tuple[object, pd.DataFrame]) -> None:
    bundle, X = planted
    fast = explain_top_reasons(bundle, X, top_k=5, config=ExplainConfig(method="tables"))  # type: ignore[arg-type]
    slow = explain_top_reasons(bundle, X, top_k=5, config=ExplainConfig(method="pred_contrib"))  # type: ignore[arg-type]
    assert explainer_of(bundle.model, ExplainConfig(method="tables")).method == "tables"  # type: ignore[union-attr,attr-defined]
    assert [[(r.feature, r.value, r.direction, r.text) for r in row] for row in fast] == \
        [[(r.feature, r.value, r.direction, r.text) for r in row] for row in slow]
    gaps = [abs(a.impact - b.impact) for ra, rb in zip(fast, slow) for a, b in zip(ra, rb)]
    assert gaps and max(gaps) < 1e-12
    assert any("came in through" in r.text for row in fast for r in row)  # categories read as categories


def test_a_model_is_read_into_tables_and_checked_when_prepared(planted: tuple[object, pd.DataFrame]) -> None:
    X, y = _planted(2000, seed=21)
    model = ProbabilityModel(ModelConfig(num_threads=1), seed=3).fit(X, y, X, y)
    bundle = _bundle(model, X)
    config = ExplainConfig()
    assert prepare(bundle, config) == "tables"
    explainer = explainer_of(model, config)
    assert explainer is not None and explainer.trees is not None and explainer.max_difference < 1e-9
    # The same explainer serves the rows later: nothing is read again.
    explain_top_reasons(bundle, X.head(5), top_k=3, config=config)
    assert explainer_of(model, config) is explainer
    assert prepare(_bundle(ChannelRateBaseline().fit(X, y, X, y), X), config) is None
