"""API keys: creation, storage as SHA-256 hashes, constant-time checks, and the ASGI gate.

Keys come from ``RADAR_API_KEYS`` (comma-separated plain keys, for containers and CI) and
from the file ``serving.api_keys_file`` (one SHA-256 hex digest per line, so a leaked file
does not leak keys). With no key configured at all the server refuses every scoring call:
an open scoring API by accident is worse than a 401 that says why.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from pathlib import Path
from typing import Any

from radar.config import Settings, load_settings

ENV_VAR = "RADAR_API_KEYS"
KEY_PREFIX = "rdr_"
#: Paths served without a key: probes, metrics and the OpenAPI page with its assets.
#: The marketers' page under /ui is static HTML/JS/CSS: it asks for the key and sends it with
#: every data call, so its files carry no data and may be public.
OPEN_PATHS = frozenset({"/", "/livez", "/readyz", "/healthz", "/metrics", "/docs.json", "/schema.json", "/ui"})
OPEN_PREFIXES = ("/static_content/", "/assets/", "/ui/")
#: Scope entry where the gate leaves the accepted key's digest (the rate limit's bucket key).
KEY_HASH_SCOPE = "radar.key_hash"

logger = logging.getLogger(__name__)
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def hash_key(key: str) -> str:
    """The SHA-256 hex digest a key is stored as."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def read_key_hashes(path: Path) -> list[str]:
    """Digests in a keys file (blank lines and ``#`` comments skipped); none if no file."""
    if not Path(path).is_file():
        return []
    lines = (line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines())
    return [line.lower() for line in lines if line and not line.startswith("#")]


def configured_key_hashes(settings: Settings, environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Digests of every accepted key: the environment's and the file's."""
    env = os.environ if environ is None else environ
    plain = [k.strip() for k in env.get(ENV_VAR, "").split(",") if k.strip()]
    return [hash_key(k) for k in plain] + read_key_hashes(settings.serving.api_keys_file)


def key_is_valid(presented: str, hashes: Iterable[str]) -> bool:
    """Whether the key is one of the accepted ones. Every digest is compared, in constant
    time, so the answer's timing tells neither how much matched nor which key it was."""
    return digest_is_accepted(hash_key(presented), hashes)


def digest_is_accepted(digest: str, hashes: Iterable[str]) -> bool:
    """:func:`key_is_valid` for a key already hashed."""
    found = False
    for stored in hashes:
        found |= hmac.compare_digest(digest, stored)
    return found


def create_key(path: Path) -> str:
    """A new random key; its digest is appended to the keys file (created private)."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as handle:
        handle.write(hash_key(key) + "\n")
    return key


def presented_key(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The key in ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``, if any."""
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"x-api-key" and value.strip():
            return value.decode("latin-1").strip()
        if lowered == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


def is_open_path(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


class ApiKeyMiddleware:
    """Answers 401 before any endpoint runs unless the request carries an accepted key.

    Keys are read on the first request, not at import, so ``bentoml serve`` workers pick up
    the environment and the file they run with. Keys are never logged.
    """

    def __init__(self, app: Callable[..., Awaitable[None]], hashes: list[str] | None = None) -> None:
        self.app = app
        self._hashes = hashes

    def _accepted(self) -> list[str]:
        if self._hashes is None:
            self._hashes = configured_key_hashes(load_settings())
            if not self._hashes:
                logger.warning("no API keys configured: set %s or run `radar keys create`", ENV_VAR)
        return self._hashes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_open_path(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        key = presented_key(scope.get("headers", []))
        accepted = self._accepted()
        digest = hash_key(key) if key is not None else None
        if digest is not None and digest_is_accepted(digest, accepted):
            scope[KEY_HASH_SCOPE] = digest
            await self.app(scope, receive, send)
            return
        await _unauthorized(send, "no API key configured on the server" if not accepted else
                            "missing API key" if key is None else "invalid API key")


async def _unauthorized(send: Send, reason: str) -> None:
    body = json.dumps({
        "error": reason,
        "field": None,
        "detail": "send the key as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
    }).encode("utf-8")
    await send({
        "type": "http.response.start",
        "status": 401,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b'Bearer realm="radar"')],
    })
    await send({"type": "http.response.body", "body": body})
