"""CRM write-back against a tiny local webhook that fails some calls on purpose."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest

from serving.push import PushSettings, push_scores, read_scores, records, write_report


class _Webhook(BaseHTTPRequestHandler):
    """Batch 2 fails twice with 503 then succeeds; batch 4 is refused with 422 for good."""

    calls: list[dict] = []
    failures_left: dict[int, int] = {}

    def do_POST(self) -> None:  # noqa: N802 (the standard library's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).calls.append({"batch": body["batch"], "n": len(body["records"]),
                                 "token": self.headers.get("Authorization"), "records": body["records"]})
        status = 200
        if body["batch"] == 4:
            status = 422
        elif self.failures_left.get(body["batch"], 0) > 0:
            self.failures_left[body["batch"]] -= 1
            status = 503
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"ok": %s}' % (b"true" if status == 200 else b"false"))

    def log_message(self, *args: object) -> None:
        """Quiet: the test reads the calls, not the log."""


@pytest.fixture()
def webhook() -> str:
    _Webhook.calls = []
    _Webhook.failures_left = {2: 2}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Webhook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/radar"
    server.shutdown()


def _scores(n: int) -> pd.DataFrame:
    return pd.DataFrame({
        "person_id": [f"P{i:03d}" for i in range(n)],
        "target": "purchase_probability",
        "probability": [i / n for i in range(n)],
        "score": [round(100 * i / n) for i in range(n)],
        "grade": "B",
        "median_days_to_win": float("nan"),
        "as_of": pd.Timestamp("2025-01-15"),
    })


def test_retries_temporary_failures_and_reports_the_rest(webhook: str, tmp_path: Path) -> None:
    settings = PushSettings(url=webhook, batch_size=10, attempts=3, backoff_seconds=0.01,
                            headers={"Authorization": "Bearer crm-token"})
    report = push_scores(_scores(45), settings)
    assert (report.sent_rows, report.failed_rows, report.batches) == (35, 10, 5)
    batches = [c["batch"] for c in _Webhook.calls]
    assert batches.count(2) == 3  # two 503s, then delivered
    assert batches.count(4) == 1  # a 422 is not retried
    assert all(c["token"] == "Bearer crm-token" for c in _Webhook.calls)
    assert list(report.failures["row_number"]) == list(range(31, 41))
    assert set(report.failures["reason"]) == {'HTTP 422: {"ok": false}'}
    path = write_report(report, tmp_path / "report.csv")
    assert pd.read_csv(path)["person_id"].tolist() == [f"P{i:03d}" for i in range(30, 40)]


def test_a_batch_that_keeps_failing_is_reported_with_attempts(webhook: str) -> None:
    _Webhook.failures_left = {1: 10}
    report = push_scores(_scores(5), PushSettings(url=webhook, batch_size=10, attempts=2, backoff_seconds=0.01))
    assert report.failed_rows == 5 and report.failures["reason"].iloc[0] == "HTTP 503 after 2 attempts"


def test_an_unreachable_webhook_is_reported(tmp_path: Path) -> None:
    settings = PushSettings(url="http://127.0.0.1:9/none", attempts=2, backoff_seconds=0.01)
    report = push_scores(_scores(3), settings)
    assert report.failed_rows == 3 and "ConnectError" in report.failures["reason"].iloc[0]


def test_records_are_json_ready(tmp_path: Path) -> None:
    frame = _scores(2)
    row = records(frame)[1]
    assert row["median_days_to_win"] is None and row["as_of"].startswith("2025-01-15")
    frame.to_csv(tmp_path / "s.csv", index=False)
    assert read_scores(tmp_path / "s.csv")["person_id"].tolist() == ["P000", "P001"]


def test_push_match_keys_every_record_by_the_crms_own_id(webhook: str, tmp_path: Path) -> None:
    """A merged person with two lead records gets one record per lead id; a person the CRM
    has no lead for is not sent (there is nothing to upsert on)."""
    from typer.testing import CliRunner

    from radar.cli import app

    scores = _scores(3).assign(lead_id=["L2", None, "L9"], lead_ids=["L1;L2", None, "L9"],
                               customer_id=["C1", "C2", None], customer_ids=["C1", "C2", None])
    path = tmp_path / "scores.csv"
    scores.to_csv(path, index=False)
    runner = CliRunner()
    result = runner.invoke(app, ["push", "--url", webhook, "--scores", str(path), "--match", "lead_id",
                                 "--report", str(tmp_path / "report.csv")])
    assert result.exit_code == 0, result.output
    sent = [r for call in _Webhook.calls for r in call["records"]]
    assert [(r["lead_id"], r["person_id"]) for r in sent] == [("L1", "P000"), ("L2", "P000"), ("L9", "P002")]
    assert sent[0]["score"] == sent[1]["score"] == scores.loc[0, "score"]
    _Webhook.calls = []
    by_customer = runner.invoke(app, ["push", "--url", webhook, "--scores", str(path), "--match", "customer_id",
                                      "--report", str(tmp_path / "report.csv")])
    assert by_customer.exit_code == 0, by_customer.output
    assert [r["customer_id"] for call in _Webhook.calls for r in call["records"]] == ["C1", "C2"]
    wrong = runner.invoke(app, ["push", "--url", webhook, "--scores", str(path), "--match", "email"])
    assert wrong.exit_code == 2 and "--match takes lead_id, customer_id, deal_id" in wrong.output
