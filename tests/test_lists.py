"""Action lists on a small hand-made CRM scored by real (small) LightGBM champions.

The CRM mixes a seeded crowd (leads, buyers, open deals, tickets) with hand-placed people
whose list membership is worked out by hand: failed payments (``f*``), stalled deals
(``s*``) and cross-sell histories (``c*``). The champions are real ProbabilityModel /
HazardModel bundles trained on noisy copies of the CRM's own feature rows, so scores,
grades and SHAP reasons go through exactly the code production uses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.contract import CRMData
from features.pipeline import build_features, feature_columns
from radar.config import ListSettings, ModelConfig, Settings
from serving.lists import (
    LIST_NAMES,
    WORKBOOK_NAME,
    ListFilters,
    build_lists,
    next_categories,
    write_lists,
)
from serving.scoring import Champion
from training.bundle import TargetBundle
from training.models import ProbabilityModel
from training.survival import HazardModel

AS_OF = pd.Timestamp("2024-06-01")
CATEGORIES = ("hardware", "software", "training")
#: The column each list multiplies its probability by to get the expected value.
VALUE_COLUMN = {
    "leads_to_call": "deal_value",
    "deals_closing_soon": "deal_amount",
    "stalled_deals": "deal_amount",
    "drifting_customers": "customer_value",
    "service_risk_customers": "customer_value",
    "failed_payments": "amount_at_stake",
    "likely_buyers": "typical_order",
}


def ago(days: float) -> pd.Timestamp:
    return AS_OF - pd.Timedelta(days=days)


class World:
    """Rows of the five tables, added person by person."""

    def __init__(self) -> None:
        self.leads: list[dict] = []
        self.orders: list[dict] = []
        self.interactions: list[dict] = []
        self.deals: list[dict] = []

    def lead(self, person: str, days: float, source: str, industry: str | None, customer: bool = False) -> None:
        self.leads.append(
            {
                "person_id": person, "lead_id": f"L-{person}", "customer_id": f"C-{person}" if customer else None,
                "email": f"{person}@example.com", "phone": "+447700900000", "created_at": ago(days),
                "source": source, "industry": industry, "company_size": "11-50",
            }
        )

    def order(self, person: str, days: float, amount: float, status: str = "paid", category: str = "hardware") -> None:
        self.orders.append(
            {"person_id": person, "timestamp": ago(days), "amount": float(amount), "status": status, "category": category}
        )

    def event(self, person: str, days: float, kind: str, deal_id: str | None = None, stage: str | None = None) -> None:
        self.interactions.append(
            {"person_id": person, "timestamp": ago(days), "type": kind, "value": np.nan, "deal_id": deal_id, "stage": stage}
        )

    def deal(self, person: str, days: float, amount: float, owner: str, stage_days: list[float]) -> None:
        deal_id = f"D-{person}"
        self.deals.append(
            {"person_id": person, "deal_id": deal_id, "created_at": ago(days), "closed_at": pd.NaT,
             "outcome": "open", "amount": float(amount), "owner": owner}
        )
        stages = ("qualification", "discovery", "proposal", "negotiation")
        for i, d in enumerate(sorted(stage_days, reverse=True)):
            self.event(person, d, "deal_stage", deal_id, stages[min(i, 3)])

    def data(self) -> CRMData:
        def frame(rows: list[dict], *times: str) -> pd.DataFrame:
            out = pd.DataFrame(rows)
            for column in times:
                out[column] = pd.to_datetime(out[column]).astype("datetime64[ns]")
            return out

        return CRMData(
            leads=frame(self.leads, "created_at"),
            orders=frame(self.orders, "timestamp"),
            interactions=frame(self.interactions, "timestamp"),
            deals=frame(self.deals, "created_at", "closed_at"),
        )


def _crowd(world: World, n: int, seed: int) -> None:
    """Seeded people of every kind; none of them ever has a failed payment."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        person = f"r{i:03d}"
        buyer = rng.random() < 0.6
        source = str(rng.choice(["referral", "paid_search", "social_ads"]))
        industry = [None, "retail", "software"][int(rng.integers(0, 3))]
        world.lead(person, rng.uniform(100, 400) if buyer else rng.uniform(3, 85), source, industry, customer=buyer)
        if buyer:
            for d in rng.uniform(1, 380, int(rng.integers(1, 6))):
                world.order(person, d, rng.uniform(20, 500), category=str(rng.choice(CATEGORIES)))
        for d in rng.uniform(1, 120, int(rng.integers(0, 6))):
            world.event(person, d, "email_open")
        if rng.random() < 0.25:
            world.event(person, rng.uniform(1, 80), "support_ticket")
        if rng.random() < 0.4:
            created = rng.uniform(10, 150)
            moves = rng.uniform(0, created, int(rng.integers(0, 3)))
            world.deal(person, created, rng.uniform(500, 10000), str(rng.choice(["rep_1", "rep_2"])), list(moves))


def _hand_placed(world: World) -> None:
    # Failed payments (window 30 days): f1 and f6 are in; f2 recovered, f3 too old, f4
    # recovered by a payment at the very same moment, f5 fails only after as_of.
    for person in ("f1", "f2", "f3", "f4", "f5", "f6"):
        world.lead(person, 300, "referral", "retail", customer=True)
        world.order(person, 200, 100)
        world.event(person, 5, "email_open")
    world.order("f1", 10, 120, "failed")
    world.order("f2", 10, 80, "failed")
    world.order("f2", 5, 80)
    world.order("f3", 45, 90, "failed")
    world.order("f4", 20, 70, "failed")
    world.order("f4", 20, 70)
    world.order("f5", -1, 60, "failed")
    world.order("f6", 100, 50)
    world.order("f6", 29, 250, "failed")
    # Stalled deals (threshold 30 days): s1 (45 days), s3 (31) and s4 (never moved, 60 days
    # old) are stalled; s2 moved 10 days ago.
    for person, created, moves in (("s1", 100, [80, 45]), ("s2", 50, [10]), ("s3", 40, [31]), ("s4", 60, [])):
        world.lead(person, created + 5, "paid_search", "software")
        world.deal(person, created, 5000, "rep_1", moves)
    # Cross-sell: c1 buys hardware most often; c2 ties (software is the more recent);
    # c3's many hardware orders are older than the 365-day lookback.
    for person in ("c1", "c2", "c3"):
        world.lead(person, 600, "referral", "retail", customer=True)
        world.event(person, 3, "email_open")
    for days, category in ((200, "hardware"), (100, "hardware"), (10, "software")):
        world.order("c1", days, 100, category=category)
    for days, category in ((50, "training"), (20, "software")):
        world.order("c2", days, 100, category=category)
    for days, category in ((500, "hardware"), (480, "hardware"), (470, "hardware"), (30, "training")):
        world.order("c3", days, 100, category=category)


@pytest.fixture(scope="module")
def data() -> CRMData:
    world = World()
    _crowd(world, 140, seed=5)
    _hand_placed(world)
    return world.data()


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    work = tmp_path_factory.mktemp("lists")
    return Settings(work_dir=work, mlflow_tracking_uri=f"sqlite:///{work / 'mlflow.db'}")


def _noisy_copies(features: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Training rows: the CRM's feature rows resampled, numbers jittered."""
    X = features.iloc[rng.integers(0, len(features), n)].reset_index(drop=True)
    numeric = X.select_dtypes("number").columns
    X[numeric] = X[numeric] * rng.lognormal(0, 0.3, (n, len(numeric)))
    return X


def _label(X: pd.DataFrame, column: str, rng: np.random.Generator) -> np.ndarray:
    values = X[column].fillna(X[column].median()).to_numpy(dtype=float)
    z = (values - values.mean()) / (values.std() + 1e-9)
    return (rng.random(len(X)) < 1 / (1 + np.exp(-(2 * z - 0.5)))).astype(int)


def _bundle(target: str, kind: str, model: object, X: pd.DataFrame, **extra: object) -> TargetBundle:
    return TargetBundle(
        target=target, kind=kind, model=model, feature_names=list(X.columns),  # type: ignore[arg-type]
        model_type="lightgbm", metrics={}, reference_probabilities=np.sort(model.predict_proba(X)),  # type: ignore[attr-defined]
        horizon_days=90, snapshot_plan={}, trained_at="", **extra,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def champions(data: CRMData) -> dict[str, Champion]:
    features = build_features(data, AS_OF)
    features = features[feature_columns(features)]
    rng = np.random.default_rng(1)
    config = ModelConfig(num_threads=1, min_child_samples=20, max_trees=60, early_stopping_rounds=10)
    X, X_val = _noisy_copies(features, 2000, rng), _noisy_copies(features, 800, rng)

    def binary(column: str) -> ProbabilityModel:
        return ProbabilityModel(config, seed=1).fit(X, _label(X, column, rng), X_val, _label(X_val, column, rng))

    def durations(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        big = frame["open_deal_amount"].fillna(0).to_numpy() > 4000
        days = rng.exponential(np.where(big, 20, 70))
        event = np.where(days > 90, "censored", np.where(rng.random(len(frame)) < 0.7, "won", "lost"))
        return np.minimum(days, 90), event

    hazard = HazardModel(config, horizon_days=90).fit(X, *durations(X), X_val, *durations(X_val))
    bundles = {
        "lead_quality": _bundle("lead_quality", "binary", binary("n_email_open_90d"), X),
        "purchase_probability": _bundle("purchase_probability", "binary", binary("paid_amount_365d"), X),
        "churn_by_indifference": _bundle(
            "churn_by_indifference", "binary", binary("days_since_last_engagement"), X,
            service_model=binary("days_since_last_service_issue"),
        ),
        "time_to_close": _bundle("time_to_close", "survival", hazard, X),
    }
    return {target: Champion(bundle, "1") for target, bundle in bundles.items()}


@pytest.fixture(scope="module")
def lists(data: CRMData, champions: dict[str, Champion], settings: Settings) -> dict[str, pd.DataFrame]:
    config = ListSettings(closing_soon_min_probability=0.05, likely_buyer_min_probability=0.0)
    return build_lists(data, AS_OF, champions, settings, config=config)


def _people(frame: pd.DataFrame) -> set[str]:
    return set(frame["person_id"])


def test_every_list_is_ranked_by_expected_value(lists: dict[str, pd.DataFrame]) -> None:
    assert list(lists) == list(LIST_NAMES)
    for name, frame in lists.items():
        assert len(frame) > 0, name
        assert list(frame["rank"]) == list(range(1, len(frame) + 1)), name
        ev = frame["expected_value"].dropna().to_numpy()
        assert (np.diff(ev) <= 0).all(), name
        # Expected value is probability × money at stake, not the probability alone.
        expected = (frame["probability"] * frame[VALUE_COLUMN[name]]).to_numpy(dtype=float)
        np.testing.assert_allclose(frame["expected_value"].to_numpy(dtype=float), expected, rtol=1e-3, atol=0.01)
        assert frame["person_id"].is_unique, name
        assert not {"email", "phone"} & set(frame.columns), name
        assert frame["grade"].isin(["A", "B", "C", "D"]).all(), name
        assert (frame["reasons_text"].str.len() > 0).mean() > 0.9, name
    # Somewhere the money at stake reorders people against their probability.
    assert any(
        not frame["probability"].is_monotonic_decreasing for frame in lists.values() if len(frame) > 2
    )


def test_rows_carry_crm_context(lists: dict[str, pd.DataFrame], data: CRMData) -> None:
    stalled = lists["stalled_deals"].set_index("person_id")
    assert stalled.loc["s1", "lead_id"] == "L-s1"
    assert stalled.loc["s1", "owner"] == "rep_1" and stalled.loc["s1", "deal_id"] == "D-s1"
    assert stalled.loc["s1", "channel"] == "paid_search" and stalled.loc["s1", "segment"] == "software"
    assert stalled.loc["s1", "deal_stage"] == "discovery" and pd.isna(stalled.loc["s4", "deal_stage"])
    failed = lists["failed_payments"].set_index("person_id")
    assert failed.loc["f1", "customer_id"] == "C-f1"
    assert set(lists["leads_to_call"]["channel"]) <= {"referral", "paid_search", "social_ads"}


def test_failed_payments_are_exactly_the_recent_unrecovered_ones(
    lists: dict[str, pd.DataFrame], data: CRMData, champions: dict[str, Champion], settings: Settings
) -> None:
    failed = lists["failed_payments"].set_index("person_id")
    assert set(failed.index) == {"f1", "f6"}
    assert failed.loc["f1", "amount_at_stake"] == 120 and failed.loc["f6", "amount_at_stake"] == 250
    assert failed.loc["f6", "days_since_failed_payment"] == pytest.approx(29)
    wider = build_lists(data, AS_OF, champions, settings, config=ListSettings(failed_payment_days=60))
    assert _people(wider["failed_payments"]) == {"f1", "f3", "f6"}


def test_stalled_deals_have_not_moved_for_longer_than_the_threshold(
    lists: dict[str, pd.DataFrame], data: CRMData, champions: dict[str, Champion], settings: Settings
) -> None:
    stalled = lists["stalled_deals"]
    assert (stalled["days_since_stage_change"] > 30).all()
    assert {"s1", "s3", "s4"} <= _people(stalled) and "s2" not in _people(stalled)
    by_person = stalled.set_index("person_id")["days_since_stage_change"]
    assert by_person[["s1", "s3", "s4"]].tolist() == pytest.approx([45, 31, 60])
    stricter = build_lists(data, AS_OF, champions, settings, config=ListSettings(stalled_after_days=40))
    assert (stricter["stalled_deals"]["days_since_stage_change"] > 40).all()
    assert {"s1", "s4"} <= _people(stricter["stalled_deals"]) and "s3" not in _people(stricter["stalled_deals"])


def test_deals_closing_soon_meet_the_probability_floor(lists: dict[str, pd.DataFrame]) -> None:
    assert (lists["deals_closing_soon"]["probability"] >= 0.05).all()


def test_churn_lists_split_customers_by_risk(lists: dict[str, pd.DataFrame]) -> None:
    drifting, service = lists["drifting_customers"], lists["service_risk_customers"]
    assert not _people(drifting) & _people(service)
    assert (drifting["dominant_risk"] == "indifference").all()
    assert not (drifting["days_since_last_service_issue"] <= 30).any()
    explained = (service["dominant_risk"] == "service") | (service["days_since_last_service_issue"] <= 30)
    assert explained.all()


def test_next_category_is_the_most_frequent_recent_one(data: CRMData, lists: dict[str, pd.DataFrame]) -> None:
    nxt = next_categories(data, AS_OF, 365)
    assert nxt[["c1", "c2", "c3"]].tolist() == ["hardware", "software", "training"]
    buyers = lists["likely_buyers"].set_index("person_id")
    assert buyers.loc[["c1", "c2", "c3"], "next_category"].tolist() == ["hardware", "software", "training"]


@pytest.mark.parametrize(
    ("field", "values"),
    [("channel", ("referral",)), ("grade", ("A", "B")), ("owner", ("rep_1",)), ("segment", ("retail",))],
)
def test_filters_keep_exactly_the_matching_rows(
    field: str,
    values: tuple[str, ...],
    lists: dict[str, pd.DataFrame],
    data: CRMData,
    champions: dict[str, Champion],
    settings: Settings,
) -> None:
    config = ListSettings(closing_soon_min_probability=0.05, likely_buyer_min_probability=0.0)
    filtered = build_lists(data, AS_OF, champions, settings, filters=ListFilters(**{field: values}), config=config)
    kept_any = False
    for name in LIST_NAMES:
        full, part = lists[name], filtered[name]
        expected = full[full[field].isin(values)]
        assert part["person_id"].tolist() == expected["person_id"].tolist(), (name, field)
        assert list(part["rank"]) == list(range(1, len(part) + 1))
        kept_any |= 0 < len(part) < len(full)
    assert kept_any, field


def test_a_single_value_filter_reads_as_one_value() -> None:
    assert ListFilters(channel="referral").channel == ("referral",)


def test_lists_are_written_as_csv_and_one_workbook(lists: dict[str, pd.DataFrame], tmp_path: Path) -> None:
    paths = write_lists(lists, tmp_path / "out")
    assert [p.name for p in paths] == [f"{name}.csv" for name in LIST_NAMES] + [WORKBOOK_NAME]
    sheets = pd.read_excel(tmp_path / "out" / WORKBOOK_NAME, sheet_name=None)
    assert list(sheets) == list(LIST_NAMES)
    for name, frame in lists.items():
        csv = pd.read_csv(tmp_path / "out" / f"{name}.csv")
        assert list(csv.columns) == list(frame.columns)
        assert csv["person_id"].tolist() == frame["person_id"].tolist()
        assert sheets[name]["person_id"].tolist() == frame["person_id"].tolist()
    assert not list((tmp_path / "out").glob(".*.tmp"))


def test_lists_without_a_champion_are_empty_with_their_columns(data: CRMData, settings: Settings) -> None:
    empty = build_lists(data, AS_OF, {}, settings)
    assert all(len(empty[name]) == 0 for name in LIST_NAMES if name != "failed_payments")
    # Failed payments are facts from the orders table: still listed, ranked by amount unknown.
    assert _people(empty["failed_payments"]) == {"f1", "f6"}
    assert "next_category" in empty["likely_buyers"].columns


def _rounded_like(values: pd.Series, kind: str) -> bool:
    """Whether every present value already has the precision a list shows for its kind."""
    present = values.dropna().astype(float)
    if kind == "probability":
        return all(float(f"{v:.4g}") == v for v in present)
    decimals = {"days": 1, "count": 0, "percentile": 1, "money": 2}[kind]
    return bool((present.round(decimals) == present).all())


def test_list_figures_are_rounded_for_people(
    lists: dict[str, pd.DataFrame], data: CRMData, settings: Settings, tmp_path: Path
) -> None:
    from serving.figures import figure_kind

    leads = lists["leads_to_call"].set_index("person_id")
    raw = build_features(data, AS_OF, settings.features).loc[leads.index, "lead_age_days"]
    # The features keep the full precision (a lead 20.2098... days old); the list shows 20.2.
    assert (raw != raw.round(1)).any()
    assert leads["lead_age_days"].tolist() == raw.round(1).tolist()
    checked = set()
    for name, frame in lists.items():
        for column in frame.columns:
            if pd.api.types.is_float_dtype(frame[column].dtype) or str(frame[column].dtype) == "Int64":
                kind = figure_kind(column)
                assert _rounded_like(frame[column], kind), (name, column)
                checked.add(kind)
    assert {"probability", "days", "money", "count"} <= checked
    assert str(lists["failed_payments"]["n_recent_failed_payments"].dtype) == "Int64"
    # Written out, no figure carries float noise such as 0.30000000000000004.
    write_lists(lists, tmp_path / "out")
    for name in LIST_NAMES:
        text = (tmp_path / "out" / f"{name}.csv").read_text(encoding="utf-8")
        assert not any(len(token.split(".")[-1]) > 8 for token in text.replace("\n", ",").split(",")
                       if token.replace(".", "", 1).replace("-", "", 1).isdigit()), name
