"""Reasons behind a score: real LightGBM models and baselines, on planted and demo data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.ingest import load_crm
from radar.config import ModelConfig, Settings
from radar.demo import generate_world
from serving.reasons import (
    Reason,
    booster_matrix,
    explain_top_reasons,
    group_of,
    grouped_impacts,
    reasons_text,
    why_no_reasons,
)
from serving.scoring import Champion, score_target
from training.baselines import BGNBDBaseline, ChannelRateBaseline, RecencyFrequencyRule
from training.bundle import TargetBundle
from training.models import ProbabilityModel
from training.pipeline import build_target_rows, train_target
from training.survival import HazardModel

WINDOWS = (7, 30, 90, 365)
SOURCES = ["referral", "paid_search", "social_ads", "email"]


def _planted(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Features under Radar's names; e-mail opens in the last 30 days drive the label."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(2.0, 1.5, n) / 30  # opens per day
    # Nested windows: the 7-day count is part of the 30-day one, and so on.
    parts = [rng.poisson(rate * d) for d in (7, 23, 60, 275)]
    opens = np.cumsum(parts, axis=0).astype(float)
    last = rng.uniform(1, 300, n)
    gap = rng.uniform(10, 90, n)
    never = rng.random(n) < 0.15
    X = pd.DataFrame(
        {
            "tenure_days": rng.uniform(10, 900, n),
            "days_since_last_paid_order": np.where(never, np.nan, last),
            "purchase_gap_mean_days": np.where(never, np.nan, gap),
            "days_since_last_paid_order_vs_usual_gap": np.where(never, np.nan, last / gap),
            **{f"n_email_open_{d}d": opens[i] for i, d in enumerate(WINDOWS)},
            "open_deal_stage": np.where(rng.random(n) < 0.5, rng.integers(0, 4, n), np.nan),
            "open_deal_amount": rng.lognormal(8, 1, n),
            "lead_source": pd.Categorical(rng.choice(SOURCES, n)),
            "lead_country": pd.Categorical(rng.choice(["ES", "GB", "DE"], n)),
        },
        index=pd.Index([f"P{i:05d}" for i in range(n)], name="person_id"),
    )
    z = (opens[1] - opens[1].mean()) / opens[1].std()
    logit = -0.5 + 2.5 * z + 0.4 * (X["lead_source"] == "referral").to_numpy() - 0.004 * np.nan_to_num(last, nan=300)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return X, y


def _bundle(model: object, X: pd.DataFrame, target: str = "purchase_probability", kind: str = "binary") -> TargetBundle:
    return TargetBundle(
        target=target, kind=kind, model=model, feature_names=list(X.columns),  # type: ignore[arg-type]
        model_type="lightgbm" if hasattr(model, "booster_") else str(getattr(model, "name")),
        metrics={}, reference_probabilities=np.sort(model.predict_proba(X)),  # type: ignore[attr-defined]
        horizon_days=90, snapshot_plan={}, trained_at="",
    )


@pytest.fixture(scope="module")
def planted() -> tuple[TargetBundle, pd.DataFrame]:
    X, y = _planted(6000, seed=3)
    X_val, y_val = _planted(2000, seed=4)
    model = ProbabilityModel(ModelConfig(num_threads=1), seed=1).fit(X, y, X_val, y_val)
    X_test, _ = _planted(2000, seed=5)
    return _bundle(model, X_test), X_test


def test_planted_driver_is_the_top_reason_with_its_direction(planted: tuple[TargetBundle, pd.DataFrame]) -> None:
    bundle, X = planted
    reasons = explain_top_reasons(bundle, X, top_k=5)
    opens = X["n_email_open_30d"]
    for extreme, direction in ((opens >= opens.quantile(0.95), "up"), (opens <= opens.quantile(0.05), "down")):
        rows = [reasons[i] for i in np.flatnonzero(extreme.to_numpy())]
        top = [row[0] for row in rows]
        share = np.mean([r.feature == "email_open" and r.direction == direction for r in top])
        assert share >= 0.9, (direction, share, [r.text for r in top[:5]])


def test_windows_of_one_type_are_one_reason(planted: tuple[TargetBundle, pd.DataFrame]) -> None:
    bundle, X = planted
    assert {group_of(f"n_email_open_{d}d") for d in WINDOWS} == {"email_open"}
    for row in explain_top_reasons(bundle, X.head(300), top_k=10):
        names = [r.feature for r in row]
        assert len(names) == len(set(names))
        assert not any(name.startswith("n_email_open") for name in names)
        for reason in row:
            if reason.feature == "email_open":
                assert "e-mail" in reason.text


def test_groups_and_expected_value_add_up_to_the_raw_score(planted: tuple[TargetBundle, pd.DataFrame]) -> None:
    bundle, X = planted
    impacts, expected = grouped_impacts(bundle, X)  # type: ignore[misc]
    booster = bundle.model.booster_
    raw = booster.predict(bundle.model._prepare(X), raw_score=True, num_iteration=booster.best_iteration or None)
    np.testing.assert_allclose(impacts.sum(axis=1).to_numpy() + expected, raw, atol=1e-9)
    assert set(impacts.columns) == {
        "tenure_days", "purchase_rhythm", "email_open", "open_deal", "lead_source", "lead_country"
    }


def test_booster_matrix_matches_the_models_own_preparation(planted: tuple[TargetBundle, pd.DataFrame]) -> None:
    bundle, X = planted
    odd = X.head(50).copy()
    # Unseen and missing categories, categories in another order, a plain text column.
    odd["lead_source"] = pd.Categorical(["tv"] * 10 + [None] * 10 + ["email"] * 30, categories=["tv", "email"])
    odd["lead_country"] = odd["lead_country"].astype(str).astype(object)
    odd = odd[list(reversed(odd.columns))]
    model = bundle.model
    ours = model.booster_.predict(booster_matrix(model, odd), pred_contrib=True, num_iteration=model.booster_.best_iteration or None)
    np.testing.assert_array_equal(ours, model.contributions(odd))
    with pytest.raises(KeyError, match="lead_country"):
        booster_matrix(model, odd.drop(columns="lead_country"))


def test_top_k_order_and_text(planted: tuple[TargetBundle, pd.DataFrame]) -> None:
    bundle, X = planted
    for k in (1, 3):
        reasons = explain_top_reasons(bundle, X.head(200), top_k=k)
        assert len(reasons) == 200 and all(1 <= len(row) <= k for row in reasons)
    for row in explain_top_reasons(bundle, X.head(200), top_k=6):
        sizes = [abs(r.impact) for r in row]
        assert sizes == sorted(sizes, reverse=True)
        for r in row:
            assert r.direction == ("up" if r.impact > 0 else "down")
            assert r.text.endswith("(↑)" if r.direction == "up" else "(↓)")
        json.dumps([r.to_dict() for r in row])  # JSON-friendly values
    assert explain_top_reasons(bundle, X.head(0)) == []


def test_purchase_rhythm_reads_as_one_sentence(planted: tuple[TargetBundle, pd.DataFrame]) -> None:
    bundle, X = planted
    row = X.head(1).copy()
    row["days_since_last_paid_order"] = 140.0
    row["purchase_gap_mean_days"] = 35.0
    row["days_since_last_paid_order_vs_usual_gap"] = 4.0
    reasons = explain_top_reasons(bundle, row, top_k=10)[0]
    rhythm = [r for r in reasons if r.feature == "purchase_rhythm"]
    assert len(rhythm) == 1
    assert rhythm[0].value == 140
    assert rhythm[0].text.startswith("no purchase for 140 days; usually buys every 35 (")


def test_reasons_text_joins_sentences() -> None:
    reasons = [
        Reason("email_open", 6, 0.8, "up", "opened 6 e-mails in the last 30 days (↑)"),
        Reason("purchase_rhythm", 140, -0.5, "down", "no purchase for 140 days; usually buys every 35 (↓)"),
    ]
    assert reasons_text(reasons) == (
        "opened 6 e-mails in the last 30 days (↑); no purchase for 140 days; usually buys every 35 (↓)"
    )
    assert reasons_text([]) == ""


def test_time_to_close_explains_the_first_period_win_score() -> None:
    X, _ = _planted(3000, seed=6)
    rng = np.random.default_rng(6)
    fast = X["n_email_open_30d"].to_numpy() > X["n_email_open_30d"].median()
    duration = rng.exponential(np.where(fast, 20, 80))
    event = np.where(duration > 90, "censored", np.where(rng.random(len(X)) < 0.7, "won", "lost"))
    duration = np.minimum(duration, 90)
    half = len(X) // 2
    model = HazardModel(ModelConfig(num_threads=1), horizon_days=90).fit(
        X.iloc[:half], duration[:half], event[:half], X.iloc[half:], duration[half:], event[half:]
    )
    bundle = _bundle(model, X, target="time_to_close", kind="survival")
    impacts, expected = grouped_impacts(bundle, X)  # type: ignore[misc]
    # The oracle goes through LightGBM's own pandas conversion, not Radar's input matrix.
    first = model._prepare(X).assign(hazard_period=0.0)
    won = model.booster_.predict(first, raw_score=True, num_iteration=model.booster_.best_iteration or None)[:, 1]
    np.testing.assert_allclose(impacts.sum(axis=1).to_numpy() + expected, won, atol=1e-9)
    assert "hazard_period" not in impacts.columns
    top = [row[0] for row in explain_top_reasons(bundle, X[fast & (X["n_email_open_30d"] > 8)], top_k=3)]
    assert np.mean([r.feature == "email_open" and r.direction == "up" for r in top]) >= 0.8


def test_baselines_explain_what_they_read_or_say_why_not() -> None:
    X, y = _planted(4000, seed=7)
    X["n_paid_orders"] = np.where(X["days_since_last_paid_order"].isna(), 0.0, 1 + X["tenure_days"] // 200)
    X["days_since_first_paid_order"] = X["tenure_days"]
    rule = RecencyFrequencyRule(min_cell_rows=5).fit(X, y, X, y)
    bundle = _bundle(rule, X)
    assert why_no_reasons(bundle) is None
    impacts, expected = grouped_impacts(bundle, X)  # type: ignore[misc]
    assert set(impacts.columns) == {"purchase_rhythm", "purchase_frequency"}
    logit = lambda p: np.log(np.clip(p, 1e-6, 1 - 1e-6) / (1 - np.clip(p, 1e-6, 1 - 1e-6)))  # noqa: E731
    np.testing.assert_allclose(impacts.sum(axis=1) + expected, logit(rule.predict_raw(X)), atol=1e-9)
    above = rule.predict_raw(X) > rule.global_rate_
    for row, up in zip(explain_top_reasons(bundle, X, top_k=5), above):
        assert {r.feature for r in row} <= {"purchase_rhythm", "purchase_frequency"}
        if row:  # the cell's rate against the base rate gives the overall sign
            assert (sum(r.impact for r in row) > 0) == up

    channel = ChannelRateBaseline().fit(X, y, X, y)
    row = explain_top_reasons(_bundle(channel, X), X.head(20), top_k=3)
    referral = (X["lead_source"].head(20) == "referral").to_numpy()
    for reasons, is_referral in zip(row, referral):
        assert [r.feature for r in reasons] == ["lead_source"]
        assert reasons[0].direction == ("up" if is_referral else "down")
        assert reasons[0].text.startswith("came in through ")

    bgnbd = BGNBDBaseline()
    bgnbd.name = "bgnbd"
    bgnbd.predict_proba = lambda frame: np.full(len(frame), 0.5)  # type: ignore[method-assign]
    no_model = _bundle(bgnbd, X)
    assert "BG/NBD" in (why_no_reasons(no_model) or "")
    assert explain_top_reasons(no_model, X.head(3)) == [[], [], []]


# ---------------------------------------------------------------- truth check on the demo world

#: What each truth hint (radar/demo/truth.py ``drivers``) means in reason groups. "purchase
#: frequency" is how often someone buys: the order counts and the usual gap (rhythm).
#: "engagement decline" is the overall engagement group (counts, trend, last activity);
#: per-type groups (e-mail opens, visits…) are deliberately not accepted, to keep it strict.
HINT_GROUPS: dict[str, set[str]] = {
    "purchase frequency": {"purchase_frequency", "purchase_rhythm"},
    "engagement decline": {"engagement"},
}
TRUTH_TARGETS: tuple[str, ...] = ("purchase_probability", "churn_by_indifference")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    out = tmp_path_factory.mktemp("reasons_world") / "crm"
    generate_world(n_customers=4000, seed=7, out_dir=out)
    work = tmp_path_factory.mktemp("reasons_radar")
    settings = Settings(work_dir=work, mlflow_tracking_uri=f"sqlite:///{work / 'mlflow.db'}")
    settings.training.n_snapshots = 6  # fewer stacked snapshots: same models, faster test
    data = load_crm(out, settings=settings).data
    plan, rows = build_target_rows(data, settings, TRUTH_TARGETS)
    results = {t: train_target(t, rows[t], settings, plan) for t in TRUTH_TARGETS}
    return {"world": out, "data": data, "plan": plan, "rows": rows, "results": results, "settings": settings}


def _driven(demo: dict[str, object], target: str) -> pd.DataFrame:
    """Truth drivers of ``target`` with Radar's person_id (truth person → lead_id →
    the validated leads table, where identity unification put the person_id)."""
    world: Path = demo["world"]  # type: ignore[assignment]
    people = pd.read_csv(world / "truth" / "people.csv")
    drivers = pd.read_csv(world / "truth" / "drivers.csv")
    leads = demo["data"].leads  # type: ignore[attr-defined]
    person_of_lead = leads.drop_duplicates("lead_id").set_index("lead_id")["person_id"]
    people["person_id"] = people["lead_id"].map(person_of_lead)
    driven = drivers[drivers["target"] == target].merge(people[["person", "person_id", "churned_at"]], on="person")
    if target == "churn_by_indifference":
        # Churn drives the score only when it falls in the test snapshot's label window,
        # [as_of - H, as_of + H) as for Radar's churn label.
        plan = demo["plan"]
        horizon = pd.Timedelta(days=demo["settings"].training.horizon_days)  # type: ignore[attr-defined]
        churned = pd.to_datetime(driven["churned_at"])
        driven = driven[(churned >= plan.test - horizon) & (churned < plan.test + horizon)]  # type: ignore[attr-defined]
    return driven.dropna(subset=["person_id"])


@pytest.mark.parametrize("target", TRUTH_TARGETS)
def test_true_drivers_rank_among_the_top_reasons(demo: dict[str, object], target: str) -> None:
    result = demo["results"][target]  # type: ignore[index]
    assert result.bundle is not None and result.bundle.model_type == "lightgbm", result.notes
    test_X = demo["rows"][target]["test"].X  # type: ignore[index]
    driven = _driven(demo, target)
    X = test_X[test_X.index.isin(driven["person_id"])]
    X = X[~X.index.duplicated()]
    assert len(X) >= 15, f"too few driven people in the test snapshot: {len(X)}"
    reasons = explain_top_reasons(result.bundle, X, top_k=5)
    hints = driven.drop_duplicates("person_id").set_index("person_id")["driver_feature_hint"]
    hits = [any(r.feature in HINT_GROUPS[hints[p]] for r in row) for p, row in zip(X.index, reasons)]
    share = float(np.mean(hits))
    print(f"\n{target}: true driver among the top 5 reasons for {share:.0%} of {len(X)} driven people")
    assert share >= 0.6


def test_score_target_attaches_reasons(demo: dict[str, object]) -> None:
    target = "purchase_probability"
    bundle = demo["results"][target].bundle  # type: ignore[index]
    X = demo["rows"][target]["test"].X.head(50)  # type: ignore[index]
    X = X[~X.index.duplicated()]
    settings: Settings = demo["settings"]  # type: ignore[assignment]
    as_of = demo["plan"].test  # type: ignore[attr-defined]
    plain = score_target(target, Champion(bundle, "1"), X, as_of, settings)
    assert "reasons" not in plain.columns
    scored = score_target(target, Champion(bundle, "1"), X, as_of, settings, top_k=3)
    assert list(scored.columns[-2:]) == ["reasons", "reasons_text"]
    for reasons, text in zip(scored["reasons"], scored["reasons_text"]):
        assert 1 <= len(reasons) <= 3
        assert text == "; ".join(r["text"] for r in reasons)
