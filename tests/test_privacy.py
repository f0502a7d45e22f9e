"""No e-mail, phone number or name leaves Radar through logs, errors, reports or MLflow.

A fresh small flow runs end to end — demo world → validate → features (materialised) →
train into a temporary MLflow SQLite store → score → lists → report — with every log record
of every library written to a file, every command's output captured, and then a real server
answers good and bad requests (bad ones carrying e-mails and phone numbers). Then every
captured text, every error body and every file Radar wrote is scanned for the demo's
personal values, read from the generated CSVs: e-mails (as written and normalised), their
local parts (the demo's names: ``elena.obrien339892``), ``first.last`` names, and phone
numbers as written, in E.164, as national numbers and as bare digits.

The only files exempt are the CRM itself: the raw input and the validated tables, which
hold the CRM's contact columns by design (the rejects and the report beside them are
scanned).
"""

from __future__ import annotations

import io
import json
import logging
import re
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pandas as pd
import phonenumbers
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from radar.cli import app
from radar.config import Settings
from radar.demo import generate_world
from servers import running_server

KEY = "privacy-key-9"
CUSTOMERS = 2000
#: Fewer snapshots and trees than the defaults: the flow is the same, the training quicker.
QUICK_TRAINING = {"RADAR_TRAINING__N_SNAPSHOTS": "6", "RADAR_TRAINING__MODEL__MAX_TREES": "60"}
SEED = 11
PERSON_TABLES = ("leads", "interactions", "orders", "deals")

EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
LOCAL_RE = re.compile(r"[a-z]+(?:\.[a-z]+)?\d+")
DOTTED_RE = re.compile(r"[a-z]+\.[a-z]+")
PHONE_RE = re.compile(r"\+?\(?\d[\d \-./()]{5,}\d")
DATE_LIKE = re.compile(r"\d{4}-\d{2}-\d{2}|\d{2}:\d{2}")


@dataclass
class Needles:
    """The demo's personal values in the forms a leak could take."""

    emails: set[str] = field(default_factory=set)
    locals: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)
    phone_digits: set[str] = field(default_factory=set)

    @classmethod
    def from_crm(cls, crm: Path) -> Needles:
        out = cls()
        for table in PERSON_TABLES:
            frame = pd.read_csv(crm / f"{table}.csv", dtype=str, usecols=["email", "phone", "country"]
                                if table == "leads" else ["email", "phone"])
            for email in frame["email"].dropna():
                normal = email.strip().lower()
                out.emails.add(normal)
                local = normal.partition("@")[0]
                out.locals.add(local)
                name = re.sub(r"\d+$", "", local)
                if "." in name:
                    out.names.add(name)
            regions = frame["country"] if "country" in frame else pd.Series("GB", index=frame.index)
            for phone, region in zip(frame["phone"], regions.fillna("GB")):
                if isinstance(phone, str):
                    out.add_phone(phone, region)
        return out

    def add_phone(self, phone: str, region: str) -> None:
        digits = re.sub(r"\D", "", phone)
        self.phone_digits.add(digits)
        try:
            number = phonenumbers.parse(phone, region)
        except phonenumbers.NumberParseException:
            return
        national = str(number.national_number)
        self.phone_digits |= {national, "0" + national, f"{number.country_code}{national}"}

    def found_in(self, text: str) -> list[str]:
        low = text.lower()
        hits = [m for m in EMAIL_RE.findall(low) if m in self.emails]
        hits += [m for m in LOCAL_RE.findall(low) if m in self.locals]
        hits += [m for m in DOTTED_RE.findall(low) if m in self.names]
        for candidate in PHONE_RE.findall(low):
            if DATE_LIKE.search(candidate):
                continue
            digits = re.sub(r"\D", "", candidate)
            if len(digits) >= 7 and digits in self.phone_digits:
                hits.append(candidate)
        return hits


def _readable(path: Path) -> str:
    """A file's text as a leak would show in it: Parquet and Excel are decoded first."""
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pandas().to_csv()
    data = path.read_bytes()
    if data[:2] == b"PK":  # .xlsx and other zips: scan every member
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return "\n".join(archive.read(n).decode("utf-8", "replace") for n in archive.namelist())
    return data.decode("utf-8", "replace")


@dataclass
class Flow:
    root: Path
    crm: Path
    validated: Path
    settings: Settings
    texts: dict[str, str] = field(default_factory=dict)  # captured outputs, logs, error bodies


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flow]:
    root = tmp_path_factory.mktemp("privacy")
    crm = root / "crm"
    generate_world(n_customers=CUSTOMERS, seed=SEED, out_dir=crm)
    work = root / "work"
    work.mkdir()
    settings = Settings(work_dir=work, mlflow_tracking_uri=f"sqlite:///{work / 'mlflow.db'}")
    validated = work / "validated"
    env = {"RADAR_WORK_DIR": str(work), "RADAR_MLFLOW_TRACKING_URI": settings.tracking_uri,
           "RADAR_SERVING__API_KEYS_FILE": str(work / "api_keys.txt"), **QUICK_TRAINING}
    out = Flow(root, crm, validated, settings)

    # Every record of every logger, at every level, into one file.
    log_file = work / "all-loggers.log"
    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    top = logging.getLogger()
    old_level = top.level
    top.addHandler(handler)
    top.setLevel(logging.DEBUG)
    runner = CliRunner()
    as_of = None
    steps = [
        ["validate", str(crm), "--out", str(validated)],
        ["features", str(validated), "--as-of", "{as_of}", "--materialize", "--out", str(work / "features.parquet")],
        ["train", str(validated), "--metrics-out", str(work / "metrics.json")],
        ["score", str(validated), "--out", str(work / "scores.csv")],
        ["lists", str(validated), "--out", str(work / "lists")],
        ["report", str(validated), "--out", str(work / "report.html")],
    ]
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for step in steps:
                if as_of is None and "{as_of}" in step:
                    days = pd.read_parquet(validated / "interactions.parquet", columns=["timestamp"])["timestamp"]
                    as_of = (days.max() + pd.Timedelta(days=1)).date().isoformat()
                args = [a.replace("{as_of}", as_of or "") for a in step]
                result = runner.invoke(app, args, env=env, catch_exceptions=False)
                assert result.exit_code == 0, (step[0], result.output)
                out.texts[f"output of radar {step[0]}"] = result.output + (result.stderr or "")
        out.texts["warnings"] = "\n".join(f"{w.category.__name__}: {w.message}" for w in caught)
    finally:
        top.removeHandler(handler)
        top.setLevel(old_level)
        handler.close()
    out.texts["log records"] = log_file.read_text(encoding="utf-8", errors="replace")
    yield out


@pytest.fixture(scope="module")
def needles(flow: Flow) -> Needles:
    found = Needles.from_crm(flow.crm)
    assert len(found.emails) > 1000 and len(found.phone_digits) > 1000 and len(found.names) > 100
    return found


@pytest.fixture(scope="module")
def served(flow: Flow, needles: Needles) -> Flow:
    """A real server over the flow's store answers good and bad requests."""
    email = sorted(needles.emails)[0]
    raw_phone = pd.read_csv(flow.crm / "leads.csv", dtype=str)["phone"].dropna().iloc[0]
    scores = pd.read_csv(flow.root / "work" / "scores.csv", dtype=str)
    person = scores["person_id"].iloc[0]
    bad_requests = [
        ("post", "/score", {"json": {"person_id": email}}),
        ("post", "/score", {"json": {"person_id": raw_phone, "targets": ["lead_quality"]}}),
        ("post", "/score", {"json": {"person_id": "x", "email": email, "phone": raw_phone}}),
        ("post", "/score", {"json": {"person_id": email, "top_k": raw_phone}}),
        ("post", "/score", {"json": {"person_id": email, "as_of": raw_phone}}),
        ("post", "/score", {"content": ('{"person_id": "%s", "phone": "%s"' % (email, raw_phone)).encode(),
                            "headers": {"content-type": "application/json"}}),
        ("post", "/score", {"json": {"history": {"interactions": [{"timestamp": email, "type": "call"}],
                                                 "orders": [{"timestamp": "2024-01-01", "amount": raw_phone}]}}}),
        ("post", "/score", {"json": {"history": {"leads": [{"created_at": raw_phone, "lead_id": email}]}}}),
        ("post", "/score_batch", {"json": {"persons": [{"person_id": email}, {"person_id": raw_phone}, {"phone": email}]}}),
        ("post", "/score_batch", {"json": {"persons": [{"person_id": email}, {"person_id": raw_phone}]}}),
        ("get", "/lists", {"params": {"name": email}}),
        ("get", "/lists", {"params": {"name": raw_phone, "owner": email}}),
        ("post", "/score", {"json": {"person_id": "x"}, "headers": {"X-API-Key": email}}),
        ("post", "/score", {"json": {"person_id": "x"}, "headers": {"Authorization": f"Bearer {raw_phone}"}}),
    ]
    good_requests = [
        ("get", "/models", {}),
        ("post", "/score", {"json": {"person_id": person, "top_k": 3}}),
        ("post", "/score_batch", {"json": {"persons": [{"person_id": p} for p in scores["person_id"].head(5)]}}),
        ("get", "/lists", {}),
        ("get", "/kpis", {}),
    ]
    bodies = []
    with running_server(flow.settings, KEY, "privacy-server.log", RADAR_DATA_DIR=str(flow.validated)) as (url, _):
        with httpx.Client(base_url=url, headers={"X-API-Key": KEY}, timeout=60) as client:
            for method, path, kwargs in good_requests:
                response = client.request(method.upper(), path, **kwargs)
                assert response.status_code == 200, (path, response.text)
            for method, path, kwargs in bad_requests:
                response = client.request(method.upper(), path, **kwargs)
                body = response.text
                if response.status_code == 200:  # a batch: each person's own error
                    body = json.dumps([r.get("error") for r in response.json()["results"]])
                    assert any(r.get("error") for r in response.json()["results"]), body
                else:
                    assert 400 <= response.status_code < 500, (path, kwargs, response.status_code, body)
                bodies.append(f"{method} {path} -> {response.status_code}: {body}")
    flow.texts["error bodies"] = "\n".join(bodies)
    flow.texts["server log"] = (flow.root / "work" / "privacy-server.log").read_text(errors="replace")
    return flow


def _scanned_files(flow: Flow) -> list[Path]:
    """Every file Radar wrote, except the CRM's own tables (raw and validated)."""
    exempt = {flow.validated / f"{t}.parquet" for t in (*PERSON_TABLES, "spend")}
    return [p for p in sorted(flow.root.rglob("*")) if p.is_file() and flow.crm not in p.parents
            and p not in exempt and (flow.validated / "origins") not in p.parents]


def test_the_scanner_finds_every_form_of_a_value(needles: Needles) -> None:
    email = sorted(needles.emails)[0]
    local = email.partition("@")[0]
    name = sorted(needles.names)[0]
    national = sorted(d for d in needles.phone_digits if len(d) >= 9)[0]
    for text in (f"x {email.upper()} y", f"id={local};", f"Hello {name.title()}!", f"call {national[:3]} {national[3:]}",
                 f"({national[:3]}) {national[3:6]}-{national[6:]}"):
        assert needles.found_in(text), text
    assert not needles.found_in("2024-03-01 12:00:00 auc=0.812345 P006e8726ebc87d78 a***@shop.com#1f3a")


def test_no_personal_value_in_outputs_logs_or_error_bodies(served: Flow, needles: Needles) -> None:
    assert "rejects" in served.texts["output of radar validate"]
    assert "POST /score" in served.texts["server log"] or "/score" in served.texts["server log"]
    assert served.texts["error bodies"].count("->") == 14
    leaks = {name: needles.found_in(text)[:5] for name, text in served.texts.items()}
    assert not any(leaks.values()), {k: v for k, v in leaks.items() if v}


def test_no_personal_value_in_any_written_file(served: Flow, needles: Needles) -> None:
    files = _scanned_files(served)
    names = {p.name for p in files}
    # The scan covers the stores and reports it must: MLflow's database and artifacts, the
    # feature store, rejects, lists, scores and the KPI report.
    assert {"mlflow.db", "rejects.csv", "report.json", "report.html", "scores.csv", "lists.xlsx"} <= names, names
    assert any("mlartifacts" in p.parts for p in files) and any(p.suffix == ".sqlite" for p in files)
    rejects = pd.read_csv(served.validated / "rejects.csv", dtype=str)
    assert rejects["raw"].str.contains(r"\*\*\*@").any()  # rejected rows keep their e-mails, masked
    leaks = {str(p.relative_to(served.root)): needles.found_in(_readable(p))[:5] for p in files}
    assert not any(leaks.values()), {k: v for k, v in leaks.items() if v}
