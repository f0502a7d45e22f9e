"""Baselines on small generated data: hand-worked rates and curves, and real fits that
must rank better than chance."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from training.baselines import (
    BASELINES,
    CHURN_SCORES,
    BGNBDBaseline,
    BGNBDChurnBaseline,
    ChannelRateBaseline,
    CoxBaseline,
    LogisticBaseline,
    MissingColumnsError,
    RecencyFrequencyRule,
    StageCumulativeIncidence,
    make_baselines,
)
from training.models import NotFittedError
from training.survival import concordance

HORIZON = 90


# ------------------------------------------------------------------ RF rule


def _rf_frame(recency: list[float], n_orders: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"days_since_last_paid_order": recency, "n_paid_orders": n_orders, "other": 0.0})


def test_rf_rule_cell_rates_and_fallbacks_by_hand() -> None:
    # Cells with edges (30, 90) days and (1, 3) orders:
    #   recent (<30d) & 1-2 orders: y = 1, 1, 0    -> 2/3
    #   recent & 3+ orders:         y = 1          -> 1 row < min 2 -> recent bucket 3/4
    #   30-90d & 1-2 orders:        y = 0, 0       -> 0
    #   never bought:               y = 0, 1, 0, 0 -> 1/4
    X = _rf_frame(
        [5, 10, 20, 1, 40, 60, np.nan, np.nan, np.nan, np.nan],
        [1, 2, 2, 7, 1, 2, 0, 0, 0, np.nan],
    )
    y = np.array([1, 1, 0, 1, 0, 0, 0, 1, 0, 0])
    rule = RecencyFrequencyRule(recency_edges_days=(30, 90), frequency_edges=(1, 3), min_cell_rows=2)
    rule.fit(X, y, X, y)
    new = _rf_frame([3, 25, 45, 70, 100, np.nan, 12], [1, 5, 2, 9, 1, 0, 0])
    # 45d & 2 orders -> 0; 70d & 9 orders: empty cell -> 30-90d bucket 0/2 = 0;
    # 100d: empty bucket -> global 4/10; 12 days with 0 orders is "never bought" (1/4).
    expected = [2 / 3, 3 / 4, 0.0, 0.0, 0.4, 0.25, 0.25]
    np.testing.assert_allclose(rule.predict_proba(new), expected)


# ------------------------------------------------------------- channel rate


def test_channel_rate_is_smoothed_toward_global_by_hand() -> None:
    source = pd.Series(["ads", "ads", "ads", "ads", "seo", "seo", None, None], dtype="category")
    X = pd.DataFrame({"lead_source": source})
    y = np.array([1, 1, 1, 0, 0, 0, 1, 0])  # global 4/8 = 0.5
    model = ChannelRateBaseline(prior_rows=2).fit(X, y, X, y)
    new = pd.DataFrame({"lead_source": pd.Series(["ads", "seo", "tv", None], dtype=object)})
    # ads (3 + 2*.5)/(4 + 2) = 2/3; seo (0 + 1)/(2 + 2) = 1/4; unseen tv -> 0.5;
    # missing is a channel of its own: (1 + 1)/(2 + 2) = 0.5.
    np.testing.assert_allclose(model.predict_proba(new), [2 / 3, 1 / 4, 0.5, 0.5])


def test_channel_rate_reads_pandas_string_dtype() -> None:
    X = pd.DataFrame({"lead_source": pd.array(["a", "b", "a", pd.NA], dtype="string")})
    y = np.array([1, 0, 1, 0])
    model = ChannelRateBaseline(prior_rows=0).fit(X, y, X, y)
    np.testing.assert_allclose(model.predict_proba(X), [1, 0, 1, 0])


# ------------------------------------------------------------------ BG/NBD

TRUE = {"r": 2.0, "alpha": 40.0, "a": 1.0, "b": 4.0}


def simulate_bgnbd(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Customers from the BG/NBD story: Poisson purchases at rate λ ~ Gamma(r, α) days,
    dropout with probability p ~ Beta(a, b) after each repeat purchase. Observed for T days
    since the first purchase; the label is a purchase in (T, T + HORIZON]. A tenth never
    bought (their rows have no order history)."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(TRUE["r"], 1 / TRUE["alpha"], n)
    p = rng.beta(TRUE["a"], TRUE["b"], n)
    T = rng.uniform(30, 500, n)
    end = T + HORIZON
    t, last, x = np.zeros(n), np.zeros(n), np.zeros(n)
    future = np.zeros(n, bool)
    running = np.ones(n, bool)
    while running.any():
        t_next = t + rng.exponential(1 / lam)
        running &= t_next < end
        t = np.where(running, t_next, t)
        observed = running & (t_next <= T)
        x += observed
        last = np.where(observed, t_next, last)
        future |= running & (t_next > T)
        # Once a future purchase is seen the label is known; dropout ends the story too.
        running &= ~future & (rng.random(n) >= p)
    never = rng.random(n) < 0.1
    X = pd.DataFrame(
        {
            "n_paid_orders": np.where(never, 0.0, x + 1),
            "days_since_first_paid_order": np.where(never, np.nan, T),
            "days_since_last_paid_order": np.where(never, np.nan, T - last),
        }
    )
    y = np.where(never, rng.random(n) < 0.05, future).astype(int)
    return X, y


@pytest.fixture(scope="module")
def bgnbd_data() -> dict[str, tuple[pd.DataFrame, np.ndarray]]:
    return {"train": simulate_bgnbd(2500, 1), "val": simulate_bgnbd(1000, 2), "test": simulate_bgnbd(2000, 3)}


@pytest.fixture(scope="module")
def bgnbd(bgnbd_data: dict[str, tuple[pd.DataFrame, np.ndarray]]) -> BGNBDBaseline:
    (X_tr, y_tr), (X_va, y_va) = bgnbd_data["train"], bgnbd_data["val"]
    return BGNBDBaseline(horizon_days=HORIZON, max_fit_rows=2000).fit(X_tr, y_tr, X_va, y_va)


def test_bgnbd_ranks_future_buyers(bgnbd: BGNBDBaseline, bgnbd_data: dict) -> None:
    X_te, y_te = bgnbd_data["test"]
    prob = bgnbd.predict_proba(X_te)
    assert prob.shape == (len(X_te),) and np.all((prob >= 0) & (prob <= 1))
    assert roc_auc_score(y_te, prob) > 0.65
    assert roc_auc_score(y_te, bgnbd.predict_raw(X_te)) > 0.65


def test_bgnbd_parameters_are_sane(bgnbd: BGNBDBaseline) -> None:
    p = bgnbd.params_
    assert 1.0 < p["r"] < 4.0
    assert 20.0 < p["alpha"] < 80.0
    mean_dropout = p["a"] / (p["a"] + p["b"])
    assert 0.1 < mean_dropout < 0.35  # truth 0.2


def test_bgnbd_zero_repeat_uses_gamma_closed_form(bgnbd: BGNBDBaseline) -> None:
    X = pd.DataFrame(
        {"n_paid_orders": [1.0, 0.0], "days_since_first_paid_order": [100.0, np.nan], "days_since_last_paid_order": [100.0, np.nan]}
    )
    p = bgnbd.params_
    expected = ((p["alpha"] + 100) / (p["alpha"] + 100 + HORIZON)) ** p["r"]
    no_purchase = bgnbd.prob_no_purchase(X)
    assert no_purchase[0] == pytest.approx(expected)
    assert np.isnan(no_purchase[1])  # never bought: outside BG/NBD
    assert bgnbd.predict_raw(X)[1] == pytest.approx(bgnbd.non_buyer_rate_)


def test_bgnbd_survives_pickling(bgnbd: BGNBDBaseline, bgnbd_data: dict) -> None:
    X_te, _ = bgnbd_data["test"]
    restored = pickle.loads(pickle.dumps(bgnbd))
    np.testing.assert_allclose(restored.predict_proba(X_te), bgnbd.predict_proba(X_te))


def test_bgnbd_churn_picks_a_score_and_ranks_quiet_customers(bgnbd_data: dict) -> None:
    (X_tr, y_tr), (X_va, y_va), (X_te, y_te) = bgnbd_data["train"], bgnbd_data["val"], bgnbd_data["test"]
    churn = BGNBDChurnBaseline(horizon_days=HORIZON, max_fit_rows=2000).fit(X_tr, 1 - y_tr, X_va, 1 - y_va)
    assert churn.score_ in CHURN_SCORES
    assert set(churn.validation_auc_) == set(CHURN_SCORES)
    assert roc_auc_score(1 - y_te, churn.predict_proba(X_te)) > 0.65


# ------------------------------------------------------- logistic (leads)


def _leads(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    source = rng.choice(["ads", "seo", "referral", "event"], n)
    clicks = rng.poisson(1.5, n).astype(float)
    clicks[rng.random(n) < 0.1] = np.nan
    logit = -2 + 1.5 * (source == "referral") + 0.6 * np.nan_to_num(clicks)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    X = pd.DataFrame(
        {
            "lead_source": pd.Categorical(source),
            "lead_country": pd.array(rng.choice(["DE", "FR", None], n), dtype="string"),
            "lead_age_days": rng.uniform(0, 90, n),
            "n_email_click_30d": clicks,
        }
    )
    return X, y


def test_logistic_learns_source_and_engagement() -> None:
    (X_tr, y_tr), (X_va, y_va), (X_te, y_te) = _leads(1500, 1), _leads(800, 2), _leads(1500, 3)
    model = LogisticBaseline().fit(X_tr, y_tr, X_va, y_va)
    assert model.categorical_used_ == ["lead_source", "lead_country"]
    assert model.numeric_used_ == ["lead_age_days", "n_email_click_30d"]
    assert roc_auc_score(y_te, model.predict_proba(X_te)) > 0.75
    unseen = X_te.head(3).assign(lead_source=pd.Categorical(["radio"] * 3))
    assert np.all(np.isfinite(model.predict_proba(unseen)))


# ----------------------------------------------------------------- survival


def test_stage_cumulative_incidence_matches_hand_computed_aalen_johansen() -> None:
    X = pd.DataFrame({"deal_stage": [1.0] * 6 + [2.0] * 3})
    duration = np.array([10, 20, 20, 30, 40, 50, 5, 6, 7], dtype=float)
    event = np.array(["won", "lost", "censored", "won", "censored", "won", "censored", "lost", "won"])
    model = StageCumulativeIncidence(horizon_days=HORIZON, min_stage_deals=3).fit(X, duration, event, X, duration, event)
    new = pd.DataFrame({"deal_stage": [1.0, 2.0, 3.0, np.nan]})
    got = model.predict_won_within(new, [9, 10, 35, 50, 200])
    # Stage 1, by hand: at 10 one win of 6 at risk -> 1/6; at 20 a loss (5 at risk) leaves
    # S = 4/6; at 30 one win of 3 -> + 4/6 * 1/3 = 7/18; at 50 one win of 1 -> + 4/9 = 5/6.
    np.testing.assert_allclose(got[0], [0, 1 / 6, 7 / 18, 5 / 6, 5 / 6])
    # Stage 2: censored at 5, lost at 6 (S = 1/2), won at 7 with 1 at risk -> 1/2.
    np.testing.assert_allclose(got[1], [1 / 2] * 5)
    # Unseen stage and no stage get the pooled curve of all 9 deals:
    # 7: 1/8; 10: + 6/8 * 1/6 = 1/4; 30: + 4/8 * 1/3 = 5/12; 50: + 1/3 = 3/4.
    pooled = [1 / 8, 1 / 4, 5 / 12, 3 / 4, 3 / 4]
    np.testing.assert_allclose(got[2], pooled)
    np.testing.assert_allclose(got[3], pooled)
    np.testing.assert_allclose(model.predict_proba(new), got[:, -1])
    median = model.predict_median_days(new)
    assert 49 < median[0] <= 50 and median[1] == pytest.approx(7.0) and 49 < median[2] <= 50


def _deals(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Deals whose win hazard grows with stage and meetings; some are lost, the rest
    censored at the horizon."""
    rng = np.random.default_rng(seed)
    stage = rng.integers(0, 4, n).astype(float)
    meetings = rng.poisson(1.0, n).astype(float)
    amount = rng.lognormal(8, 1, n)
    win_rate = 0.004 * np.exp(0.6 * stage + 0.4 * meetings)
    t_win = rng.exponential(1 / win_rate)
    t_lost = rng.exponential(1 / 0.01, n)
    duration = np.minimum(np.minimum(t_win, t_lost), HORIZON)
    event = np.where(duration >= HORIZON, "censored", np.where(t_win < t_lost, "won", "lost"))
    X = pd.DataFrame(
        {
            "deal_stage": stage,
            "deal_age_days": rng.uniform(0, 100, n),
            "deal_amount": np.where(rng.random(n) < 0.1, np.nan, amount),
            "n_meeting_90d": meetings,
        }
    )
    return X, duration, event


def test_cox_ranks_faster_closing_deals_higher() -> None:
    X_tr, d_tr, e_tr = _deals(1500, 1)
    X_te, d_te, e_te = _deals(1000, 2)
    model = CoxBaseline(horizon_days=HORIZON).fit(X_tr, d_tr, e_tr, X_tr, d_tr, e_tr)
    assert model.columns_used_ == ["deal_stage", "deal_age_days", "deal_amount", "n_meeting_90d"]
    won = model.predict_won_within(X_te, [30, 60, 90])
    assert won.shape == (1000, 3) and np.all((won >= 0) & (won <= 1))
    assert np.all(np.diff(won, axis=1) >= 0)
    assert concordance(d_te, e_te, model.predict_proba(X_te)) > 0.6
    median = model.predict_median_days(X_te)
    fast = X_te["deal_stage"].to_numpy() == 3
    assert np.nanmedian(median[fast]) < np.nanmedian(np.where(np.isnan(median[~fast]), np.inf, median[~fast]))


def test_cox_with_lost_as_competing_matches_the_observed_win_share() -> None:
    X_tr, d_tr, e_tr = _deals(1500, 1)
    X_te, _, e_te = _deals(1000, 2)
    competing = CoxBaseline(horizon_days=HORIZON).fit(X_tr, d_tr, e_tr)
    censored = CoxBaseline(horizon_days=HORIZON, lost="censored").fit(X_tr, d_tr, e_tr)
    observed = float(np.mean(e_te == "won"))  # follow-up ends at the horizon for all deals
    assert abs(competing.predict_proba(X_te).mean() - observed) < 0.05
    # Treating lost as censored pretends lost deals could still win: it overstates.
    assert censored.predict_proba(X_te).mean() > competing.predict_proba(X_te).mean() + 0.05


def test_stage_curves_also_rank_deals() -> None:
    X_tr, d_tr, e_tr = _deals(1500, 1)
    X_te, d_te, e_te = _deals(1000, 2)
    model = StageCumulativeIncidence(horizon_days=HORIZON).fit(X_tr, d_tr, e_tr, X_tr, d_tr, e_tr)
    assert concordance(d_te, e_te, model.predict_proba(X_te)) > 0.6


# ------------------------------------------------------------- the contract

BINARY_FRAMES = {
    RecencyFrequencyRule: _rf_frame([1.0, 50.0], [1.0, 2.0]),
    ChannelRateBaseline: pd.DataFrame({"lead_source": ["a", "b"]}),
    LogisticBaseline: pd.DataFrame({"lead_source": ["a", "b"], "lead_age_days": [1.0, 2.0]}),
    BGNBDBaseline: pd.DataFrame(
        {"n_paid_orders": [1.0, 2.0], "days_since_first_paid_order": [9.0, 9.0], "days_since_last_paid_order": [9.0, 1.0]}
    ),
}


@pytest.mark.parametrize("cls", [*BINARY_FRAMES, BGNBDChurnBaseline])
def test_binary_baselines_refuse_to_predict_before_fit(cls: type) -> None:
    with pytest.raises(NotFittedError):
        cls().predict_proba(BINARY_FRAMES.get(cls, BINARY_FRAMES[BGNBDBaseline]))


@pytest.mark.parametrize("cls", [StageCumulativeIncidence, CoxBaseline])
def test_survival_baselines_refuse_to_predict_before_fit(cls: type) -> None:
    X = pd.DataFrame({"deal_stage": [1.0], "deal_age_days": [3.0], "deal_amount": [10.0]})
    for predict in (lambda m: m.predict_proba(X), lambda m: m.predict_won_within(X, [30]), lambda m: m.predict_median_days(X)):
        with pytest.raises(NotFittedError):
            predict(cls())


@pytest.mark.parametrize(
    ("cls", "needed"),
    [
        (RecencyFrequencyRule, "n_paid_orders"),
        (ChannelRateBaseline, "lead_source"),
        (LogisticBaseline, "lead_source"),
        (BGNBDBaseline, "days_since_first_paid_order"),
    ],
)
def test_binary_baselines_name_the_missing_column(cls: type, needed: str) -> None:
    X = BINARY_FRAMES[cls].drop(columns=[needed])
    with pytest.raises(MissingColumnsError, match=needed):
        cls().fit(X, np.array([0, 1]), X, np.array([0, 1]))


def test_missing_column_at_predict_time_is_named() -> None:
    X, y = _leads(200, 1)
    model = LogisticBaseline().fit(X, y, X, y)
    with pytest.raises(MissingColumnsError, match="n_email_click_30d"):
        model.predict_proba(X.drop(columns=["n_email_click_30d"]))


@pytest.mark.parametrize(("cls", "needed"), [(StageCumulativeIncidence, "deal_stage"), (CoxBaseline, "deal_amount")])
def test_survival_baselines_name_the_missing_column(cls: type, needed: str) -> None:
    X, d, e = _deals(50, 1)
    with pytest.raises(MissingColumnsError, match=needed):
        cls().fit(X.drop(columns=[needed]), d, e, X, d, e)


def test_registry_builds_every_baseline_with_horizon_and_seed() -> None:
    assert set(BASELINES) == {"purchase_probability", "churn_by_indifference", "lead_quality", "time_to_close"}
    for target in BASELINES:
        built = make_baselines(target, horizon_days=60, seed=7)
        assert [type(b) for b in built] == BASELINES[target]
        assert all(b.horizon_days == 60 and b.seed == 7 and isinstance(b.name, str) for b in built)
    with pytest.raises(KeyError):
        make_baselines("nonsense", 90, 1)
