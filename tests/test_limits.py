"""Rate and size limits: the token bucket and the 413 gate, in process and on the real server."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import httpx
import pandas as pd
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from features.contract import CRMData
from radar.config import ServingConfig, Settings, load_settings
from serving.auth import ApiKeyMiddleware, hash_key
from serving.limits import LimitsMiddleware
from servers import running_server


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _client(config: ServingConfig, clock=None, keys: tuple[str, ...] = ("a", "b")) -> TestClient:
    async def echo(request: Request) -> JSONResponse:
        body = await request.body()
        return JSONResponse({"bytes": len(body)})

    async def ok(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/score", echo, methods=["POST"]), Route("/livez", ok)])
    # Added last = outermost: the key check runs first, as in serving/service.py.
    app.add_middleware(LimitsMiddleware, config=config, clock=clock or Clock())
    app.add_middleware(ApiKeyMiddleware, hashes=[hash_key(k) for k in keys])
    return TestClient(app)


def _post(client: TestClient, key: str, body: bytes = b"{}") -> httpx.Response:
    return client.post("/score", content=body, headers={"X-API-Key": key})


def test_token_bucket_per_key_with_retry_after() -> None:
    clock = Clock()
    client = _client(ServingConfig(rate_limit_per_second=2, rate_limit_burst=3), clock)
    assert [_post(client, "a").status_code for _ in range(3)] == [200, 200, 200]
    refused = _post(client, "a")
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "1"
    body = refused.json()
    assert set(body) == {"error", "field", "detail"} and body["error"] == "rate limit exceeded"
    # Another key has its own bucket; probes are never limited.
    assert _post(client, "b").status_code == 200
    assert all(client.get("/livez").status_code == 200 for _ in range(10))
    # Half a second refills one token at 2/s: one more call, then refused again.
    clock.now += 0.5
    assert _post(client, "a").status_code == 200
    assert _post(client, "a").status_code == 429
    clock.now += 10
    assert [_post(client, "a").status_code for _ in range(4)] == [200, 200, 200, 429]


def test_slow_rate_asks_for_a_longer_wait() -> None:
    client = _client(ServingConfig(rate_limit_per_second=0.1, rate_limit_burst=1))
    assert _post(client, "a").status_code == 200
    assert _post(client, "a").headers["retry-after"] == "10"


def test_buckets_are_keyed_by_digest_only() -> None:
    middleware = LimitsMiddleware(app=None, config=ServingConfig(rate_limit_per_second=1))  # type: ignore[arg-type]
    scope = {"type": "http", "path": "/score", "headers": [(b"x-api-key", b"rdr_secret")]}
    assert middleware._take(scope) == 0
    assert list(middleware._buckets) == [hash_key("rdr_secret")]


def test_zero_turns_the_rate_limit_off_and_a_high_rate_lets_a_benchmark_through() -> None:
    for rate in (0, 100_000):
        client = _client(ServingConfig(rate_limit_per_second=rate, rate_limit_burst=1), clock=time.monotonic)
        assert {_post(client, "a").status_code for _ in range(300)} == {200}, rate


def test_limits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RADAR_SERVING__RATE_LIMIT_PER_SECOND", "0")
    monkeypatch.setenv("RADAR_SERVING__MAX_REQUEST_BYTES", "1234")
    serving = load_settings().serving
    assert serving.rate_limit_per_second == 0 and serving.max_request_bytes == 1234
    defaults = ServingConfig()
    assert defaults.rate_limit_per_second == 50 and defaults.rate_limit_burst == 100
    assert defaults.max_request_bytes == 8 * 1024 * 1024


def test_default_size_holds_the_largest_batch_by_id() -> None:
    config = ServingConfig()
    persons = [{"person_id": "P" + "f" * 63, "as_of": "2025-01-01T00:00:00"} for _ in range(config.max_batch_size)]
    request = {"persons": persons, "targets": ["lead_quality", "purchase_probability", "time_to_close",
                                               "churn_by_indifference"], "top_k": 20}
    assert len(json.dumps(request)) * 10 < config.max_request_bytes


def test_bodies_over_the_limit_get_413_by_length_or_while_streaming() -> None:
    client = _client(ServingConfig(rate_limit_per_second=0, max_request_bytes=100))
    assert _post(client, "a", b"x" * 100).json() == {"bytes": 100}
    too_big = _post(client, "a", b"x" * 101)
    assert too_big.status_code == 413 and too_big.json()["error"] == "request too large"
    assert set(too_big.json()) == {"error", "field", "detail"}

    # A generator body is sent chunked (no Content-Length) and handed on whole.
    ok = client.post("/score", content=(b"y" * 30 for _ in range(3)), headers={"X-API-Key": "a"})
    assert ok.status_code == 200 and ok.json() == {"bytes": 90}
    refused = client.post("/score", content=(b"y" * 30 for _ in range(1000)), headers={"X-API-Key": "a"})
    assert refused.status_code == 413 and refused.json()["error"] == "request too large"


def test_a_chunked_body_is_refused_while_it_streams() -> None:
    """The gate stops pulling chunks as soon as they pass the limit: the app never runs."""
    pulled: list[int] = []
    sent: list[dict] = []

    async def receive() -> dict:
        pulled.append(1)
        return {"type": "http.request", "body": b"z" * 30, "more_body": True}  # never ends

    async def send(message: dict) -> None:
        sent.append(message)

    async def app(scope, receive, send) -> None:
        raise AssertionError("the app must not run")

    gate = LimitsMiddleware(app, config=ServingConfig(rate_limit_per_second=0, max_request_bytes=100))
    scope = {"type": "http", "path": "/score", "method": "POST", "headers": [(b"transfer-encoding", b"chunked")]}
    asyncio.run(gate(scope, receive, send))
    assert len(pulled) == 4  # 120 bytes > 100
    assert sent[0]["status"] == 413 and json.loads(sent[1]["body"])["error"] == "request too large"


def test_the_key_check_runs_before_the_limits() -> None:
    client = _client(ServingConfig(rate_limit_per_second=1, rate_limit_burst=1, max_request_bytes=10))
    for _ in range(5):  # unknown keys get 401 and take no token from anyone
        assert _post(client, "nobody", b"x" * 50).status_code == 401
    assert _post(client, "a", b"{}").status_code == 200


# --- the real server ---------------------------------------------------------------------------

KEY = "limits-key-1"


@pytest.fixture(scope="module")
def server(trained: tuple[Settings, CRMData, pd.Timestamp]) -> Iterator[str]:
    env = {"RADAR_SERVING__RATE_LIMIT_PER_SECOND": "2", "RADAR_SERVING__RATE_LIMIT_BURST": "4",
           "RADAR_SERVING__MAX_REQUEST_BYTES": "20000"}
    with running_server(trained[0], KEY, "limits-server.log", **env) as (url, _):
        yield url


def test_real_server_answers_413_for_large_bodies(server: str) -> None:
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    persons = [{"person_id": f"P{i:063d}"} for i in range(400)]  # about 30 kB
    with httpx.Client(base_url=server, headers=headers, timeout=30) as client:
        response = client.post("/score_batch", content=json.dumps({"persons": persons}))
        assert response.status_code == 413, response.text
        assert response.json()["error"] == "request too large"

        def chunked() -> Iterator[bytes]:
            yield b'{"persons": ['
            for i in range(2000):
                yield b'{"person_id": "P%063d"},' % i
            yield b'{"person_id": "x"}]}'

        response = client.post("/score_batch", content=chunked())
        assert response.status_code == 413 and response.json()["field"] is None


def test_real_server_answers_429_with_retry_after(server: str) -> None:
    with httpx.Client(base_url=server, headers={"X-API-Key": KEY}, timeout=30) as client:
        statuses = [client.get("/models") for _ in range(12)]
    codes = [r.status_code for r in statuses]
    assert codes[0] == 200 and 429 in codes, codes
    refused = next(r for r in statuses if r.status_code == 429)
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.json()["error"] == "rate limit exceeded"
    # Probes are not limited even while the key is.
    assert httpx.get(f"{server}/livez").status_code == 200
