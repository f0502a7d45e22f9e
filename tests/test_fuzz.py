"""API fuzzing, smoke size: Schemathesis against the real server from its own OpenAPI schema.

The same runner as ``python -m benchmarks.fuzz --requests 10000`` (the full run, figures in
docs/reliability.md), on the shared trained world with its CRM folder so every operation
answers: no 5xx, every answer documented by the schema, malformed data rejected, no keyed
route answering without a key. Also the request rules the fuzzing led to, checked directly.
"""

from __future__ import annotations

import json

import httpx
import pandas as pd
import pytest
from pydantic import ValidationError

from benchmarks.fuzz import CHECKS, Fuzz, fuzz_live
from features.contract import CRMData
from features.ingest import IngestReport, LoadResult, write_validated
from features.validation import empty_rejects
from radar.config import Settings
from serving.openapi import document
from serving.schemas import ScoreRequest
from servers import running_server

KEY = "rdr_fuzz-smoke-key"
REQUESTS = 200
#: The smoke run leaves out the coverage phase: its deterministic boundary cases are about
#: 2,000 requests on this world whatever the example count (200 s of the suite on a 2-core
#: machine); the full run keeps every phase.
SMOKE_PHASES = "examples,fuzzing"


@pytest.fixture(scope="module")
def live(trained: tuple[Settings, CRMData, pd.Timestamp], tmp_path_factory: pytest.TempPathFactory):
    settings, data, _ = trained
    crm = write_validated(LoadResult(data, empty_rejects(), IngestReport("trained world", None, {}, None)),
                          tmp_path_factory.mktemp("fuzz") / "validated")
    with running_server(settings, KEY, "fuzz-server.log", RADAR_DATA_DIR=str(crm),
                        RADAR_SERVING__RATE_LIMIT_PER_SECOND="0") as (url, _):
        yield url


@pytest.fixture(scope="module")
def fuzzed(live: str, tmp_path_factory: pytest.TempPathFactory) -> Fuzz:
    return fuzz_live(live, KEY, REQUESTS, examples=50, seed=1, workers=2, work=tmp_path_factory.mktemp("fuzz-work"),
                     phases=SMOKE_PHASES)


def test_no_server_error_and_every_answer_documented(fuzzed: Fuzz) -> None:
    assert fuzzed.requests >= REQUESTS
    assert fuzzed.server_errors == 0, fuzzed.by_status
    assert fuzzed.failures == [] and fuzzed.errors == [], fuzzed.runs[-1].output[-8000:]
    assert fuzzed.passed


def test_every_operation_gets_valid_and_malformed_data(fuzzed: Fuzz) -> None:
    assert {"POST /score", "POST /score_batch", "GET /models", "GET /lists", "GET /kpis", "GET /find",
            "GET /history"} <= set(fuzzed.operations)
    assert all(fuzzed.by_operation[op] > 0 for op in fuzzed.operations), fuzzed.by_operation
    # Without the coverage phase Hypothesis stops early on the batch body (a handful of
    # distinct cases per run); the full run sends it thousands.
    assert fuzzed.by_operation["POST /score"] >= 40 and fuzzed.by_operation["POST /score_batch"] >= 10
    # Scored, refused as malformed, and refused without the key (ignored_auth).
    assert {200, 400, 401} <= set(fuzzed.by_status), fuzzed.by_status
    assert "ignored_auth" in CHECKS and "negative_data_rejection" in CHECKS


def test_served_schema_documents_radar_answers(live: str) -> None:
    spec = httpx.get(f"{live}/docs.json", timeout=30).json()
    score = spec["paths"]["/score"]["post"]
    assert {"200", "400", "401", "404", "413", "415", "422", "429", "503"} <= set(score["responses"])
    assert score["security"] and set(spec["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    assert "security" not in spec["paths"]["/livez"]["get"] and "401" not in spec["paths"]["/livez"]["get"]["responses"]
    assert "401" in spec["paths"]["/models"]["get"]["responses"]
    assert document(spec) == document(document(spec))  # applying it twice changes nothing


def test_form_bodies_and_empty_parameters_are_refused(live: str) -> None:
    headers = {"X-API-Key": KEY}
    form = httpx.post(f"{live}/score", headers=headers | {"Content-Type": "multipart/form-data"}, content=b"{}")
    assert form.status_code == 415 and form.json()["error"] == "unsupported media type"
    empty = httpx.get(f"{live}/lists?channel=", headers=headers)
    assert empty.status_code == 422 and empty.json()["field"] == "channel"
    assert httpx.get(f"{live}/lists?name=a&name=b", headers=headers).status_code == 422


def test_a_repeated_filter_keeps_every_value(live: str) -> None:
    """As docs/api.md says: ``?grade=A&grade=B`` is grade A or B (it used to keep only B)."""
    headers = {"X-API-Key": KEY}
    both = httpx.get(f"{live}/lists?name=drifting_customers&grade=A&grade=B", headers=headers).json()
    assert both["filters"] == {"grade": ["A", "B"]}
    grades = {row["grade"] for row in both["rows"]}
    assert grades <= {"A", "B"}
    one = {g: len(httpx.get(f"{live}/lists?name=drifting_customers&grade={g}", headers=headers).json()["rows"])
           for g in "AB"}
    assert len(both["rows"]) == one["A"] + one["B"]


@pytest.mark.parametrize("body", [
    {"person_id": "p", "top_k": True},
    {"person_id": "p", "top_k": "3"},
    {"person_id": "p", "as_of": 1_700_000_000},
    {"person_id": "p", "as_of": "0"},
    {"person_id": "p", "as_of": "0267-04-29T13:33:14Z"},
    {"history": {"orders": [{"timestamp": "2025-01-01T00:00:00", "amount": False}]}},
    {"history": {"orders": [{"timestamp": "2025-01-01T00:00:00", "amount": "12"}]}},
    {"history": {"leads": [{"created_at": "6517-04-18T12:36:21Z"}]}},
    {"history": {"leads": [{"created_at": "2025-01-01", "attributes": {"vip": True}}]}},
])
def test_malformed_requests_are_invalid(body: dict) -> None:
    with pytest.raises(ValidationError):
        ScoreRequest.model_validate_json(json.dumps(body))


def test_ordinary_requests_stay_valid() -> None:
    day = ScoreRequest.model_validate_json('{"person_id": "p", "as_of": "2025-01-15", "top_k": 3}')
    assert day.as_of == pd.Timestamp("2025-01-15").to_pydatetime()
    order = ScoreRequest.model_validate_json(
        '{"history": {"orders": [{"timestamp": "2025-01-01T10:00:00+02:00", "amount": 12}]}}')
    assert order.history.orders[0].amount == 12.0
