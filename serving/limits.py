"""Rate and size limits for keyed requests: the ASGI gate just inside the API-key check.

* **Rate**: a token bucket per API key, keyed by the key's SHA-256 digest (the key itself is
  never kept). ``serving.rate_limit_per_second`` tokens flow in each second, up to
  ``serving.rate_limit_burst``; a request without a token gets 429 and ``Retry-After``.
  Buckets live in the worker process: with N BentoML workers a key may make up to N times
  the rate in all. ``rate_limit_per_second: 0`` turns the limit off.
* **Size**: a body larger than ``serving.max_request_bytes`` gets 413 before it is read: at
  once from ``Content-Length``, or, for a chunked body, as soon as the bytes received pass
  the limit. ``max_request_bytes: 0`` turns the limit off.

Open paths (probes, metrics, the page's static files) pass untouched. Errors have the API's
JSON shape: ``{"error", "field", "detail"}``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Awaitable, Callable

from radar.config import ServingConfig, load_settings
from serving.auth import KEY_HASH_SCOPE, Receive, Scope, Send, hash_key, is_open_path, presented_key

App = Callable[[Scope, Receive, Send], Awaitable[None]]


def _json(error: str, detail: str, field: str | None = None) -> bytes:
    return json.dumps({"error": error, "field": field, "detail": detail}).encode("utf-8")


class LimitsMiddleware:
    """429 past the key's rate, 413 past the size limit; otherwise the request goes on.

    Settings are read on the first request (as the key check does), so each ``bentoml serve``
    worker uses the environment it runs with; ``config`` fixes them (tests).
    """

    def __init__(self, app: App, config: ServingConfig | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.app = app
        self._clock = clock
        #: digest → [tokens, time of the last refill]; one small list per key, updated in place.
        self._buckets: dict[str, list[float]] = {}
        self._configured = False
        if config is not None:
            self._configure(config)

    def _configure(self, config: ServingConfig) -> None:
        self.rate = float(config.rate_limit_per_second)
        self.burst = float(config.rate_limit_burst)
        self.max_bytes = int(config.max_request_bytes)
        self._too_large = _json("request too large",
                                f"the body may hold at most {self.max_bytes} bytes (serving.max_request_bytes); "
                                "split the batch")
        self._configured = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_open_path(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        if not self._configured:
            self._configure(load_settings().serving)
        if self.rate > 0:
            wait = self._take(scope)
            if wait:
                await _answer(send, 429, _json(
                    "rate limit exceeded",
                    f"at most {self.rate:g} requests per second per API key (burst {self.burst:g}); "
                    f"retry after {wait} s"), ((b"retry-after", str(wait).encode("ascii")),))
                return
        if self.max_bytes:
            length = _content_length(scope)
            if length is None:
                if _has_body(scope):
                    await self._chunked(scope, receive, send)
                    return
            elif length > self.max_bytes:
                await _answer(send, 413, self._too_large)
                return
        await self.app(scope, receive, send)

    def _take(self, scope: Scope) -> int:
        """Take one token from the key's bucket: 0 if there was one, else whole seconds to wait."""
        digest = scope.get(KEY_HASH_SCOPE)
        if digest is None:  # used without the key check in front: hash the presented key
            key = presented_key(scope.get("headers", []))
            digest = hash_key(key) if key is not None else ""
        now = self._clock()
        bucket = self._buckets.get(digest)
        if bucket is None:
            bucket = self._buckets[digest] = [self.burst, now]
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return 0
        bucket[0] = tokens
        return max(1, math.ceil((1.0 - tokens) / self.rate))

    async def _chunked(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A body without Content-Length: read it up to the limit, then hand it on whole."""
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await _answer(send, 413, self._too_large)
                return
            parts.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(parts), "more_body": False}

        await self.app(scope, replay, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _has_body(scope: Scope) -> bool:
    """Whether the request says a body follows without giving its length (chunked)."""
    for name, value in scope.get("headers", ()):
        if name == b"transfer-encoding":
            return True
    return False


async def _answer(send: Send, status: int, body: bytes, extra: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode("ascii")),
                    *extra],
    })
    await send({"type": "http.response.body", "body": body})
