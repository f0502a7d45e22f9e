"""The online feature store: what is written for a day is read back unchanged, from a
SQLite file and from a real PostgreSQL server (``serving.store_url``) alike."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import date

import numpy as np
import pandas as pd
import pytest

from features.ingest import load_crm
from features.pipeline import build_features
from radar.config import Settings
from radar.demo import generate_world
from serving.feature_store import FeatureStore, StoreUnavailable, UnknownDay, materialize
from serving.scoring import eligible
from training.datasets import TARGETS, data_span


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("world") / "crm"
    generate_world(n_customers=300, seed=3, out_dir=out)
    settings = Settings(work_dir=tmp_path_factory.mktemp("radar"))
    data = load_crm(out, settings=settings).data
    return settings, data, data_span(data)[1].normalize()


@pytest.fixture(params=["sqlite", "postgresql"])
def new_store(request: pytest.FixtureRequest, tmp_path) -> Iterator[Callable[[], FeatureStore]]:
    """Makes empty stores of one backend: a SQLite file, or a fresh database on the test
    run's PostgreSQL server; every one is closed at the end."""
    made: list[FeatureStore] = []

    def make() -> FeatureStore:
        if request.param == "sqlite":
            store = FeatureStore(tmp_path / f"store-{len(made)}.sqlite")
        else:
            server = request.getfixturevalue("postgres_server")
            store = FeatureStore(server.create_database(f"store_{uuid.uuid4().hex[:10]}"))
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


def test_features_and_targets_round_trip(world, new_store) -> None:
    settings, data, as_of = world
    store = new_store()
    n = materialize(data, as_of, settings, store)
    features = build_features(data, as_of, settings.features)
    assert n == len(features)
    people = list(features.index[::7])
    rows = store.read(people + ["nobody"])
    assert rows.as_of == as_of.date() and rows.missing == ["nobody"]
    assert list(rows.features.columns) == list(features.columns)
    expected = features.loc[people]
    numeric = [c for c in features.columns if pd.api.types.is_numeric_dtype(features[c])]
    np.testing.assert_array_equal(rows.features[numeric].to_numpy(), expected[numeric].to_numpy())
    for column in set(features.columns) - set(numeric):
        assert list(rows.features[column].astype(object).where(rows.features[column].notna(), None)) == \
            list(expected[column].astype(object).where(expected[column].notna(), None)), column
    for target in TARGETS:
        want = eligible(target, data, features, as_of, settings).intersection(people)
        assert set(rows.eligible[target]) == set(want), target


def test_days_are_kept_apart_and_replaced(world, new_store) -> None:
    settings, data, as_of = world
    store = new_store()
    earlier = as_of - pd.Timedelta(days=30)
    materialize(data, earlier, settings, store)
    materialize(data, as_of, settings, store)
    materialize(data, as_of, settings, store)
    assert store.days() == [earlier.date(), as_of.date()]
    assert store.read([]).as_of == as_of.date()
    assert store.read([], earlier.date()).as_of == earlier.date()
    with pytest.raises(UnknownDay):
        store.read([], date(1999, 1, 1))


def _same_rows(one, other) -> None:
    """Two FeatureRows hold the same ids and columns, value for value (NaN where NaN)."""
    assert one.ids.tolist() == other.ids.tolist()
    assert one.names == other.names
    for name in one.names:
        left, right = one.column(name), other.column(name)
        if left.dtype == object:
            assert left.tolist() == right.tolist(), name
        else:
            np.testing.assert_array_equal(left, right, err_msg=name)


def test_a_day_in_postgresql_reads_back_exactly_as_from_sqlite(world, tmp_path, postgres_server) -> None:
    """Everything the server reads by id: features, targets, open deals, CRM ids both
    ways, the stored order, the population figures and precomputed answers."""
    settings, data, as_of = world
    lite = FeatureStore(tmp_path / "store.sqlite")
    shared = FeatureStore(postgres_server.create_database("same_as_sqlite"))
    try:
        for store in (lite, shared):
            materialize(data, as_of, settings, store)
        day = as_of.date()
        assert shared.days() == lite.days() == [day]
        assert shared.person_ids(day) == lite.person_ids(day)
        everyone = lite.person_ids(day)
        whole_shared, whole_lite = shared.read_day(), lite.read_day()  # a day read whole is in no given order
        pd.testing.assert_frame_equal(whole_shared.features.sort_index(), whole_lite.features.sort_index(),
                                      check_exact=True)
        for target in TARGETS:
            assert sorted(whole_shared.eligible[target]) == sorted(whole_lite.eligible[target])
        some = everyone[::5] + ["nobody"]
        a, b = shared.read_rows(some), lite.read_rows(some)
        _same_rows(a.rows, b.rows)
        assert a.missing == b.missing == ["nobody"] and a.population == b.population
        assert all(np.array_equal(a.eligible[t], b.eligible[t]) for t in TARGETS)
        # Time to close reads each open deal's own row beside its person's, in person then
        # deal order.
        closing = lite.read_rows(everyone).rows.take(np.flatnonzero(lite.read_rows(everyone).eligible["time_to_close"]))
        assert len(closing) > 0
        deals_lite, deals_shared = lite.read_deals(day, closing), shared.read_deals(day, closing)
        assert len(deals_lite) >= len(closing)
        _same_rows(deals_shared, deals_lite)
        ids = lite.read_ids(day, everyone)
        assert shared.read_ids(day, everyone) == ids
        customers = [p for p, kinds in ids.items() if "customer_id" in kinds]
        assert customers, "the world should have customers with a lead id and a customer id"
        for person in customers[:10] + everyone[:20]:
            for kind, values in ids.get(person, {}).items():
                for value in values:
                    assert shared.find_person(kind, value) == lite.find_person(kind, value) == (day, person)
        assert shared.find_person("lead_id", "L-none") == (day, None)
        # Precomputed answers: written, read, and dropped when the day is written again.
        answers = [(p, f'[{{"target": "lead_quality", "n": {i}}}]') for i, p in enumerate(everyone[:50])]
        for store in (lite, shared):
            store.write_answers(day, "lead_quality", "7", 5, answers)
        wanted = everyone[:60]
        assert shared.read_answers(day, ["lead_quality", "churn_by_indifference"], wanted) == \
            lite.read_answers(day, ["lead_quality", "churn_by_indifference"], wanted) == \
            {"lead_quality": dict(answers), "churn_by_indifference": {}}
        assert shared.answer_sets(day) == lite.answer_sets(day) == {"lead_quality": ("7", 5)}
        materialize(data, as_of, settings, shared)
        assert shared.answer_sets(day) == {} and shared.read_answers(day, ["lead_quality"], wanted) == {"lead_quality": {}}
    finally:
        shared.close()
        lite.close()


def test_postgresql_orders_text_by_code_point_whatever_the_database_collation(world, postgres_server) -> None:
    """Deals are read in person then deal order as Python sorts them (by code point), also
    from a database whose own collation sorts "a" before "B"; people and a merged person's
    CRM ids come back in the order written (oldest first), not sorted."""
    import sqlalchemy as sa

    engine = sa.create_engine(postgres_server.url("postgres").replace("postgresql://", "postgresql+psycopg://"),
                              isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql('DROP DATABASE IF EXISTS "linguistic"')
        conn.exec_driver_sql("CREATE DATABASE linguistic TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'und' "
                             "LOCALE 'C'")
        assert conn.exec_driver_sql("SELECT 'a' < 'B' COLLATE \"und-x-icu\"").scalar()
    engine.dispose()
    store = FeatureStore(postgres_server.url("linguistic"))
    people = ["Zoe", "adam", "Bea", "ünal"]
    settings, data, as_of = world
    features = build_features(data, as_of, settings.features).iloc[:4].set_axis(pd.Index(people, name="person_id"))
    deals = pd.DataFrame({"deal_id": ["d9", "D1", "x", "y"], "deal_stage": [1.0, 2.0, 3.0, 4.0]},
                         index=pd.Index(["Zoe", "adam", "adam", "Bea"], name="person_id"))
    try:
        ids = pd.DataFrame({"lead_id": ["L9", "L2", "L5", "L4"], "customer_id": [None, "C2", None, None],
                            "lead_ids": ["L9", "L7;L2", "L5", "L8;L4;L6"], "customer_ids": [None, "C2", None, None]},
                           index=pd.Index(people, name="person_id"))
        store.write(features, {"time_to_close": features.index}, date(2026, 1, 5), deals.reindex(
            columns=["deal_id", *[c for c in _deal_columns() if c != "deal_id"]]), ids)
        assert store.person_ids(date(2026, 1, 5)) == people  # the order written
        assert store.read_ids(date(2026, 1, 5), people) == {
            "Zoe": {"lead_id": ["L9"]}, "adam": {"lead_id": ["L7", "L2"], "customer_id": ["C2"]},
            "Bea": {"lead_id": ["L5"]}, "ünal": {"lead_id": ["L8", "L4", "L6"]}}
        assert store.find_person("lead_id", "L6") == (date(2026, 1, 5), "ünal")
        found = store.read_rows(people)
        read = store.read_deals(date(2026, 1, 5), found.rows)
        assert list(zip(read.ids.tolist(), read.column("deal_id").tolist())) == sorted(
            [("Zoe", "d9"), ("adam", "D1"), ("adam", "x"), ("Bea", "y")])
    finally:
        store.close()


def _deal_columns() -> list[str]:
    from features.families import DEAL_ROW_FEATURES
    from features.pipeline import DEAL_COLUMN

    return [DEAL_COLUMN, *DEAL_ROW_FEATURES]


def test_a_feature_name_longer_than_postgresql_keeps_is_refused_by_name(postgres_server) -> None:
    store = FeatureStore(postgres_server.create_database("long_names"))
    long = "lead_" + "very_long_attribute_name_" * 3
    features = pd.DataFrame({long: [1.0]}, index=pd.Index(["P1"], name="person_id"))
    try:
        with pytest.raises(ValueError, match=long):
            store.write(features, {}, date(2026, 1, 5))
        assert store.days() == []  # nothing half-written
    finally:
        store.close()


def test_a_store_that_is_down_is_unavailable_and_read_again_once_it_is_back(world) -> None:
    """Its own server, stopped and started under the store: reads raise StoreUnavailable
    (the API's 503) while it is down and succeed on the same store object once it is up,
    the pooled connections that the restart broke replaced."""
    from postgres import postgres_bin, running_postgres

    if postgres_bin() is None:
        pytest.skip("no PostgreSQL binaries")
    settings, data, as_of = world
    with running_postgres() as server:
        store = FeatureStore(server.url(), connect_timeout=2)
        materialize(data, as_of, settings, store)
        person = store.person_ids(as_of.date())[0]
        before = store.read_rows([person])
        server.stop()
        with pytest.raises(StoreUnavailable, match="cannot be"):
            store.read_rows([person])
        assert "cannot be reached" in (store.problem() or "")
        server.start()
        after = store.read_rows([person])
        _same_rows(after.rows, before.rows)
        assert store.problem() is None
        store.close()
    closed = FeatureStore(server.url(), connect_timeout=1)
    with pytest.raises(StoreUnavailable):
        closed.days()


def test_one_process_at_a_time_has_a_lock_of_the_store(new_store, tmp_path) -> None:
    """What refreshing the precomputed answers relies on among servers sharing a store: a
    lock file beside a SQLite file, an advisory lock in PostgreSQL (seen from another
    connection here, as from another server)."""
    one = new_store()
    other = FeatureStore(one.url) if one.url else FeatureStore(one.path)
    try:
        with one.exclusive("answers") as first:
            with other.exclusive("answers") as second, other.exclusive("other") as unrelated:
                assert (first, second, unrelated) == (True, False, True)
        with other.exclusive("answers") as again:
            assert again
    finally:
        other.close()


def test_the_reads_of_one_api_call_see_one_state_of_a_sqlite_store(world, tmp_path) -> None:
    """Inside ``reading()`` every read sees the same commit: a day written meanwhile by
    another process's store waits until the reads are done, then is seen."""
    settings, data, as_of = world
    path = tmp_path / "store.sqlite"
    writer, reader = FeatureStore(path), FeatureStore(path)
    earlier = as_of - pd.Timedelta(days=30)
    materialize(data, earlier, settings, writer)
    written = threading.Event()

    def write() -> None:
        materialize(data, as_of, settings, writer)
        written.set()

    with reader.reading():
        assert reader.days() == [earlier.date()]
        thread = threading.Thread(target=write)
        thread.start()
        time.sleep(1.5)  # the day is built and waits to commit
        assert not written.is_set() and reader.days() == [earlier.date()]
        assert reader.read([]).as_of == earlier.date()
    thread.join(timeout=30)
    assert written.is_set() and reader.days() == [earlier.date(), as_of.date()]
    writer.close()
    reader.close()
