"""What the server can do after start-up, said once in the log and on ``GET /status``.

BentoML's ``/readyz`` only answers 200 or 503 (from ``Radar.__is_ready__``); it cannot say
*why*. The start-up checks here give the reasons: the champions came from BentoML's model
store because the MLflow registry was unreachable (degraded), there are no champions at all
(not ready), or the online feature store file is damaged (degraded: scoring by history still
works, scoring by ``person_id`` answers 404 with the command that rebuilds the store), or the
shared store of ``serving.store_url`` cannot be read (degraded: the server keeps it, and what
needs it answers 503 until it is back).
"""

from __future__ import annotations

import logging
import sqlite3
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from serving.app import ScoringApp

logger = logging.getLogger(__name__)

Status = Literal["loading", "ok", "degraded", "unavailable", "failed"]
REBUILD = "rebuild it with `radar features DIR --as-of DAY --materialize`"


@dataclass
class Health:
    """The server's state for ``/status``: no personal data, no secrets."""

    status: Status
    model_source: str | None = None
    models: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def body(self) -> dict[str, object]:
        return {"status": self.status, "model_source": self.model_source, "models": self.models,
                "problems": self.problems}


LOADING = Health("loading")


def failed(err: BaseException) -> Health:
    """Loading raised: the log has the details, /status the kind."""
    return Health("failed", problems=[f"loading the models failed ({type(err).__name__}): see the server log"])


def store_problem(path: Path) -> str | None:
    """Why the feature store file cannot be used, naming it and the fix; None when it can
    be used (or does not exist yet, which scoring by id already reports as such)."""
    path = Path(path)
    if not path.is_file():
        return None
    claimed, size = _claimed_size(path), path.stat().st_size
    if claimed is not None and size < claimed:
        return f"feature store {path} is cut short ({size:,} of {claimed:,} bytes): {REBUILD}"
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
            latest = conn.execute("SELECT table_name FROM snapshots ORDER BY as_of DESC LIMIT 1").fetchone()
            if latest is not None:
                conn.execute(f'SELECT * FROM "{latest[0]}" LIMIT 1').fetchall()
            verdict = conn.execute("PRAGMA quick_check(1)").fetchone()[0]
            if verdict != "ok":
                return f"feature store {path} is damaged ({verdict}): {REBUILD}"
    except sqlite3.DatabaseError as err:
        return f"feature store {path} is damaged or not a Radar feature store ({err}): {REBUILD}"
    return None


def _claimed_size(path: Path) -> int | None:
    """The size an SQLite file's header says it has (page size × page count), when the
    header is an SQLite header whose page count is valid; else None."""
    with open(path, "rb") as handle:
        header = handle.read(100)
    if len(header) < 100 or not header.startswith(b"SQLite format 3\x00"):
        return None
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    # The page count is valid when the change counter equals "version-valid-for".
    if pages == 0 or header[24:28] != header[92:96]:
        return None
    return page_size * pages


def at_start(app: ScoringApp) -> Health:
    """Check what was loaded, log each problem once, and stop using a damaged feature store
    (by ``person_id`` the API then answers 404 saying how to rebuild it, not a 500)."""
    problems = [app.models.problem] if app.models.problem else []
    if app.store is not None and app.store.path is not None:
        damaged = store_problem(app.store.path)
        if damaged:
            problems.append(damaged)
            app.store = None
    elif app.store is not None:
        # A shared database store is kept even when it cannot be read: it may be down for a
        # moment, and until it is back each request by id says so (503), not 404.
        unreadable = app.store.problem()
        if unreadable:
            problems.append(unreadable)
    models = {t: c.version for t, c in app.models.champions.items()}
    if not models:
        status: Status = "unavailable"
    elif problems:
        status = "degraded"
    else:
        status = "ok"
    for problem in problems:
        # One clear line each, no traceback: these are states to fix, not bugs.
        (logger.error if status == "unavailable" else logger.warning)("Radar %s: %s", status.upper(), problem)
    if status == "unavailable" and not problems:
        problems.append("no champion models to serve")
        logger.error("Radar UNAVAILABLE: no champion models to serve")
    return Health(status, app.models.source, models, problems)
