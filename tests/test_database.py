"""Database sources: a CRM in PostgreSQL (a real server, tests/postgres.py), SQLite or
DuckDB loads, validates, builds features and scores exactly as the same CRM in files; the
mapping's ``table:`` and ``query:``; rejects name the table and the row's key; the shared
feature store and score history in PostgreSQL (``serving.store_url``)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml
from typer.testing import CliRunner

from features.database import database_url, is_database_url
from features.errors import RadarInputError
from features.ingest import load_crm
from features.pipeline import build_features
from postgres import copy_world
from radar.cli import app
from radar.config import Settings
from serving.app import ScoringApp
from serving.feature_store import FeatureStore
from serving.history import ScoreHistory
from serving.model_store import load_models
from serving.schemas import ScoreRequest
from serving.scoring import load_champions, score_people


def canonical(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows in one order: a database table without a primary key has no order of its own."""
    return frame.sort_values(list(frame.columns), kind="stable").reset_index(drop=True)


def counts(report) -> dict[str, tuple]:
    return {name: (t.read, t.accepted, t.rejected, t.top_reasons, t.attribute_columns)
            for name, t in report.tables.items()}


def engine_for(url: str) -> sa.Engine:
    return sa.create_engine(database_url(url))


@pytest.fixture(scope="module")
def world_in_postgres(postgres_server, world_dir: Path) -> str:
    """The shared session world, loaded into its own PostgreSQL database."""
    url = postgres_server.create_database("world")
    copy_world(url, world_dir)
    return url


@pytest.fixture(scope="module")
def from_files(world_dir: Path, trained):
    return load_crm(world_dir, settings=trained[0])


def test_a_world_in_postgresql_validates_builds_features_and_scores_as_from_files(
    trained, from_files, world_in_postgres: str
) -> None:
    settings, _, as_of = trained
    from_db = load_crm(world_in_postgres, settings=settings)
    assert counts(from_db.report) == counts(from_files.report)
    assert from_db.report.identity.to_dict() == from_files.report.identity.to_dict()
    assert from_db.report.source == world_in_postgres  # no password in it to hide
    for name, frame in from_files.data.tables().items():
        pd.testing.assert_frame_equal(canonical(from_db.data.tables()[name]), canonical(frame), check_exact=True)
    # The same rows rejected for the same reasons, named by table and key rather than file.
    assert set(from_db.rejects["source_file"]) == set(from_db.report.tables) - {
        t for t, r in from_db.report.tables.items() if not r.rejected}
    assert (from_db.rejects["source_file"] == from_db.rejects["table"]).all()
    same = ["table", "key", "field", "value", "reason", "kind"]
    pd.testing.assert_frame_equal(canonical(from_db.rejects[same]), canonical(from_files.rejects[same]))
    assert from_files.rejects.loc[from_files.rejects["table"] == "leads", "key"].str.startswith("lead_id=L").all()

    features_files = build_features(from_files.data, as_of, settings.features)
    features_db = build_features(from_db.data, as_of, settings.features)
    pd.testing.assert_frame_equal(features_db.sort_index(), features_files.sort_index(), check_exact=True)

    champions = load_champions(settings)
    assert champions
    keys = ["target", "person_id", "deal_id"]
    scores_files = score_people(from_files.data, as_of, champions, settings, top_k=2)
    scores_db = score_people(from_db.data, as_of, champions, settings, top_k=2)
    order = [k for k in keys if k in scores_files.columns]
    pd.testing.assert_frame_equal(
        scores_db.sort_values(order).reset_index(drop=True).astype({"reasons": str}),
        scores_files.sort_values(order).reset_index(drop=True).astype({"reasons": str}),
        check_exact=True,
    )


@pytest.mark.parametrize("backend", ["sqlite", "duckdb"])
def test_a_world_in_an_embedded_database_loads_as_from_files(backend: str, trained, from_files, world_dir: Path,
                                                              tmp_path: Path) -> None:
    if backend == "duckdb":
        pytest.importorskip("duckdb_engine", reason="DuckDB sources need duckdb-engine (the dev extras have it)")
    url = f"{backend}:///{tmp_path / ('crm.' + backend)}"
    copy_world(url, world_dir)
    from_db = load_crm(url, settings=trained[0])
    assert counts(from_db.report) == counts(from_files.report)
    for name, frame in from_files.data.tables().items():
        pd.testing.assert_frame_equal(canonical(from_db.data.tables()[name]), canonical(frame), check_exact=True)


# --- the mapping: table:, query:, names, words, markers and formats as for files ----------------

CONTACTS = pd.DataFrame({
    "Ref": ["A1", "A2", "A3", "A4", "T9"],
    "Signed up": ["03/04/2025 09:30", "15/04/2025 17:05", "Select", "01/05/2025 08:00", "02/05/2025 10:00"],
    "Origin": ["Google Ads", "Salon", "Google Ads", "Bouche à oreille", "Google Ads"],
    "Etat": ["Nouveau", "Client", "Nouveau", "N/A", "Nouveau"],
    "Courriel": ["ana@example.org", "ben@example.org", "", "dee@example.org", "test@example.org"],
    "Test row": ["0", "0", "0", "0", "1"],
})
ACTIVITY = pd.DataFrame({
    "Who": ["A1", "A1", "A2", "A4"],
    "When": ["05/04/2025 10:00", "06/04/2025 11:15", "16/04/2025 09:00", "pas de date"],
    "What": ["Visite", "Appel", "Visite", "Visite"],
})


def mapping_for(source: str) -> dict:
    """One mapping: French column names and words, day-first dates, 'Select' as missing."""
    leads = {
        "columns": {"Ref": "lead_id", "Signed up": "created_at", "Origin": "source", "Etat": "status",
                    "Courriel": "email"},
        "values": {"status": {"Nouveau": "new", "Client": "converted"},
                   "source": {"Google Ads": "paid_search", "Salon": "events", "Bouche à oreille": "referral"}},
        "date_formats": ["%d/%m/%Y %H:%M"],
    }
    interactions = {
        "columns": {"Who": "lead_id", "When": "timestamp", "What": "type"},
        "values": {"type": {"Visite": "web_visit", "Appel": "call"}},
        "date_formats": ["%d/%m/%Y %H:%M"],
    }
    if source == "files":
        leads["file"], interactions["file"] = "contacts.csv", "activity.csv"
    else:
        # SQL of the user's own: a filter, a cast and a time with colons, sent as written.
        leads["query"] = ('SELECT "Ref", "Signed up", "Origin", "Etat", "Courriel" FROM crm.contacts '
                          """WHERE "Test row"::int = 0 AND "Signed up" <> '01/01/2020 00:00' ORDER BY "Ref\"""")
        interactions["table"] = "crm.activity"
    return {"missing_markers": ["", "Select", "N/A"], "tables": {"leads": leads, "interactions": interactions}}


def test_a_mapping_with_query_and_table_maps_database_rows_exactly_as_files(postgres_server, tmp_path: Path) -> None:
    folder = tmp_path / "files"
    folder.mkdir()
    CONTACTS[CONTACTS["Test row"] == "0"].drop(columns="Test row").to_csv(folder / "contacts.csv", index=False)
    ACTIVITY.to_csv(folder / "activity.csv", index=False)
    url = postgres_server.create_database("mapped")
    engine = engine_for(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE SCHEMA crm")
    CONTACTS.to_sql("contacts", engine, schema="crm", index=False)
    ACTIVITY.to_sql("activity", engine, schema="crm", index=False)
    engine.dispose()
    for source in ("files", "database"):
        (tmp_path / f"{source}.yaml").write_text(yaml.safe_dump(mapping_for(source), allow_unicode=True),
                                                 encoding="utf-8")
    settings = Settings(work_dir=tmp_path / "work")
    files = load_crm(folder, tmp_path / "files.yaml", settings=settings)
    db = load_crm(url, tmp_path / "database.yaml", settings=settings)

    assert counts(db.report) == counts(files.report)
    assert db.report.tables["leads"].files == ["query for leads"]
    assert db.report.tables["interactions"].files == ["crm.activity"]
    for name, frame in files.data.tables().items():
        pd.testing.assert_frame_equal(db.data.tables()[name], frame, check_exact=True)
    leads = db.data.leads.set_index("lead_id")
    assert list(leads.index) == ["A1", "A2", "A4"]  # A3 has no date ('Select'), T9 is filtered out
    assert leads.loc["A2", "status"] == "converted" and leads.loc["A4", "source"] == "referral"
    assert pd.isna(leads.loc["A4", "status"])
    assert leads.loc["A1", "created_at"] == pd.Timestamp("2025-04-03 09:30")
    bad_date = db.rejects[db.rejects["table"] == "interactions"].iloc[0]
    assert bad_date["source_file"] == "crm.activity" and bad_date["row_number"] == 4
    assert "unparseable date 'pas de date'" in bad_date["reason"]


def test_a_bad_row_in_a_database_table_is_rejected_with_the_table_and_its_key(postgres_server) -> None:
    """Typed columns (integer key, timestamp, numeric amount) read as the text a CSV export
    would hold; rows come in primary-key order; a bad row is kept with its key and reason."""
    url = postgres_server.create_database("typed")
    engine = engine_for(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE orders (order_no integer PRIMARY KEY, customer_id text, "
                             "timestamp timestamp, amount numeric(10, 2), status text, paid boolean)")
        # Inserted out of order: the primary key orders the read.
        conn.exec_driver_sql("INSERT INTO orders VALUES "
                             "(30, 'C3', '2025-03-01 10:00:00', 19.90, 'paid', true), "
                             "(10, 'C1', '2025-01-05 08:30:00', 120.00, 'paid', true), "
                             "(20, 'C2', '2025-02-11 12:00:00', -5.00, 'paid', false), "
                             "(40, NULL, '2025-04-01 09:00:00', 7.50, 'paid', NULL)")
    engine.dispose()
    loaded = load_crm(url, settings=Settings())
    orders = loaded.data.orders
    assert orders["customer_id"].tolist() == ["C1", "C3"]
    assert orders["timestamp"].tolist() == [pd.Timestamp("2025-01-05 08:30"), pd.Timestamp("2025-03-01 10:00")]
    assert orders["amount"].tolist() == [120.0, 19.9]
    rejects = loaded.rejects.set_index("key")
    assert set(rejects.index) == {"order_no=20", "order_no=40"}
    negative = rejects.loc["order_no=20"]
    assert (negative["table"], negative["source_file"], negative["row_number"]) == ("orders", "orders", 2)
    assert negative["reason"] == "negative amount -5" and negative["kind"] == "below_minimum"
    assert json.loads(negative["raw"]) == {"order_no": "20", "customer_id": "C2", "timestamp": "2025-02-11T12:00:00",
                                           "amount": "-5.00", "status": "paid", "paid": "false"}
    assert rejects.loc["order_no=40", "kind"] == "no_person_key"


def test_database_sources_fail_with_one_clear_message(postgres_server, tmp_path: Path) -> None:
    url = postgres_server.create_database("empty")
    with pytest.raises(RadarInputError, match="no CRM tables found in the database"):
        load_crm(url, settings=Settings())
    mapping = tmp_path / "m.yaml"
    mapping.write_text("tables:\n  leads:\n    table: crm.nothing_here\n", encoding="utf-8")
    with pytest.raises(RadarInputError, match="no table or view 'crm.nothing_here' \\(for leads\\)"):
        load_crm(url, mapping, settings=Settings())
    with pytest.raises(RadarInputError, match="source is a file or folder"):
        load_crm(tmp_path, mapping, settings=Settings())
    mapping.write_text("tables:\n  leads:\n    query: SELECT nonsense FROM nowhere\n", encoding="utf-8")
    with pytest.raises(RadarInputError, match="cannot read query for leads: .*nowhere") as caught:
        load_crm(url, mapping, settings=Settings())
    assert "SELECT" not in str(caught.value)  # the driver's reason, not the statement
    closed = f"postgresql://radar:hunter2@127.0.0.1:{postgres_server.port + 1}/crm"
    with pytest.raises(RadarInputError, match="cannot connect to the database") as caught:
        load_crm(closed, settings=Settings())
    assert "hunter2" not in str(caught.value) and "radar:***@" in str(caught.value)
    with pytest.raises(RadarInputError, match="no such sqlite database file"):
        load_crm(f"sqlite:///{tmp_path / 'missing.db'}", settings=Settings())
    assert not (tmp_path / "missing.db").exists()
    assert is_database_url("postgresql://h/db") and not is_database_url(str(tmp_path)) and not is_database_url(tmp_path)


def test_radar_validate_reads_a_database_url_and_never_prints_its_password(
    postgres_server, world_in_postgres: str, from_files, tmp_path: Path
) -> None:
    # The test server trusts local connections, so any password connects; it must not show.
    with_password = world_in_postgres.replace(f"{postgres_server.user}@", f"{postgres_server.user}:s3cret-pw@")
    out = tmp_path / "validated"
    result = CliRunner().invoke(app, ["validate", with_password, "--out", str(out)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "s3cret-pw" not in result.output and "***" in result.output
    assert f"{from_files.report.tables['interactions'].read:,}" in result.output
    assert "s3cret-pw" not in (out / "report.json").read_text(encoding="utf-8")
    rejects = pd.read_csv(out / "rejects.csv", dtype=str, keep_default_na=False)
    assert len(rejects) == len(from_files.rejects)


# --- the shared store: features and score history in PostgreSQL ----------------------------------


def test_the_score_history_in_postgresql_gives_the_trend_and_the_series(trained, postgres_server) -> None:
    """serving.store_url puts the score history in PostgreSQL, where several scoring servers
    share it: two days of points give the second day's trend, and /history both points."""
    shared, data, as_of = trained
    url = postgres_server.create_database("history")
    settings = shared.model_copy(update={"serving": shared.serving.model_copy(update={"store_url": url})})
    history = ScoreHistory.of(settings)
    assert history.engine.dialect.name == "postgresql"
    models = load_models(shared, "mlflow")
    store = FeatureStore(Path(shared.work_dir) / "feature_store.sqlite")
    people = list(store.read_day().eligible["purchase_probability"][:3])
    scores = score_people(data, as_of, load_champions(shared), shared, persons=people)
    scores = scores[scores["target"] == "purchase_probability"]
    day_one, day_two = date(2026, 9, 1), as_of.date()
    history.record(scores.assign(score=scores["score"] - 10), day_one)
    history.record(scores, day_two)
    app = ScoringApp(settings, models, store, history)
    answer = app.score(ScoreRequest(person_id=people[0], targets=["purchase_probability"]))
    assert answer.scores[0].previous_score == answer.scores[0].score - 10
    assert answer.scores[0].trend == "improving"
    series = app.score_history(people[0], "purchase_probability")
    assert [p.day for p in series.points] == [day_one, day_two]
    with engine_for(url).connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM score_history").scalar() == 2 * len(people)
    history.engine.dispose()


def test_a_shared_store_that_cannot_be_reached_degrades_the_server_and_answers_503(trained, crm_history) -> None:
    """The server starts with serving.store_url down (nothing listens on the port): ready,
    degraded and saying why; what reads the store answers 503 with a retry (never a 500, and
    never naming the database); what only fills caches at start logs and goes on."""
    from servers import free_port

    from serving.answers import refresh_answers
    from serving.app import ApiError, build_app, store_errors
    from serving.find import find_answer
    from serving.health import at_start
    from serving.monitor import publish_store_drift
    from serving.schemas import PersonHistory
    from serving.ui_api import views_day

    shared, data, as_of = trained
    closed = f"postgresql://radar@127.0.0.1:{free_port()}/radar_store"
    settings = shared.model_copy(update={"serving": shared.serving.model_copy(update={"store_url": closed})})
    app = build_app(settings, "mlflow")
    health = at_start(app)
    assert health.status == "degraded" and app.store is not None  # kept: it may be back in a moment
    assert [p for p in health.problems if "cannot be reached" in p and closed in p], health.problems
    person = str(data.leads["person_id"].iloc[0])
    lead = str(data.leads["lead_id"].iloc[0])
    asked = [lambda: app.score(ScoreRequest(person_id=person)),
             lambda: app.score(ScoreRequest(lead_id=lead)),
             lambda: app.score(ScoreRequest(person_id=person, as_of=as_of.to_pydatetime(),
                                            history=PersonHistory.model_validate(crm_history(person)))),
             lambda: app.score_history(person),
             lambda: find_answer(None, app.store, lead, None, settings)]
    for call in asked:
        with pytest.raises(ApiError) as caught, store_errors():
            call()
        assert caught.value.status == 503 and caught.value.headers == {"Retry-After": "1"}
        assert "127.0.0.1" not in caught.value.error and caught.value.detail is None
    assert refresh_answers(app) == {}
    assert publish_store_drift(app.store, app.models.champions, settings) is None
    assert views_day(settings, data) == as_of  # the data's own last day until the store is back
