"""Score history and trend: every `radar score` records its points, and the next run's file
and the API's answers say how each score moved."""

from __future__ import annotations

import sqlite3
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from radar.cli import app
from radar.config import Settings
from serving.app import ApiError, ScoringApp, store_errors
from serving.feature_store import FeatureStore, default_store_path, materialize
from serving.history import ScoreHistory, trend_of
from serving.model_store import load_models
from serving.schemas import ScoreRequest


def points(scores: list[int], person: str = "P1", deal: str | None = None) -> pd.DataFrame:
    return pd.DataFrame({
        "person_id": [person] * len(scores), "target": ["lead_quality"] * len(scores),
        "deal_id": [deal] * len(scores), "score": scores, "probability": [s / 100 for s in scores],
        "model_version": ["3"] * len(scores),
    })


def test_trend_words_follow_the_documented_threshold() -> None:
    change = pd.Series([None, 5, 4, 0, -4, -5, -30], dtype=float)
    assert trend_of(change, 5.0).tolist() == ["new", "improving", "steady", "steady", "steady", "declining", "declining"]


def test_previous_score_is_the_latest_point_before_the_day(tmp_path: Path) -> None:
    history = ScoreHistory(f"sqlite:///{tmp_path / 'h.sqlite'}")
    history.record(points([40]), date(2026, 1, 1))
    history.record(points([55]), date(2026, 2, 1))
    history.record(points([10], deal="D9"), date(2026, 2, 1))  # a deal is its own series
    later = history.annotate(points([50]), date(2026, 3, 1), 5.0)
    assert later[["previous_score", "score_change", "trend"]].iloc[0].tolist() == [55, -5, "declining"]
    # Scoring February again sees January, not itself; a re-run of a day replaces its point.
    again = history.annotate(points([60]), date(2026, 2, 1), 5.0)
    assert again["previous_score"].iloc[0] == 40 and again["trend"].iloc[0] == "improving"
    history.record(points([60]), date(2026, 2, 1))
    series = history.series(["P1"], "lead_quality")
    assert series.loc[series["deal_id"] == "", "score"].tolist() == [40, 60]
    assert series.loc[series["deal_id"] == "D9", "score"].tolist() == [10]
    first = history.annotate(points([20], person="P2"), date(2026, 3, 1), 5.0)
    assert pd.isna(first["previous_score"].iloc[0]) and first["trend"].iloc[0] == "new"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_an_api_calls_previous_scores_match_the_tables_on_either_store(backend: str, request, tmp_path: Path) -> None:
    """:meth:`ScoreHistory.previous_of` (the API's read, in the driver's own SQL) gives the
    same previous scores as :meth:`ScoreHistory.previous` (the tables' read), in SQLite and
    in PostgreSQL: every target in one query, a deal its own series, nothing of the day."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    else:
        url = request.getfixturevalue("postgres_server").create_database(f"history_{tmp_path.name[-20:]}".lower())
    history = ScoreHistory(url)
    history.record(points([40]), date(2026, 1, 1))
    history.record(points([55]), date(2026, 2, 1))
    history.record(points([10], deal="D9"), date(2026, 2, 1))
    history.record(points([70], person="P2").assign(target="purchase_probability"), date(2026, 1, 15))
    history.record(points([99]), date(2026, 3, 1))  # the day itself is never its own previous
    keys = [("P1", "lead_quality", ""), ("P1", "lead_quality", "D9"), ("P2", "purchase_probability", ""),
            ("P2", "lead_quality", ""), ("P3", "lead_quality", "")]
    for day in (date(2026, 3, 1), date(2026, 2, 1), date(2026, 1, 1)):
        frame = pd.DataFrame(keys, columns=["person_id", "target", "deal_id"])
        expected = [None if pd.isna(v) else int(v) for v in history.previous(frame, day)]
        assert history.previous_of(keys, day) == expected
    assert history.previous_of(keys, date(2026, 3, 1)) == [55, 10, 70, None, None]
    assert history.previous_of(keys[:1], date(2026, 2, 1)) == [40]
    # A day recorded again replaces its points, on either store.
    history.record(points([61]), date(2026, 2, 1))
    assert history.previous_of(keys[:1], date(2026, 3, 1)) == [61]
    assert history.series(["P1"], "lead_quality").query("deal_id == ''")["score"].tolist() == [40, 61, 99]


def test_a_history_file_locked_by_a_writer_answers_503_not_500(tmp_path: Path) -> None:
    """The API's trend read on a SQLite history another process holds locked: a 503 to
    retry (``store_errors``), as for the feature store, never an unhandled error."""
    path = tmp_path / "h.sqlite"
    history = ScoreHistory(f"sqlite:///{path}", connect_timeout=1)
    history.record(points([40]), date(2026, 1, 1))
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(ApiError) as raised, store_errors():
            history.previous_of([("P1", "lead_quality", "")], date(2026, 2, 1))
        assert raised.value.status == 503 and raised.value.headers == {"Retry-After": "1"}
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert history.previous_of([("P1", "lead_quality", "")], date(2026, 2, 1)) == [40]


def test_two_score_runs_on_different_days_give_the_trend_in_the_file_the_api_and_history(
    trained, world_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared, data, as_of = trained
    # Read the shared champions; write history and the feature store to a folder of our own.
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    env = {"RADAR_WORK_DIR": str(tmp_path / "work"), "RADAR_MLFLOW_TRACKING_URI": shared.tracking_uri}
    settings = Settings(work_dir=tmp_path / "work", mlflow_tracking_uri=shared.tracking_uri)
    first_day, second_day = (as_of - pd.Timedelta(days=30)).date(), as_of.date()
    runner = CliRunner()
    files = []
    for day in (first_day, second_day):
        out = tmp_path / f"scores-{day}.csv"
        result = runner.invoke(app, ["score", str(world_dir), "--as-of", day.isoformat(), "--out", str(out),
                                     "--top-k", "0"], env=env)
        assert result.exit_code == 0, result.output
        files.append(pd.read_csv(out))
    first, second = files
    assert (first["trend"] == "new").all()
    both = second.merge(first, on=["person_id", "target"], suffixes=("", "_before"))
    both = both[both["deal_id"].isna()]  # one row per person and target
    assert len(both) > 100
    assert (both["previous_score"] == both["score_before"]).all()
    assert (both["score_change"] == both["score"] - both["score_before"]).all()
    assert set(both["trend"]) <= {"improving", "steady", "declining"} and len(set(both["trend"])) >= 2

    store = FeatureStore(default_store_path(settings))
    materialize(data, pd.Timestamp(second_day), settings, store)
    scoring = ScoringApp(settings, load_models(settings), store, ScoreHistory.of(settings))
    person = both.iloc[0]
    answer = scoring.score(ScoreRequest(person_id=person["person_id"], targets=[person["target"]], top_k=0))
    got = answer.scores[0]
    assert (got.previous_score, got.trend) == (int(person["previous_score"]), person["trend"])
    series = scoring.score_history(person["person_id"], person["target"])
    assert [p.day for p in series.points] == [first_day, second_day]
    assert [p.score for p in series.points] == [int(person["score_before"]), int(person["score"])]

    # The same through a real BentoML server on loopback: the answer's trend, /history, and
    # clear 4xx answers (never 500) to unknown people and targets.
    import httpx

    from servers import running_server

    key = "history-key-1"
    with running_server(settings, key, "history-server.log") as (url, _):
        client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
        body = {"person_id": person["person_id"], "targets": [person["target"]], "top_k": 0}
        scored = client.post("/score", json=body).json()["scores"][0]
        assert (scored["previous_score"], scored["score_change"], scored["trend"]) == (
            int(person["previous_score"]), int(person["score_change"]), person["trend"])
        answer = client.get("/history", params={"person_id": person["person_id"], "target": person["target"]})
        assert answer.status_code == 200
        assert [p["score"] for p in answer.json()["points"]] == [int(person["score_before"]), int(person["score"])]
        assert client.get("/history", params={"person_id": "nobody"}).status_code == 404
        wrong = client.get("/history", params={"person_id": person["person_id"], "target": "nope"})
        assert wrong.status_code == 422 and "target" in wrong.text


def test_a_materialised_day_records_every_score_in_the_history(trained, world_dir: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """`radar features --materialize` with champions precomputes every answer, and each one
    is a point of the day's history, exactly the scores `radar score` gives that day."""
    from serving.scoring import load_champions, score_people

    shared, data, as_of = trained
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    env = {"RADAR_WORK_DIR": str(tmp_path / "work"), "RADAR_MLFLOW_TRACKING_URI": shared.tracking_uri}
    settings = Settings(work_dir=tmp_path / "work", mlflow_tracking_uri=shared.tracking_uri)
    day = as_of.date()
    result = CliRunner().invoke(app, ["features", str(world_dir), "--as-of", day.isoformat(), "--materialize"], env=env)
    assert result.exit_code == 0, result.output
    assert "answers precomputed" in result.output
    expected = score_people(data, as_of, load_champions(settings), settings)
    points = ScoreHistory.of(settings).series(expected["person_id"].unique().tolist())
    assert (points["day"] == day).all()
    key = ["person_id", "target", "deal_id"]
    expected = expected.assign(deal_id=expected["deal_id"].astype(object).where(expected["deal_id"].notna(), ""))
    joined = expected.merge(points, on=key, how="outer", suffixes=("", "_recorded"), indicator=True)
    assert (joined["_merge"] == "both").all(), joined["_merge"].value_counts()
    assert (joined["score"] == joined["score_recorded"]).all()
    assert joined["probability"].to_numpy() == pytest.approx(joined["probability_recorded"].to_numpy(), rel=1e-9)
