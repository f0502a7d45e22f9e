"""Several scoring servers behind a load balancer share one store (``serving.store_url``):
real ``bentoml serve`` processes over one real PostgreSQL server, which the test stops and
starts again under them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pandas as pd
import pytest
from typer.testing import CliRunner

from radar.cli import app as cli
from serving.app import ScoringApp
from serving.feature_store import FeatureStore, default_store_path
from serving.model_store import LoadedModels
from serving.schemas import ScoreRequest
from serving.scoring import load_champions
from servers import running_server

KEY = "shared-store-key-123"
#: What an answer by id says whichever store it was read from (trends need the history).
COMPARED = ("target", "deal_id", "probability", "score", "percentile", "grade", "expected_value",
            "model_version", "reasons")


@pytest.fixture(scope="module")
def own_postgres() -> Iterator:
    """A PostgreSQL server of this module's own: the test stops and starts it."""
    from postgres import postgres_bin, running_postgres

    if postgres_bin() is None:
        pytest.skip("no PostgreSQL binaries under /usr/lib/postgresql/*/bin: install Debian's postgresql package")
    with running_postgres() as server:
        yield server


def _by_id(client: httpx.Client, person: str, **extra: object) -> httpx.Response:
    return client.post("/score", json={"person_id": person, **extra})


def _compared(answer: dict) -> list[dict]:
    return [{k: s.get(k) for k in COMPARED} for s in answer["scores"]]


@pytest.mark.slow
def test_servers_share_one_postgresql_store_and_answer_503_while_it_is_down(trained: tuple, world_dir: Path,
                                                                             own_postgres, tmp_path: Path) -> None:
    settings, data, as_of = trained
    url = own_postgres.url()
    day = as_of.date().isoformat()
    # `radar features --materialize` with the shared store set: the day, its deals and ids,
    # and every precomputed answer go to PostgreSQL, the day's scores to its history.
    env = {"RADAR_WORK_DIR": str(tmp_path / "cli"), "RADAR_MLFLOW_TRACKING_URI": settings.tracking_uri,
           "RADAR_SERVING__STORE_URL": url}
    made = CliRunner().invoke(cli, ["features", str(world_dir), "--as-of", day, "--materialize"], env=env)
    assert made.exit_code == 0, made.output
    said = " ".join(made.output.split())  # as printed, whatever the terminal's width
    assert f"feature store {url}" in said and "precomputed for" in said
    assert not (tmp_path / "cli" / "feature_store.sqlite").exists()
    store = FeatureStore(url)
    champions = load_champions(settings)
    assert store.days() == [as_of.date()] and set(store.answer_sets(as_of.date())) == set(champions)
    everyone = store.person_ids(as_of.date())
    people = everyone[:: max(1, len(everyone) // 6)][:6]
    # The same answers as from the shared world's own SQLite store, computed in process.
    local = ScoringApp(settings, LoadedModels(champions=champions), FeatureStore(default_store_path(settings)))
    expected = {p: _compared(local.score(ScoreRequest(person_id=p)).model_dump(mode="json")) for p in people}

    def serve(stack: ExitStack, name: str) -> httpx.Client:
        # Each server has a work dir of its own, empty: whatever it reads by id is in PostgreSQL.
        mine = settings.model_copy(update={"work_dir": tmp_path / name})
        mine.work_dir.mkdir()
        base, _ = stack.enter_context(running_server(mine, KEY, f"{name}.log", RADAR_SERVING__STORE_URL=url))
        return stack.enter_context(httpx.Client(base_url=base, headers={"Authorization": f"Bearer {KEY}"}, timeout=30))

    with ExitStack() as stack:
        one, two = serve(stack, "one"), serve(stack, "two")
        for client in (one, two):
            assert client.get("/status").json()["status"] == "ok"
        answers = {}
        for person in people:
            first, second = _by_id(one, person), _by_id(two, person)
            assert first.status_code == second.status_code == 200, (first.text, second.text)
            assert first.json() == second.json()
            assert _compared(first.json()) == expected[person], person
            answers[person] = first.json()
        # The history the materialisation recorded, read through either server.
        points = two.get("/history", params={"person_id": people[0]}).json()["points"]
        assert {p["day"] for p in points} == {day} and len(points) == len(answers[people[0]]["scores"])
        # A day written by another process is there for every server at once.
        earlier = as_of - pd.Timedelta(days=28)
        from serving.feature_store import materialize

        materialize(data, earlier, settings, store)
        for person in people[:3]:
            first = _by_id(one, person, as_of=earlier.date().isoformat())
            second = _by_id(two, person, as_of=earlier.date().isoformat())
            assert first.status_code == second.status_code == 200 and first.json() == second.json()
            assert first.json()["as_of"].startswith(earlier.date().isoformat())

        # The database goes down: 503 with a retry, never a 500, and nothing about where it is.
        store.close()
        own_postgres.stop()
        for client in (one, two):
            down = _by_id(client, people[0])
            assert down.status_code == 503, down.text
            assert down.headers["Retry-After"] == "1" and url not in down.text
            assert client.get("/livez").status_code == 200
        # A server started meanwhile is ready, degraded, and says why.
        three = serve(stack, "three")
        status = three.get("/status").json()
        assert status["status"] == "degraded" and any("cannot be reached" in p for p in status["problems"]), status
        assert _by_id(three, people[0]).status_code == 503

        # Back: every server answers again, the same answers, without a restart.
        own_postgres.start()
        for client in (one, two, three):
            for person in people[:3]:
                again = _by_id(client, person)
                assert again.status_code == 200, again.text
                assert again.json() == answers[person]
    for name in ("one", "two", "three"):
        log = (tmp_path / name / f"{name}.log").read_text(errors="replace")
        # The outage is a line per request in the log, not a traceback or a 500.
        assert "store unavailable" in log and "Traceback" not in log and "status=500" not in log, name
        assert not (tmp_path / name / "feature_store.sqlite").exists()
