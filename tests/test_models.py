"""The LightGBM probability model on generated data with a known signal."""

import numpy as np
import pandas as pd
import pytest

from radar.config import ModelConfig
from training.metrics import binary_metrics, expected_calibration_error, top_fraction_stats
from training.models import NotFittedError, ProbabilityModel


def make_frame(n: int, seed: int, with_truth: bool = False):
    rng = np.random.default_rng(seed)
    visits = rng.poisson(3, n).astype(float)
    channel = rng.choice(["referral", "social_ads", "paid_search"], n)
    logit = -1.5 + 0.4 * visits + np.where(channel == "referral", 1.0, 0.0)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    frame = pd.DataFrame({"visits": visits, "channel": pd.Categorical(channel), "noise": rng.normal(size=n)})
    return (frame, y, logit) if with_truth else (frame, y)


@pytest.fixture(scope="module")
def fitted() -> tuple[ProbabilityModel, pd.DataFrame, np.ndarray]:
    X_train, y_train = make_frame(6000, 1)
    X_val, y_val = make_frame(3000, 2)
    model = ProbabilityModel(ModelConfig(max_trees=200), seed=3).fit(X_train, y_train, X_val, y_val)
    X_test, y_test, true_logit = make_frame(4000, 3, with_truth=True)
    return model, X_test, y_test, true_logit


def test_learns_the_signal_and_is_calibrated(fitted) -> None:
    model, X_test, y_test, true_logit = fitted
    metrics = binary_metrics(y_test, model.predict_proba(X_test))
    oracle = binary_metrics(y_test, 1 / (1 + np.exp(-true_logit)))
    assert metrics["auc"] > oracle["auc"] - 0.02
    assert metrics["ece"] < 0.03
    assert metrics["lift_at_10pct"] > 1.5


def test_known_driver_moves_the_score_up(fitted) -> None:
    model, X_test, *_ = fitted
    more = X_test.assign(visits=X_test["visits"] + 5)
    assert model.predict_proba(more).mean() > model.predict_proba(X_test).mean() + 0.1


def test_contributions_sum_to_the_raw_log_odds(fitted) -> None:
    model, X_test, *_ = fitted
    contrib = model.contributions(X_test.head(50))
    raw = model.predict_raw(X_test.head(50))
    np.testing.assert_allclose(contrib.sum(axis=1), np.log(raw / (1 - raw)), atol=1e-6)


def test_unseen_category_scores_without_error(fitted) -> None:
    model, X_test, *_ = fitted
    odd = X_test.head(3).assign(channel=pd.Categorical(["fax", "fax", "referral"]))
    assert np.isfinite(model.predict_proba(odd)).all()


def test_size_is_reported(fitted) -> None:
    size = fitted[0].size()
    assert 1 <= size["trees"] <= 200 and size["leaves"] >= size["trees"]


def test_predict_before_fit_is_a_clear_error() -> None:
    with pytest.raises(NotFittedError):
        ProbabilityModel().predict_proba(pd.DataFrame({"a": [1.0]}))


def test_metric_helpers_on_hand_worked_values() -> None:
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.2, 0.8, 0.9])
    # Two equal-count bins: {0.1, 0.2} vs rate 0 → gap 0.15; {0.8, 0.9} vs 1 → gap 0.15.
    assert expected_calibration_error(y, p, n_bins=2) == pytest.approx(0.15)
    precision, lift = top_fraction_stats(y, p, fraction=0.5)
    assert precision == 1.0 and lift == 2.0
