"""The real server: `bentoml serve` in a subprocess on a free port, called over HTTP.

Models are trained on a small demo world into a real MLflow SQLite store, features are
materialised into the online store, and one server serves the whole module.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from features.contract import CRMData
from radar.config import Settings
from serving.scoring import load_champions, score_people
from servers import running_server

KEY = "test-key-123"
COMPARED = ("probability", "score", "percentile", "grade", "expected_value", "p_won_30d", "p_won_60d",
            "p_won_90d", "median_days_to_win", "deal_id", "model_version")


@pytest.fixture(scope="module")
def server(trained: tuple[Settings, CRMData, pd.Timestamp]) -> Iterator[dict]:
    settings = trained[0]
    with running_server(settings, KEY, "server.log") as (url, statuses):
        yield {"url": url, "statuses": statuses, "log": Path(settings.work_dir) / "server.log"}


@pytest.fixture(scope="module")
def client(server: dict) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server["url"], headers={"Authorization": f"Bearer {KEY}"}, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def batch(trained: tuple[Settings, CRMData, pd.Timestamp]) -> pd.DataFrame:
    """`radar score`'s answers for everyone at the materialised day."""
    settings, data, as_of = trained
    return score_people(data, as_of, load_champions(settings), settings)


def _people(batch: pd.DataFrame, target: str, n: int = 3) -> list[str]:
    return list(batch.loc[batch["target"] == target, "person_id"].head(n))


# --- probes, auth ---------------------------------------------------------------------------


def test_readyz_is_503_until_the_champions_are_loaded(server: dict) -> None:
    assert server["statuses"][-1] == 200
    assert 503 in server["statuses"], server["statuses"]
    assert httpx.get(f"{server['url']}/livez").status_code == 200


@pytest.mark.parametrize("headers, reason", [
    ({}, "missing API key"),
    ({"Authorization": "Bearer wrong"}, "invalid API key"),
    ({"X-API-Key": "wrong"}, "invalid API key"),
    ({"Authorization": "Basic " + KEY}, "missing API key"),
])
def test_requests_without_a_valid_key_get_401(server: dict, headers: dict, reason: str) -> None:
    response = httpx.post(f"{server['url']}/score", json={"person_id": "x"}, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == reason
    assert httpx.get(f"{server['url']}/models", headers=headers).status_code == 401


def test_the_key_works_in_either_header_and_is_never_logged(server: dict) -> None:
    response = httpx.get(f"{server['url']}/models", headers={"X-API-Key": KEY})
    assert response.status_code == 200
    for path in ("/livez", "/readyz", "/docs.json", "/"):
        assert httpx.get(f"{server['url']}{path}").status_code == 200, path
    assert KEY not in server["log"].read_text(errors="replace")


# --- endpoints ------------------------------------------------------------------------------


def test_models_lists_each_champion(client: httpx.Client, trained: tuple) -> None:
    body = client.get("/models").json()
    champions = load_champions(trained[0])
    assert {m["target"] for m in body["models"]} == set(champions)
    for model in body["models"]:
        assert model["version"] == champions[model["target"]].version
        assert model["source"] == "mlflow" and model["trained_at"]
        assert model["features"] == champions[model["target"]].bundle.feature_names
        assert any(k.startswith("test_") for k in model["test_metrics"])


def test_scores_by_id_equal_batch_scores(client: httpx.Client, batch: pd.DataFrame) -> None:
    for target in batch["target"].unique():
        for person in _people(batch, target):
            response = client.post("/score", json={"person_id": person, "targets": [target], "top_k": 3})
            assert response.status_code == 200, response.text
            _assert_same(response.json()["scores"], batch, person, target)


def test_a_person_is_found_by_the_crms_lead_id_or_customer_id(client: httpx.Client, batch: pd.DataFrame,
                                                               trained: tuple) -> None:
    from features.source_ids import source_ids

    _, data, as_of = trained
    ids = source_ids(data, as_of)
    buyers = ids[ids["customer_id"].notna() & ids["lead_id"].notna()]
    person = next(p for p in _people(batch, "purchase_probability", 200) if p in buyers.index)
    by_person = client.post("/score", json={"person_id": person}).json()
    assert by_person["lead_id"] == ids.loc[person, "lead_id"]
    assert by_person["customer_id"] == ids.loc[person, "customer_id"]
    assert by_person["lead_ids"] == ids.loc[person, "lead_ids"].split(";")
    for kind in ("lead_id", "customer_id"):
        response = client.post("/score", json={kind: ids.loc[person, kind]})
        assert response.status_code == 200, response.text
        assert response.json() == by_person
    # A merged person is found by any of their ids, not only the latest.
    merged = ids[ids["lead_ids"].str.contains(";", na=False)]
    if len(merged):
        first = merged["lead_ids"].iloc[0].split(";")[0]
        assert client.post("/score", json={"lead_id": first}).json()["person_id"] == merged.index[0]
    unknown = client.post("/score", json={"customer_id": "no-such-customer"})
    assert unknown.status_code == 404 and unknown.json()["field"] == "customer_id"
    both = client.post("/score", json={"person_id": person, "lead_id": "x"})
    assert both.status_code == 400 and "one of person_id, lead_id and customer_id" in both.text
    batch_answer = client.post("/score_batch", json={"persons": [{"lead_id": ids.loc[person, "lead_id"]},
                                                                 {"lead_id": "nope"}]}).json()["results"]
    assert batch_answer[0]["person_id"] == person and "unknown lead_id" in batch_answer[1]["error"]


def test_scores_by_history_equal_batch_scores(client: httpx.Client, batch: pd.DataFrame, trained: tuple,
                                              crm_history) -> None:
    as_of = trained[2]
    for target in batch["target"].unique():
        for person in _people(batch, target, 2):
            request = {"person_id": person, "as_of": as_of.isoformat(), "history": crm_history(person)}
            response = client.post("/score", json=request)
            assert response.status_code == 200, response.text
            _assert_same(response.json()["scores"], batch, person, target)


def test_batch_answers_each_person_in_order(client: httpx.Client, batch: pd.DataFrame) -> None:
    people = _people(batch, "purchase_probability", 5)
    response = client.post("/score_batch", json={"persons": [{"person_id": p} for p in people] + [{"person_id": "nobody"}]})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["person_id"] for r in results] == people + ["nobody"]
    for person, result in zip(people, results):
        for score in result["scores"]:
            _assert_same([score], batch, person, score["target"])
    assert results[-1]["scores"] == [] and "unknown person_id" in results[-1]["error"]


def test_answers_say_which_targets_do_not_apply(client: httpx.Client, batch: pd.DataFrame) -> None:
    buyers = set(batch.loc[batch["target"] == "churn_by_indifference", "person_id"])
    leads = [p for p in _people(batch, "lead_quality", 50) if p not in buyers][:1]
    body = client.post("/score", json={"person_id": leads[0]}).json()
    assert "churn_by_indifference" in body["not_applicable"]
    assert {s["target"] for s in body["scores"]} | set(body["not_applicable"]) == {
        "lead_quality", "purchase_probability", "time_to_close", "churn_by_indifference"}


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize("payload, status, field", [
    ({"person_id": "x", "targets": ["nonsense"]}, 400, "targets"),
    ({"person_id": "x", "top_k": 500}, 400, "top_k"),
    ({"person_id": "x", "top_k": "many"}, 400, "top_k"),
    ({"person_id": 12}, 400, "person_id"),
    ({"persn_id": "x"}, 400, "persn_id"),
    ({}, 400, None),
    ({"history": {"orders": [{"timestamp": "2024-01-01", "amount": -5}]}}, 400, "amount"),
    ({"history": {"interactions": [{"timestamp": "yesterday", "type": "call"}]}}, 400, "timestamp"),
    ({"history": {"interactions": [{"timestamp": "2024-01-01", "type": "telepathy"}]}}, 400, "type"),
    ({"history": {}}, 400, "history"),
])
def test_bad_input_names_the_field(client: httpx.Client, payload: dict, status: int, field: str | None) -> None:
    response = client.post("/score", json=payload)
    assert response.status_code == status, response.text
    body = response.json()
    if field:
        assert any(field in (str(e["loc"]) + e["msg"]) for e in body["detail"]), body


def test_rejected_values_are_not_echoed_or_logged(client: httpx.Client, server: dict) -> None:
    secret = "ana.secret@shop.com"
    response = client.post("/score", json={"person_id": "x", "top_k": secret})
    assert response.status_code == 400 and secret not in response.text
    assert secret not in server["log"].read_text(errors="replace")


def test_malformed_json_is_a_400(client: httpx.Client) -> None:
    response = client.post("/score", content=b'{"person_id": ', headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert "json" in response.text.lower()


def test_unknown_person_and_day_are_404(client: httpx.Client) -> None:
    response = client.post("/score", json={"person_id": "nobody"})
    assert response.status_code == 404 and response.json()["field"] == "person_id"
    response = client.post("/score", json={"person_id": "nobody", "as_of": "1999-01-01"})
    assert response.status_code == 404 and response.json()["field"] == "as_of"


def test_a_batch_above_the_limit_is_refused(client: httpx.Client) -> None:
    persons = [{"person_id": f"p{i}"} for i in range(1001)]
    response = client.post("/score_batch", json={"persons": persons})
    assert response.status_code == 422
    assert response.json()["field"] == "persons"


# --- helpers --------------------------------------------------------------------------------


def _assert_same(scores: list[dict], batch: pd.DataFrame, person: str, target: str) -> None:
    mine = [s for s in scores if s["target"] == target]
    assert len(mine) == 1, (person, target, scores)
    expected = batch[(batch["person_id"] == person) & (batch["target"] == target)].iloc[0]
    for column in COMPARED:
        want, got = expected[column], mine[0][column]
        if isinstance(want, float) and np.isnan(want) or want is None or want is pd.NA:
            assert got is None, (column, got)
        elif isinstance(got, float):
            assert got == pytest.approx(float(want), rel=1e-9, abs=1e-9), (person, target, column)
        else:
            assert str(got) == str(want), (person, target, column)
