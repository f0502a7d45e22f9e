"""CRM write-back: post a score table to a webhook in batches, retry what can succeed later,
and report every row that could not be delivered, with the reason.

A batch is retried with exponential backoff when the failure is temporary (connection
errors, timeouts, 408, 425, 429 and 5xx). Any other answer (400, 401, 422…) will not change
by waiting, so the batch fails at once. The body of each call is
``{"records": [...], "batch": n, "sent_at": ISO}``; a record has the columns of the score
table (see docs/api.md for the field mapping a CRM admin sets up).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
from tenacity import RetryError, Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from features.atomic import write_csv

logger = logging.getLogger(__name__)
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
REPORT_COLUMNS = ("row_number", "person_id", "target", "batch", "reason")


class _Temporary(Exception):
    """A failure worth retrying; carries a reason fit for the report."""


class _Permanent(Exception):
    """A failure that retrying would not fix."""


@dataclass
class PushSettings:
    url: str
    batch_size: int = 500
    attempts: int = 5
    backoff_seconds: float = 1.0
    max_backoff_seconds: float = 30.0
    timeout_seconds: float = 30.0
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass
class PushReport:
    sent_rows: int
    failed_rows: int
    batches: int
    failures: pd.DataFrame

    def to_dict(self) -> dict[str, int]:
        return {"sent_rows": self.sent_rows, "failed_rows": self.failed_rows, "batches": self.batches}


def read_scores(path: Path) -> pd.DataFrame:
    """A score table written by ``radar score`` (.csv, .parquet or .xlsx)."""
    suffix = Path(path).suffix.lower()
    if suffix == ".parquet":
        return pd.read_parquet(path)
    if suffix == ".xlsx":
        return pd.read_excel(path)
    ids = ("person_id", "lead_id", "customer_id", "lead_ids", "customer_ids", "deal_id", "model_version")
    return pd.read_csv(path, dtype={c: str for c in ids})


def records(frame: pd.DataFrame) -> list[dict]:
    """Rows as JSON-ready dicts: NaN becomes null, numpy scalars plain numbers."""
    return json.loads(frame.replace({np.nan: None}).to_json(orient="records", date_format="iso"))


def _batches(frame: pd.DataFrame, size: int) -> Iterator[tuple[int, pd.DataFrame]]:
    for number, start in enumerate(range(0, len(frame), size), start=1):
        yield number, frame.iloc[start:start + size]


def _post_once(client: httpx.Client, settings: PushSettings, body: dict) -> None:
    try:
        response = client.post(settings.url, json=body)
    except httpx.TransportError as err:
        raise _Temporary(f"{type(err).__name__}") from err
    if response.status_code in RETRYABLE_STATUS:
        raise _Temporary(f"HTTP {response.status_code}")
    if response.status_code >= 300:
        raise _Permanent(f"HTTP {response.status_code}: {response.text[:200]}")


def _deliver(client: httpx.Client, settings: PushSettings, body: dict) -> str | None:
    """Post one batch with retries; None when delivered, else why not."""
    retrying = Retrying(
        retry=retry_if_exception(lambda e: isinstance(e, _Temporary)),
        stop=stop_after_attempt(settings.attempts),
        wait=wait_exponential(multiplier=settings.backoff_seconds, max=settings.max_backoff_seconds),
        reraise=False,
    )
    try:
        for attempt in retrying:
            with attempt:
                _post_once(client, settings, body)
    except RetryError as err:
        last = err.last_attempt.exception()
        return f"{last} after {settings.attempts} attempts"
    except _Permanent as err:
        return str(err)
    return None


def push_scores(scores: pd.DataFrame, settings: PushSettings, client: httpx.Client | None = None) -> PushReport:
    """Send every row; never stops at a failed batch, so one bad batch costs only itself."""
    own = client is None
    client = client or httpx.Client(timeout=settings.timeout_seconds, headers=dict(settings.headers))
    failures, sent, batches = [], 0, 0
    try:
        for number, part in _batches(scores.reset_index(drop=True), settings.batch_size):
            batches += 1
            body = {"records": records(part), "batch": number,
                    "sent_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
            reason = _deliver(client, settings, body)
            if reason is None:
                sent += len(part)
                continue
            logger.warning("batch %d (%d rows) not delivered: %s", number, len(part), reason)
            failures.append(_failed_rows(part, number, reason))
    finally:
        if own:
            client.close()
    failed = pd.concat(failures, ignore_index=True) if failures else pd.DataFrame(columns=list(REPORT_COLUMNS))
    return PushReport(sent, len(failed), batches, failed)


def _failed_rows(part: pd.DataFrame, batch: int, reason: str) -> pd.DataFrame:
    # Row numbers count from 1 at the first data row, as the rejects report does.
    return pd.DataFrame({
        "row_number": part.index.to_numpy() + 1,
        "person_id": part["person_id"].to_numpy() if "person_id" in part else None,
        "target": part["target"].to_numpy() if "target" in part else None,
        "batch": batch,
        "reason": reason,
    })


def write_report(report: PushReport, path: Path) -> Path:
    """The failed rows with their reasons (header only when everything was delivered)."""
    return write_csv(report.failures.reindex(columns=list(REPORT_COLUMNS)), Path(path))
