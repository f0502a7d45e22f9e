"""Radar's own answers in the OpenAPI schema that ``GET /docs.json`` serves.

BentoML writes the schema from the service's pydantic models, but it documents only its own
answers: 200, 400, 404 and 500 on the POST routes, 200 (and FastAPI's 422) on the GET ones.
Radar answers more than that, and a client (or a fuzzer checking every answer against the
schema) must be able to rely on the schema saying so:

- 401 on every keyed route (no key, or a wrong one: ``serving.auth``), with the two ways to
  send a key declared as security schemes;
- 429 (a key over its rate limit), 503 (champions not loaded yet; for /lists and /kpis also
  no CRM folder), and on the POST routes 413 (a body over ``serving.max_request_bytes``) and
  415 (a form-encoded body: ``serving.media``);
- 404 and 422 from the scoring routes (unknown person or day; a batch too large, an ``as_of``
  that is not a day), with Radar's error body rather than BentoML's;
- BentoML's 400 (the request failed validation): its ``detail`` is pydantic's list of errors,
  not the string BentoML's schema announces.

Where the generated schema says what the server does not do, it is corrected: the request
bodies point at the request components, which keep ``null`` where BentoML's inline copies drop
it, and state what the validators demand (a ``person_id`` or a ``history``; a history with at
least one event); the parameters of /lists are non-empty text (filters may repeat); the
200 of ``/score`` loses the nullability of ``person_id`` and ``error`` (BentoML flattens
``Optional``), so it points at the ``PersonScores`` component instead; and every ``as_of`` of
an answer is UTC without an offset (``2026-10-01T00:00:00``, as the data contract stores
times), which is not an RFC 3339 ``date-time``, so it is documented by its pattern.

:class:`OpenApiMiddleware` applies :func:`document` to the schema as it is served.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from serving.auth import is_open_path

SPEC_PATH = "/docs.json"
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "`Authorization: Bearer <key>`"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "`X-API-Key: <key>`"},
}
#: Either header is enough.
SECURITY = [{"bearer": []}, {"apiKey": []}]

ERROR_BODY = {
    "type": "object",
    "title": "ErrorBody",
    "description": "An error Radar answers itself: what went wrong, the field at fault, what to do.",
    "required": ["error"],
    "properties": {
        "error": {"type": "string"},
        "field": {"type": "string", "nullable": True},
        "detail": {"type": "string", "nullable": True},
    },
}
REQUEST_ERROR = {
    "type": "object",
    "title": "RequestError",
    "description": "The request failed validation: which fields and why (the values are never echoed).",
    "required": ["error"],
    "properties": {
        "error": {"type": "string"},
        "detail": {
            "oneOf": [
                {"type": "string"},
                {"type": "array", "items": {
                    "type": "object",
                    "required": ["type", "loc", "msg"],
                    "properties": {"type": {"type": "string"}, "loc": {"type": "array"}, "msg": {"type": "string"}},
                }},
            ],
        },
    },
}
NAIVE_UTC = {
    "type": "string",
    "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?$",
    "description": "UTC, ISO 8601 without an offset.",
}
#: Response models whose ``as_of`` is a naive UTC time.
NAIVE_AS_OF = ("PersonScores", "TargetScore")

REASONS = {
    400: "The request failed validation (malformed JSON, a wrong type, an unknown field).",
    401: "No API key, or not an accepted one.",
    404: "Unknown person, materialised day or list; nobody matching a search; or no feature store.",
    413: "The request body is larger than serving.max_request_bytes.",
    415: "The body is form-encoded; send it as JSON.",
    422: "A valid request Radar cannot answer: too many persons, an as_of that is not a materialised day.",
    429: "This key is over its rate limit; retry after the Retry-After seconds.",
    503: "The champions are not loaded yet (or, for lists and KPIs, no CRM folder is set).",
}
SCORING_ROUTES = ("/score", "/score_batch")
REQUEST_MODELS = {"/score": "ScoreRequestIODescriptor", "/score_batch": "BatchRequestIODescriptor"}
#: What the request models' validators demand, in the schema's words: a person by id or by
#: history (``PersonRequest``), and a history with at least one event (``PersonHistory``).
PERSON_REQUIRES = [{"required": ["person_id"], "properties": {"person_id": {"type": "string"}}},
                   {"required": ["history"], "properties": {"history": {"type": "object"}}}]
HISTORY_REQUIRES = [{"required": [name], "properties": {name: {"type": "array", "minItems": 1}}}
                    for name in ("leads", "interactions", "orders", "deals")]


def _answer(status: int, schema: str) -> dict[str, Any]:
    return {"description": REASONS[status],
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


def document(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec with Radar's answers, security schemes and response times as they are."""
    spec = copy.deepcopy(spec)
    components = spec.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["ErrorBody"] = ERROR_BODY
    schemas["RequestError"] = REQUEST_ERROR
    components["securitySchemes"] = SECURITY_SCHEMES
    for name, requires in (("ScoreRequestIODescriptor", PERSON_REQUIRES), ("PersonRequest", PERSON_REQUIRES),
                           ("PersonHistory", HISTORY_REQUIRES)):
        if name in schemas:
            schemas[name]["anyOf"] = requires
    for name in NAIVE_AS_OF:
        properties = schemas.get(name, {}).get("properties", {})
        if "as_of" in properties:
            properties["as_of"] = {**NAIVE_UTC, "title": "As Of"}
    for path, item in spec.get("paths", {}).items():
        for method, operation in item.items():
            if isinstance(operation, dict) and "responses" in operation:
                _document_operation(path, method, operation, schemas)
    return spec


def _document_operation(path: str, method: str, operation: dict[str, Any], schemas: dict[str, Any]) -> None:
    responses = operation["responses"]

    def add(status: int, schema: str = "ErrorBody") -> None:
        responses[str(status)] = _answer(status, schema)

    if path == "/readyz":
        add(503)
    if is_open_path(path):
        return
    operation["security"] = SECURITY
    for status in (401, 429, 503):
        add(status)
    if method == "post":
        add(400, "RequestError")
        add(413)
        add(415)
    if path in SCORING_ROUTES:
        add(404)
        add(422)
    if path == "/history":
        add(404)
        # FastAPI's own 422 (an empty id, a target that is not one of Radar's) or Radar's
        # (none or more than one of person_id, lead_id, customer_id).
        responses["422"] = {"description": "An empty id, an unknown target, or not exactly one of person_id, "
                            "lead_id and customer_id.", "content": {"application/json": {"schema": {
                                "anyOf": [{"$ref": "#/components/schemas/ErrorBody"},
                                          {"$ref": "#/components/schemas/HTTPValidationError"}]}}}}
    if path == "/find":
        add(404)
        # FastAPI's own 422 (no q, q empty or too long, an unknown kind) or Radar's (q blank,
        # or not a valid e-mail or phone where that kind was asked).
        responses["422"] = {"description": "No query, an empty or blank one, one too long, an unknown kind, or "
                            "a query that is not a valid key of the kind asked.", "content": {
                                "application/json": {"schema": {
                                    "anyOf": [{"$ref": "#/components/schemas/ErrorBody"},
                                              {"$ref": "#/components/schemas/HTTPValidationError"}]}}}}
    if path == "/lists":
        add(404)
        # Non-empty text (empty is refused: leave a parameter out to mean any); a filter may
        # repeat (any of its values), the list name may not.
        for parameter in operation.get("parameters", []):
            if parameter.get("in") == "query":
                text = {"type": "string", "minLength": 1}
                repeats = parameter["name"] != "name"
                parameter["schema"] = {"type": "array", "items": text, "minItems": 1} if repeats else text
                parameter["schema"]["title"] = parameter["name"]
                parameter["allowEmptyValue"] = False
        # FastAPI's own 422 (a parameter of the wrong type) or Radar's (empty, or name twice).
        responses["422"] = {"description": "A parameter given empty, or the list name twice.", "content": {
            "application/json": {"schema": {"anyOf": [{"$ref": "#/components/schemas/ErrorBody"},
                                                      {"$ref": "#/components/schemas/HTTPValidationError"}]}}}}
    if path == "/score" and "PersonScores" in schemas:
        ok = responses.get("200", {}).get("content", {}).get("application/json")
        if ok is not None:
            ok["schema"] = {"$ref": "#/components/schemas/PersonScores"}
    # The inline request schemas lost their nulls (BentoML flattens Optional); the components keep them.
    model = REQUEST_MODELS.get(path)
    body = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if model in schemas and body is not None:
        body["schema"] = {"$ref": f"#/components/schemas/{model}"}


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class OpenApiMiddleware:
    """Passes every request through; the 200 answer of ``GET /docs.json`` is rewritten by
    :func:`document` (the body is small and generated per request, so it is buffered)."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") != SPEC_PATH or scope.get("method") != "GET":
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                await _send_documented(send, start, b"".join(chunks))

        await self.app(scope, receive, capture)


async def _send_documented(send: Send, start: Message, body: bytes) -> None:
    if start["status"] == 200:
        body = json.dumps(document(json.loads(body))).encode("utf-8")
    headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
    headers.append((b"content-length", str(len(body)).encode("latin-1")))
    await send({**start, "headers": headers})
    await send({"type": "http.response.body", "body": body})
