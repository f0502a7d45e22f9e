"""Bodies of the scoring routes are JSON: a form encoding is refused with 415.

BentoML reads a body sent as ``multipart/form-data`` or ``application/x-www-form-urlencoded``
as a form and maps its fields onto the request model; Radar's requests are nested JSON, so a
form can never be right, and a multipart body without its ``boundary`` made BentoML fail with
500. Every other body (with or without ``Content-Type: application/json``) is parsed as JSON,
as before, and a bad one gets BentoML's 400.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from serving.auth import Receive, Scope, Send, is_open_path

App = Callable[[Scope, Receive, Send], Awaitable[None]]
FORM_TYPES = ("multipart/", "application/x-www-form-urlencoded")
UNSUPPORTED = json.dumps({
    "error": "unsupported media type",
    "field": None,
    "detail": "send the body as JSON with 'Content-Type: application/json'",
}).encode("utf-8")


def is_form(content_type: bytes) -> bool:
    return content_type.decode("latin-1").strip().lower().startswith(FORM_TYPES)


class JsonBodyMiddleware:
    """415 for a form-encoded body on a keyed route; everything else passes through."""

    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not is_open_path(scope.get("path", "")):
            for name, value in scope.get("headers", ()):
                if name.lower() == b"content-type" and is_form(value):
                    await send({"type": "http.response.start", "status": 415, "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(UNSUPPORTED)).encode("ascii"))]})
                    await send({"type": "http.response.body", "body": UNSUPPORTED})
                    return
        await self.app(scope, receive, send)
