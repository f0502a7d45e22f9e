"""API keys: hashing, storage, constant-time checks and the ASGI gate."""

from __future__ import annotations

import stat

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from radar.config import Settings, ServingConfig
from serving.auth import (
    ApiKeyMiddleware,
    configured_key_hashes,
    create_key,
    hash_key,
    key_is_valid,
    presented_key,
    read_key_hashes,
)


def test_created_keys_are_stored_as_hashes_only(tmp_path) -> None:
    path = tmp_path / "keys.txt"
    first, second = create_key(path), create_key(path)
    assert first != second and first.startswith("rdr_")
    text = path.read_text()
    assert first not in text and second not in text
    assert read_key_hashes(path) == [hash_key(first), hash_key(second)]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_keys_from_the_environment_and_the_file(tmp_path) -> None:
    path = tmp_path / "keys.txt"
    stored = create_key(path)
    settings = Settings(serving=ServingConfig(api_keys_file=path))
    hashes = configured_key_hashes(settings, {"RADAR_API_KEYS": " a , b,"})
    assert key_is_valid("a", hashes) and key_is_valid("b", hashes) and key_is_valid(stored, hashes)
    assert not key_is_valid("c", hashes) and not key_is_valid("", hashes)
    assert configured_key_hashes(Settings(serving=ServingConfig(api_keys_file=tmp_path / "none")), {}) == []


def test_header_forms() -> None:
    assert presented_key([(b"authorization", b"Bearer abc")]) == "abc"
    assert presented_key([(b"Authorization", b"bearer  abc ")]) == "abc"
    assert presented_key([(b"x-api-key", b"xyz")]) == "xyz"
    assert presented_key([(b"authorization", b"Basic abc")]) is None
    assert presented_key([]) is None


def _client(hashes: list[str]) -> TestClient:
    async def ok(request):
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/score", ok, methods=["POST"]), Route("/livez", ok)])
    app.add_middleware(ApiKeyMiddleware, hashes=hashes)
    return TestClient(app)


def test_the_gate_answers_401_before_the_endpoint() -> None:
    client = _client([hash_key("good")])
    assert client.post("/score", headers={"X-API-Key": "good"}).text == "ok"
    assert client.post("/score", headers={"Authorization": "Bearer good"}).status_code == 200
    response = client.post("/score", headers={"X-API-Key": "bad"})
    assert response.status_code == 401 and response.json()["error"] == "invalid API key"
    assert client.post("/score").json()["error"] == "missing API key"
    assert client.get("/livez").status_code == 200


def test_no_configured_key_refuses_everything() -> None:
    response = _client([]).post("/score", headers={"X-API-Key": "anything"})
    assert response.status_code == 401 and "no API key configured" in response.json()["error"]
