"""Precomputed answers: read by id exactly as they would be computed, never stale; in a SQLite
store and in a PostgreSQL one alike."""

from __future__ import annotations

import json
import logging
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.pipeline import build_features
from radar.config import Settings
from training.datasets import TARGETS
from serving.answers import (StoredForm, _Source, _same_row, materialize_with_answers, precompute_answers,
                             refresh_answers, stale_targets)
from serving.app import ScoringApp
from serving.feature_store import FeatureStore, default_store_path, materialize, materialize_day
from serving.history import ScoreHistory
from serving.model_store import LoadedModels
from serving.schemas import ScoreRequest
from serving.scoring import Champion, load_champions


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def precomputed(request: pytest.FixtureRequest, trained: tuple,
                tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, str, dict]:
    """The shared world's feature store with every answer precomputed, once for the module
    and backend (each test copies it again before writing): a copy of the SQLite file, or
    the day materialised into a database of the test run's PostgreSQL server."""
    settings, data, as_of = trained
    if request.param == "sqlite":
        location = str(tmp_path_factory.mktemp("answers") / "feature_store.sqlite")
        shutil.copy(default_store_path(settings), location)
        store = FeatureStore(location)
    else:
        location = "answers_template"
        store = FeatureStore(request.getfixturevalue("postgres_server").create_database(location))
        materialize(data, as_of, settings, store)
    done = precompute_answers(_app(settings, store, load_champions(settings)))
    store.close()  # a database copied as a template must have nobody connected
    return settings, location, done


@pytest.fixture()
def copied(request: pytest.FixtureRequest, precomputed: tuple, tmp_path: Path) -> Iterator[tuple[Settings, FeatureStore]]:
    """The precomputed store, copied for one test to write to."""
    settings, location, _ = precomputed
    if location.endswith(".sqlite"):
        mine = tmp_path / "feature_store.sqlite"
        shutil.copy(location, mine)
        store = FeatureStore(mine)
    else:
        server = request.getfixturevalue("postgres_server")
        store = FeatureStore(server.create_database(f"answers_{uuid.uuid4().hex[:10]}", template=location))
    yield settings, store
    store.close()


def _app(settings: Settings, store: FeatureStore, champions: dict[str, Champion], precompute: bool = True,
         top_k: int = 5, chunk_rows: int | None = None) -> ScoringApp:
    chunk = {"precompute_chunk_rows": chunk_rows} if chunk_rows else {}
    serving = settings.serving.model_copy(update={"precompute_answers": precompute, "precomputed_top_k": top_k, **chunk})
    return ScoringApp(settings.model_copy(update={"serving": serving}), LoadedModels(champions=champions), store)


def _people(store: FeatureStore, n: int = 40) -> list[str]:
    everyone = store.person_ids(store.days()[-1])
    return everyone[:: max(1, len(everyone) // n)]


class _Computing(Exception):
    pass


def test_a_precomputed_answer_is_byte_for_byte_the_computed_one(copied, precomputed, monkeypatch) -> None:
    settings, store = copied
    champions = load_champions(settings)
    stored = _app(settings, store, champions)
    done = precomputed[2]
    assert set(done) == set(champions) and all(n > 0 for n in done.values())
    assert stale_targets(stored) == []
    computing = _app(settings, store, champions, precompute=False)
    answers = {}
    for person in _people(store):
        for top_k in (0, 5):
            request = ScoreRequest(person_id=person, top_k=top_k)
            answers[(person, top_k)] = computing.score(request).model_dump_json()
    # Reading must not compute anything: every target of every person comes from the store,
    # and no feature is read (only who is stored and which targets apply).
    monkeypatch.setattr(ScoringApp, "target_records", lambda *a, **k: (_ for _ in ()).throw(_Computing()))
    reads: list[bool] = []
    original = FeatureStore.read_rows
    monkeypatch.setattr(FeatureStore, "read_rows",
                        lambda self, ids, day=None, features=True: reads.append(features) or original(self, ids, day, features))
    for (person, top_k), expected in answers.items():
        assert stored.score(ScoreRequest(person_id=person, top_k=top_k)).model_dump_json() == expected, (person, top_k)
    assert reads == [False] * len(answers)
    one = next(iter(answers))[0]
    cut = stored.score(ScoreRequest(person_id=one, targets=["purchase_probability"]))
    assert [s.target for s in cut.scores] == ["purchase_probability"] and len(cut.scores[0].reasons) <= 5
    # Another number of reasons than were stored: computed (the top 3 are not always the
    # first 3 of the top 5: reasons that say the same thing are merged among 2 × k candidates).
    for top_k in (3, 6):
        reads.clear()
        with pytest.raises(_Computing):
            stored.score(ScoreRequest(person_id=one, targets=["purchase_probability"], top_k=top_k))
        assert reads == [False, True]  # the features are read for what is computed


def test_answers_of_another_champion_version_are_never_served(copied, monkeypatch) -> None:
    settings, store = copied
    champions = load_champions(settings)
    # A new purchase champion; the other targets' answers stay valid.
    promoted = {t: Champion(c.bundle, c.version + "-next") if t == "purchase_probability" else c
                for t, c in champions.items()}
    app = _app(settings, store, promoted)
    assert stale_targets(app) == ["purchase_probability"]
    calls = []
    original = ScoringApp.target_records
    monkeypatch.setattr(ScoringApp, "target_records",
                        lambda self, target, *a, **k: calls.append(target) or original(self, target, *a, **k))
    answer = app.score(ScoreRequest(person_id=_people(store)[0], targets=["purchase_probability"]))
    assert [s.model_version for s in answer.scores] == [promoted["purchase_probability"].version]
    assert calls == ["purchase_probability"]  # computed, not read
    # The server's refresh makes the new champion's answers, and then they are read.
    assert set(refresh_answers(app)) == {"purchase_probability"}
    assert stale_targets(app) == []


def test_a_rematerialised_day_drops_its_answers(copied, trained) -> None:
    settings, store = copied
    _, data, as_of = trained
    champions = load_champions(settings)
    app = _app(settings, store, champions)
    day = store.days()[-1]
    assert store.answer_set(day, "purchase_probability") is not None
    # The day written again from less data: the old answers would now be wrong.
    fewer = data.orders[data.orders["timestamp"] < as_of - pd.Timedelta(days=30)]
    materialize(type(data)(**{**data.tables(), "orders": fewer}), as_of, settings, store)
    assert all(store.answer_set(day, t) is None for t in champions)
    person = _people(store)[3]
    fresh = _app(settings, store, champions, precompute=False).score(ScoreRequest(person_id=person))
    assert app.score(ScoreRequest(person_id=person)).model_dump_json() == fresh.model_dump_json()


def test_by_history_the_population_figures_are_read_from_either_store(copied, trained, crm_history) -> None:
    """A history sent in the request is scored against the store's latest population (its
    expected values): the same answer whether the store is the SQLite file or PostgreSQL."""
    settings, store = copied
    _, data, as_of = trained
    champions = load_champions(settings)
    person = _people(store)[5]
    request = ScoreRequest(person_id=person, as_of=as_of.to_pydatetime(), history=crm_history(person))
    here = _app(settings, store, champions).score(request)
    assert [s.expected_value for s in here.scores if s.expected_value is not None]
    reference = _app(settings, FeatureStore(default_store_path(settings)), champions).score(request)
    assert here.model_dump_json() == reference.model_dump_json()


def _every_answer(store: FeatureStore) -> dict[tuple[str, str], object]:
    day = store.days()[-1]
    found = store.read_answers(day, list(TARGETS), store.person_ids(day))
    return {(t, pid): json.loads(text) for t, answers in found.items() for pid, text in answers.items()}


def test_answers_from_the_features_just_written_are_those_read_back(copied, trained, monkeypatch) -> None:
    """Materialising scores the day from memory (no read back of every row), and every
    stored answer is the one precomputed from the store."""
    settings, store = copied
    _, data, as_of = trained
    expected = _every_answer(store)
    written = materialize_day(data, as_of, settings, store)
    assert _every_answer(store) == {}
    asked: list[int] = []
    original = FeatureStore.read_rows
    monkeypatch.setattr(FeatureStore, "read_rows", lambda self, ids, *a: asked.append(len(ids)) or original(self, ids, *a))
    # In passes of 1,000 here, at once in the answers read back: a pass's size changes nothing.
    assert len(written.features) > 2_000
    done = precompute_answers(_app(settings, store, load_champions(settings), chunk_rows=1_000), written=written)
    # The population figures and the sample checked against the store; nothing else.
    assert asked == [0, _Source.CHECKED_ROWS]
    assert sum(done.values()) == len(expected)
    assert _every_answer(store) == expected


def test_materialising_with_answers_writes_the_day_every_answer_and_the_days_history(copied, trained,
                                                                                    tmp_path) -> None:
    """What `radar features --materialize` runs: the day, then every answer (the champions
    loaded while the day is written) equal to those precomputed from the store, each score
    recorded as a point of that day; with precomputing off, the day alone."""
    settings, store = copied
    _, data, as_of = trained
    expected = _every_answer(store)
    mine = settings.model_copy(update={"work_dir": tmp_path, "mlflow_tracking_uri": settings.tracking_uri})
    done = materialize_with_answers(data, as_of, mine, store)
    assert set(done.champions) == set(load_champions(settings)) and set(done.seconds) == {"store", "champions", "answers"}
    assert _every_answer(store) == expected and sum(done.answers.values()) == len(expected)
    points = ScoreHistory.of(mine).series(store.person_ids(done.written.as_of))
    assert len(points) and set(points["day"].astype(str)) == {done.written.as_of.isoformat()}
    off = mine.model_copy(update={"serving": mine.serving.model_copy(update={"precompute_answers": False})})
    again = materialize_with_answers(data, as_of, off, store)
    assert again.answers == {} and again.champions == {} and _every_answer(store) == {}


def test_features_in_memory_read_exactly_as_the_store_gives_them(copied, trained) -> None:
    """Every row of the day in memory equals its stored row (a -0.0 reads as 0.0, as SQLite
    keeps it); a frame that does not (another value than was written) is read back instead."""
    _, data, as_of = trained
    settings, store = copied
    features = build_features(data, as_of, settings.features)
    number = next(c for c in features.columns if features[c].dtype == np.float64)
    features.iloc[0, features.columns.get_loc(number)] = -0.0
    written = materialize_day(data, as_of, settings, store, features=features)
    memory = StoredForm(written)
    ours, our_eligible = memory.rows(np.arange(len(memory)))
    found = store.read_rows(ours.ids.tolist(), written.as_of)
    at = {pid: i for i, pid in enumerate(found.rows.ids.tolist())}
    assert len(at) == len(memory) and found.missing == []
    assert all(_same_row(ours, our_eligible, j, found.rows, found.eligible, at[pid])
               for j, pid in enumerate(ours.ids.tolist()))
    assert np.signbit(ours.column(number)[0]) == np.signbit(found.rows.column(number)[at[ours.ids[0]]]) == False  # noqa: E712
    assert _Source(store, written.as_of, written).memory is not None
    changed = written.features.copy()
    changed.iloc[-1, changed.columns.get_loc(number)] += 1.0
    with pytest.MonkeyPatch.context() as patch:
        messages: list[str] = []
        patch.setattr(logging.getLogger("serving.answers"), "warning", lambda msg, *a: messages.append(msg % a))
        source = _Source(store, written.as_of, type(written)(written.as_of, changed, written.eligible, written.persons))
    assert source.memory is None and source.n == len(memory)
    assert messages and str(ours.ids[-1]) in messages[0]
