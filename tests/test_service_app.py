"""The plain scoring app behind the HTTP API, without BentoML: fake champions, real pipeline."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.contract import CRMData
from features.ingest import load_crm
from features.pipeline import build_features
from radar.config import Settings
from radar.demo import generate_world
from serving.app import ApiError, ScoringApp, history_to_crm
from serving.feature_store import FeatureStore, materialize
from serving.model_store import LoadedModels
from serving.schemas import BatchRequest, Order, PersonHistory, ScoreRequest
from serving.scoring import Champion, score_people
from training.bundle import TargetBundle
from training.datasets import data_span


class _ByOrders:
    """More paid orders, higher probability: a known driver with a known answer."""

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return 1 / (1 + np.exp(1 - X["n_paid_orders"].fillna(0).to_numpy(dtype=float)))


def _champion(target: str) -> Champion:
    bundle = TargetBundle(
        target=target, kind="binary", model=_ByOrders(), feature_names=["n_paid_orders", "paid_amount_mean"],
        model_type="fake", metrics={}, reference_probabilities=np.linspace(0, 1, 101), horizon_days=90,
        snapshot_plan={}, trained_at="2025-01-01",
    )
    return Champion(bundle, "7")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, CRMData, pd.Timestamp]:
    out = tmp_path_factory.mktemp("world") / "crm"
    generate_world(n_customers=400, seed=5, out_dir=out)
    settings = Settings(work_dir=tmp_path_factory.mktemp("radar"))
    data = load_crm(out, settings=settings).data
    return settings, data, data_span(data)[1].normalize()


@pytest.fixture(scope="module")
def app(world: tuple[Settings, CRMData, pd.Timestamp]) -> ScoringApp:
    settings, data, as_of = world
    store = FeatureStore(Path(settings.work_dir) / "store.sqlite")
    materialize(data, as_of, settings, store)
    champions = {t: _champion(t) for t in ("lead_quality", "purchase_probability", "churn_by_indifference")}
    return ScoringApp(settings, LoadedModels(champions=champions, source="test"), store)


def _history(orders: int) -> PersonHistory:
    start = datetime(2025, 1, 1)
    return PersonHistory(orders=[Order(timestamp=start + timedelta(days=7 * i), amount=50.0) for i in range(orders)])


def test_a_history_becomes_contract_tables() -> None:
    aware = datetime(2025, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    data = history_to_crm([("a", PersonHistory(orders=[Order(timestamp=aware, amount=10)]))])
    assert data.leads is None and data.deals is None
    assert str(data.orders["timestamp"].dtype) == "datetime64[ns]"
    assert data.orders["timestamp"].iloc[0] == pd.Timestamp("2025-01-01 10:00")
    assert data.orders["amount"].dtype == "float64"
    assert list(data.orders["person_id"]) == ["a"]


def test_more_orders_score_higher(app: ScoringApp) -> None:
    as_of = datetime(2025, 6, 1)
    low = app.score(ScoreRequest(history=_history(1), as_of=as_of, targets=["purchase_probability"]))
    high = app.score(ScoreRequest(history=_history(6), as_of=as_of, targets=["purchase_probability"]))
    assert high.scores[0].probability > low.scores[0].probability
    assert high.scores[0].model_version == "7"
    assert high.scores[0].probability == pytest.approx(1 / (1 + np.exp(1 - 6)))


def test_by_id_equals_batch_scoring(app: ScoringApp, world: tuple) -> None:
    settings, data, as_of = world
    batch = score_people(data, as_of, app.models.champions, settings)
    sample = batch.groupby("target").head(5)
    for row in sample.itertuples():
        answer = app.score(ScoreRequest(person_id=row.person_id, targets=[row.target]))
        assert answer.as_of == as_of.to_pydatetime()
        got = answer.scores[0]
        assert got.probability == pytest.approx(row.probability)
        assert (got.score, got.grade) == (row.score, row.grade)
        assert got.expected_value == pytest.approx(row.expected_value)


def test_targets_that_do_not_apply_are_named(app: ScoringApp) -> None:
    answer = app.score(ScoreRequest(history=_history(1), as_of=datetime(2025, 6, 1)))
    assert answer.not_applicable["time_to_close"] == "no champion model yet"
    assert "lead_quality" in answer.not_applicable


def test_unknown_person_and_day(app: ScoringApp) -> None:
    with pytest.raises(ApiError) as err:
        app.score(ScoreRequest(person_id="nobody"))
    assert (err.value.status, err.value.field) == (404, "person_id")
    with pytest.raises(ApiError) as err:
        app.score(ScoreRequest(person_id="nobody", as_of=datetime(1999, 1, 1)))
    assert (err.value.status, err.value.field) == (404, "as_of")
    with pytest.raises(ApiError) as err:
        app.score(ScoreRequest(person_id="nobody", as_of=datetime(1999, 1, 1, 12)))
    assert (err.value.status, err.value.field) == (422, "as_of")


def test_batch_keeps_order_and_reports_unknown_people(app: ScoringApp, world: tuple) -> None:
    _, data, as_of = world
    known = list(build_features(data, as_of).index[:3])
    persons = [{"person_id": known[0]}, {"history": _history(2).model_dump(), "as_of": "2025-06-01"},
               {"person_id": "nobody"}, {"person_id": known[1]}]
    results = app.score_batch(BatchRequest(persons=persons)).results
    assert [r.person_id for r in results] == [known[0], None, "nobody", known[1]]
    assert results[2].error and not results[2].scores
    assert results[1].scores and results[0].scores


def test_batch_limit(app: ScoringApp) -> None:
    limit = app.settings.serving.max_batch_size
    with pytest.raises(ApiError) as err:
        app.score_batch(BatchRequest(persons=[{"person_id": "x"}] * (limit + 1)))
    assert (err.value.status, err.value.field) == (422, "persons")


def test_models_lists_champions_and_missing_targets(app: ScoringApp) -> None:
    listing = app.model_list()
    assert listing.missing == ["time_to_close"]
