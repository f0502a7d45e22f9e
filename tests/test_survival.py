"""The competing-risks hazard model for time to close."""

import numpy as np
import pandas as pd
import pytest

from radar.config import ModelConfig
from training.survival import (
    HazardModel,
    competing_risk_brier,
    concordance,
    expand_periods,
    median_from_cif,
)


def test_expand_periods_by_hand() -> None:
    X = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0]})
    # won on day 25 (period 2), lost on day 5 (period 0), censored at day 25 (2 full
    # periods seen open), censored at 90 (all 9 periods).
    rows, target = expand_periods(X, np.array([25, 5, 25, 90]), np.array(["won", "lost", "censored", "censored"]), 10, 9)
    assert rows["x"].tolist() == [1, 1, 1, 2, 3, 3] + [4] * 9
    assert rows["hazard_period"].tolist() == [0, 1, 2, 0, 0, 1] + list(range(9))
    assert target.tolist() == [0, 0, 1, 2, 0, 0] + [0] * 9


def test_median_from_cif_interpolates() -> None:
    cif = np.array([[0.2, 0.4, 0.6], [0.1, 0.2, 0.3]])
    med = median_from_cif(cif, np.array([10.0, 20.0, 30.0]))
    assert med[0] == pytest.approx(25.0)
    assert np.isnan(med[1])


def test_brier_without_censoring_is_the_plain_brier() -> None:
    duration = np.array([5.0, 15.0, 40.0, 12.0])
    event = np.array(["won", "lost", "won", "won"])
    cif = np.array([0.9, 0.2, 0.3, 0.6])
    score = competing_risk_brier(duration, event, {20.0: cif})[20.0]
    status = np.array([1, 0, 0, 1])
    assert score == pytest.approx(np.mean((status - cif) ** 2))


def simulate_deals(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Deals whose daily win hazard grows with engagement; some are lost, some censored."""
    rng = np.random.default_rng(seed)
    meetings = rng.poisson(2, n).astype(float)
    win_rate = 0.004 * np.exp(0.45 * meetings)
    t_win = rng.exponential(1 / win_rate)
    t_lost = rng.exponential(1 / 0.006, n)
    t_cens = rng.uniform(20, 150, n)
    time = np.minimum.reduce([t_win, t_lost, t_cens, np.full(n, 90.0)])
    event = np.where(time == t_win, "won", np.where(time == t_lost, "lost", "censored"))
    return pd.DataFrame({"meetings": meetings, "noise": rng.normal(size=n)}), time, event


@pytest.fixture(scope="module")
def model() -> HazardModel:
    X, d, e = simulate_deals(4000, 1)
    Xv, dv, ev = simulate_deals(2000, 2)
    return HazardModel(ModelConfig(max_trees=150), horizon_days=90).fit(X, d, e, Xv, dv, ev)


def test_more_engagement_means_faster_wins(model: HazardModel) -> None:
    X = pd.DataFrame({"meetings": [0.0, 6.0], "noise": [0.0, 0.0]})
    p = model.predict_won_within(X, [30, 60, 90])
    assert (np.diff(p, axis=1) >= -1e-9).all()  # CIF never decreases
    assert (p[1] > p[0] + 0.2).all()
    med = model.predict_median_days(X)
    assert np.isnan(med[0]) or med[0] > med[1]


def test_ranks_deals_and_matches_observed_win_rate(model: HazardModel) -> None:
    X, d, e = simulate_deals(3000, 3)
    p90 = model.predict_proba(X)
    assert concordance(d, e, p90) > 0.65
    # Without censoring before day 90 the observed share won by 90 is exact.
    X2, d2, e2 = simulate_deals(3000, 4)
    uncensored = (e2 != "censored") | (d2 >= 90)
    observed = np.mean(e2[uncensored] == "won")
    assert model.predict_proba(X2[uncensored]).mean() == pytest.approx(observed, abs=0.04)
