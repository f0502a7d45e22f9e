"""The online feature store: features of every person as of a day, for scoring by id.

``radar features DIR --as-of DAY --materialize`` builds features with the same pipeline as
training and writes them here with, per person, the targets that apply at that day (the
populations are defined on the raw tables, which the server does not have). Each day is
one table ``features_YYYYMMDD`` (one column per feature, ``person_id`` primary key), so
adding a day never rewrites another and a re-materialised day replaces only itself. The
``snapshots`` table lists the days with the population figures that expected values are
read against. Time to close scores each open deal: a day's ``deals_YYYYMMDD`` table holds
every open deal's own features (``person_id``, ``deal_id``, the deal columns of
``features.pipeline.build_deal_features``), joined with the person's row when read. A
day's ``ids_YYYYMMDD`` table maps the CRM's own ids (``lead_id``, ``customer_id``: every
one of a merged person, oldest first) to ``person_id``, both ways. A day's
``answers_YYYYMMDD`` table holds every person's precomputed answer per target
(:mod:`serving.answers`), and ``answer_sets`` which champion version made them: writing
the day again drops them, so a re-materialised day never serves an old answer.

The store is a SQLite file in the work dir by default, or the PostgreSQL database of
``serving.store_url``, which several scoring servers behind a load balancer then share.
Both run the same SQL; what differs is kept in one small seam (:class:`_SQLite`,
:class:`_Postgres`): how a connection is had, how rows are loaded (PostgreSQL by COPY),
column types, the physical row order, and how one process at a time is chosen. A day is
written into staging tables and swapped in by one transaction, so a reader sees the old
day or the new one, never half.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
import uuid
import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from features.contract import CRMData
from features.families import DEAL_ROW_FEATURES
from features.source_ids import ID_COLUMNS, SEPARATOR, source_ids
from features.pipeline import DEAL_COLUMN, build_deal_features, build_features
from features.rows import FeatureRows
from radar.config import Settings
from training.datasets import TARGETS

STORE_FILE = "feature_store.sqlite"
_TARGETS_COLUMN = "radar_targets"
_SNAPSHOTS = """CREATE TABLE IF NOT EXISTS snapshots (
    as_of TEXT PRIMARY KEY, table_name TEXT NOT NULL, text_columns TEXT NOT NULL,
    population TEXT NOT NULL, n_persons INTEGER NOT NULL, written_at TEXT NOT NULL)"""
_ANSWER_SETS = """CREATE TABLE IF NOT EXISTS answer_sets (
    as_of TEXT NOT NULL, target TEXT NOT NULL, version TEXT NOT NULL, top_k INTEGER NOT NULL,
    written_at TEXT NOT NULL, PRIMARY KEY (as_of, target))"""


def default_store_path(settings: Settings) -> Path:
    """Where the SQLite store lives unless told otherwise: beside the MLflow store in the work dir."""
    return Path(settings.work_dir) / STORE_FILE


def store_location(settings: Settings) -> Path | str:
    """The store of these settings: ``serving.store_url`` when set (shared by every
    server), else the SQLite file in the work dir."""
    return settings.serving.store_url or default_store_path(settings)


def open_store(settings: Settings, override: Path | str | None = None) -> FeatureStore:
    """The feature store of these settings, or the one at ``override`` (a file or a URL)."""
    location = override if override is not None else store_location(settings)
    return FeatureStore(location, connect_timeout=settings.serving.store_connect_timeout_seconds)


def population_figures(features: pd.DataFrame) -> dict[str, float]:
    """What an expected value for one person is read against: the whole population's mean
    order and a customer's year of spend (``serving.scoring.ValueBasis``)."""
    from serving.scoring import ValueBasis

    return ValueBasis.of(features).stored_figures()


@dataclass
class StoredRows:
    """Features of the persons found for one day, and the targets that apply to each."""

    as_of: date
    features: pd.DataFrame
    eligible: dict[str, pd.Index]
    population: dict[str, float]
    missing: list[str]


@dataclass
class StoredPeople:
    """Like StoredRows, as arrays: ``eligible`` holds one boolean per row and target."""

    as_of: date
    rows: FeatureRows
    eligible: dict[str, np.ndarray]
    population: dict[str, float]
    missing: list[str]


class UnknownDay(LookupError):
    """No features were materialised for the day asked for."""


class StoreUnavailable(RuntimeError):
    """A shared store that cannot be reached now (the database is down or restarting): the
    API answers 503 and the caller retries; nothing about the store is wrong."""


class FeatureStore:
    """Read and write materialised features: a SQLite file or a PostgreSQL URL."""

    def __init__(self, location: Path | str, connect_timeout: int | None = None) -> None:
        """``connect_timeout``: seconds a database store waits to connect (None: the
        driver's own wait; :func:`open_store` passes ``serving.store_connect_timeout_seconds``)."""
        from features.database import display_url, is_database_url

        url = str(location) if is_database_url(location) else None
        if url is not None and url.lower().startswith("sqlite:///"):
            url, location = None, Path(url[len("sqlite:///"):])  # the embedded store, named as a URL
        #: The SQLite file, or None for a database store (then see :attr:`url`).
        self.path: Path | None = None if url else Path(location)
        self.url = url
        self.shown = display_url(url) if url else str(self.path)
        self._db: _Database = (_Postgres(url, self.shown, connect_timeout) if url
                               else _SQLite(self.path))  # type: ignore[arg-type]
        self._found = False

    def exists(self) -> bool:
        """Whether there is a store to read: the SQLite file exists; a database always is
        (an empty one answers :class:`UnknownDay`). A file once found is not looked for
        again: every request asks, and the look costs a system call."""
        if not self._found:
            self._found = self.path is None or self.path.is_file()
        return self._found

    def close(self) -> None:
        """Close this thread's SQLite connection, or every pooled PostgreSQL connection."""
        self._db.close()

    def write(self, features: pd.DataFrame, eligible: dict[str, pd.Index], as_of: date,
              deals: pd.DataFrame | None = None, ids: pd.DataFrame | None = None) -> int:
        """Store one day (replacing that day if present), with the open deals' own rows
        (``build_deal_features``' frame, or None: no open deals) and the persons' CRM ids
        (``features.source_ids.source_ids``' frame); returns the number of persons."""
        table, deal_table, id_table = f"features_{as_of:%Y%m%d}", _deal_table(as_of), _id_table(as_of)
        frame = _storable(features, eligible)
        own = _deal_storable(deals)
        long_ids = _ids_storable(ids)
        text_columns = [c for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
        text_columns += [c for c in own.columns if c != "person_id" and not pd.api.types.is_numeric_dtype(own[c])]
        self._check_names([*frame.columns, *own.columns])
        figures = json.dumps(population_figures(features))
        # Index names are unique in a whole database: the staging tables' carry this write's
        # token, so they are built before the swap and stay with their tables after it.
        token = uuid.uuid4().hex[:8]
        tables = [(table, frame, [("person", "UNIQUE", "person_id")]),
                  (deal_table, own, [("person", "", "person_id")]),
                  (id_table, long_ids, [("id", "", "kind, source_id"), ("person", "", "person_id")])]
        with self._db.transaction() as tx:  # one transaction: readers see the old day or the new one, never half
            for name, rows, indexes in tables:
                staging = f"{name}_staging"
                tx.execute(f'DROP TABLE IF EXISTS "{staging}"')
                tx.execute(f'CREATE TABLE "{staging}" ({self._columns(rows)})')
                tx.load(staging, list(rows.columns), _records(rows))
                for suffix, unique, columns in indexes:
                    tx.execute(f'CREATE {unique} INDEX "{name}_{suffix}_{token}" ON "{staging}" ({columns})')
            for name, _, _ in tables:
                tx.execute(f'DROP TABLE IF EXISTS "{name}"')
                tx.execute(f'ALTER TABLE "{name}_staging" RENAME TO "{name}"')
            # Answers made from the day's old features are stale from this moment on.
            tx.execute(f'DROP TABLE IF EXISTS "{_answer_table(as_of)}"')
            tx.execute("DELETE FROM answer_sets WHERE as_of = ?", (as_of.isoformat(),))
            tx.execute("DELETE FROM snapshots WHERE as_of = ?", (as_of.isoformat(),))
            tx.execute("INSERT INTO snapshots VALUES (?, ?, ?, ?, ?, ?)",
                       (as_of.isoformat(), table, json.dumps(text_columns), figures, len(frame),
                        datetime.now(timezone.utc).isoformat(timespec="seconds")))
        return len(frame)

    def person_ids(self, day: date) -> list[str]:
        """Everyone stored for ``day``, in stored order."""
        table = self._snapshot(day)[1]
        return [r[0] for r in self._db.read(f'SELECT person_id FROM "{table}" ORDER BY {self._db.row_order}')[1]]

    def answer_set(self, day: date, target: str) -> tuple[str, int] | None:
        """(champion version, reasons per answer) of the answers stored for ``day`` and
        ``target``; None when there are none."""
        return self.answer_sets(day).get(target)

    def answer_sets(self, day: date) -> dict[str, tuple[str, int]]:
        """Per target, (champion version, reasons per answer) of the answers stored for
        ``day``: one read for every target of a request."""
        rows = self._db.read("SELECT target, version, top_k FROM answer_sets WHERE as_of = ?", (day.isoformat(),))[1]
        return {target: (version, int(top_k)) for target, version, top_k in rows}

    def write_answers(self, day: date, target: str, version: str, top_k: int,
                      answers: list[tuple[str, str]]) -> None:
        """Store one target's answers for ``day`` as (person_id, JSON text) rows, replacing
        that target's; the day must be materialised (its features are what they answer)."""
        if day not in self.days():
            raise UnknownDay(f"no features materialised for {day}: answers need the day's features")
        table, text = _answer_table(day), self._db.text_type
        with self._db.transaction() as tx:
            tx.execute(f'CREATE TABLE IF NOT EXISTS "{table}" (person_id {text} NOT NULL, target {text} NOT NULL, '
                       f"payload {text} NOT NULL, PRIMARY KEY (person_id, target))")
            tx.execute(f'DELETE FROM "{table}" WHERE target = ?', (target,))
            tx.load(table, ["person_id", "target", "payload"], ((p, target, a) for p, a in answers))
            tx.execute("DELETE FROM answer_sets WHERE as_of = ? AND target = ?", (day.isoformat(), target))
            tx.execute("INSERT INTO answer_sets VALUES (?, ?, ?, ?, ?)",
                       (day.isoformat(), target, version, top_k,
                        datetime.now(timezone.utc).isoformat(timespec="seconds")))

    def read_answers(self, day: date, targets: list[str], person_ids: list[str]) -> dict[str, dict[str, str]]:
        """The stored answers (JSON text) of the given persons for ``day``, per target and
        person, in one read for every target of a request. A day written again meanwhile
        has none: the caller computes them."""
        kinds, kind_params = self._db.members(targets)
        people, people_params = self._db.members(person_ids)
        try:
            rows = self._db.read(f'SELECT target, person_id, payload FROM "{_answer_table(day)}" '
                                 f"WHERE target {kinds} AND person_id {people}", (*kind_params, *people_params))[1]
        except self._db.missing_table:
            rows = []
        found: dict[str, dict[str, str]] = {t: {} for t in targets}
        for target, person, payload in rows:
            found[target][person] = payload
        return found

    def days(self) -> list[date]:
        """Materialised days, oldest first."""
        rows = self._db.read("SELECT as_of FROM snapshots ORDER BY as_of")[1]
        return [date.fromisoformat(r[0]) for r in rows]

    def read(self, person_ids: list[str], as_of: date | None = None) -> StoredRows:
        """Rows of the given persons at ``as_of`` (default: the latest day), as a frame."""
        found = self.read_rows(person_ids, as_of)
        features = found.rows.to_frame()
        eligible = {t: features.index[mask] for t, mask in found.eligible.items()}
        return StoredRows(found.as_of, features, eligible, found.population, found.missing)

    def read_rows(self, person_ids: list[str], as_of: date | None = None, features: bool = True) -> StoredPeople:
        """Rows of the given persons at ``as_of`` (default: the latest day), as arrays: the
        API's path, which scores a person or two and cannot afford a frame per request.
        Without ``features``, only who is stored and which targets apply to them: what
        serving a precomputed answer needs, without reading and decoding every column."""
        day, table, text_columns, population = self._snapshot(as_of)
        wanted = list(dict.fromkeys(person_ids))
        members, params = self._db.members(wanted)
        picked = "*" if features else f"person_id, {_TARGETS_COLUMN}"
        columns, records = self._db.read(f'SELECT {picked} FROM "{table}" WHERE person_id {members}', params)
        rows, eligible = _as_rows(columns, records, text_columns)
        found = set(rows.ids.tolist())
        return StoredPeople(day, rows, eligible, population, [p for p in wanted if p not in found])

    def read_deals(self, day: date, people: FeatureRows) -> FeatureRows:
        """The open deals of ``people`` (rows read for ``day``) at that day, one row per
        deal: the deal's own columns beside its person's, in person then deal order, as
        ``build_deal_features`` gives them."""
        ids = people.ids.tolist()
        members, params = self._db.members(ids)
        text_columns = self._snapshot(day)[2]
        try:
            names, records = self._db.read(
                f'SELECT * FROM "{_deal_table(day)}" WHERE person_id {members} ORDER BY person_id, deal_id', params)
        except self._db.missing_table:  # a day stored before deals had their own rows
            names, records = ["person_id", DEAL_COLUMN], []
        at = {c: i for i, c in enumerate(names)}
        position = {pid: i for i, pid in enumerate(ids)}
        rows = people.take(np.array([position[r[at["person_id"]]] for r in records], dtype=np.int64))
        own = {
            c: np.array([r[at[c]] for r in records], dtype=object if c in text_columns or c == DEAL_COLUMN else float)
            for c in names if c != "person_id"
        }
        return FeatureRows(rows.ids, {n: rows.column(n) for n in rows.names} | own)

    def find_person(self, kind: str, source_id: str, as_of: date | None = None) -> tuple[date, str | None]:
        """The ``person_id`` that a CRM id (``kind``: lead_id or customer_id) belongs to at
        ``as_of`` (default: the latest day); None when no person has it."""
        day = self._snapshot(as_of)[0]
        try:
            found = self._db.read(f'SELECT person_id FROM "{_id_table(day)}" WHERE kind = ? AND source_id = ? '
                                  f"ORDER BY {self._db.row_order} LIMIT 1", (kind, source_id))[1]
        except self._db.missing_table:  # a day stored before the CRM ids were kept
            found = []
        return day, found[0][0] if found else None

    def read_ids(self, day: date, person_ids: list[str]) -> dict[str, dict[str, list[str]]]:
        """The CRM ids of the given persons at ``day``: per person, per kind (lead_id,
        customer_id), every id oldest first."""
        members, params = self._db.members(person_ids)
        try:
            records = self._db.read(f'SELECT person_id, kind, source_id FROM "{_id_table(day)}" '
                                    f"WHERE person_id {members} ORDER BY {self._db.row_order}", params)[1]
        except self._db.missing_table:
            records = []
        found: dict[str, dict[str, list[str]]] = {}
        for person, kind, source_id in records:
            found.setdefault(person, {}).setdefault(kind, []).append(source_id)
        return found

    def _snapshot(self, as_of: date | None) -> tuple[date, str, list[str], dict[str, float]]:
        """The day's table, its text columns and population figures (latest day by default)."""
        columns = "as_of, table_name, text_columns, population"
        if as_of is None:
            found = self._db.read(f"SELECT {columns} FROM snapshots ORDER BY as_of DESC LIMIT 1")[1]
        else:
            found = self._db.read(f"SELECT {columns} FROM snapshots WHERE as_of = ?", (as_of.isoformat(),))[1]
        if not found:
            raise UnknownDay(f"no features materialised for {as_of or 'any day'}")
        day, table, text_columns, population = found[0]
        return date.fromisoformat(day), table, json.loads(text_columns), json.loads(population)

    def read_day(self, as_of: date | None = None) -> StoredRows:
        """Everyone stored for ``as_of`` (default: the latest day), in no given order: the
        population drift monitoring compares with each champion's training profile."""
        day, table, text_columns, population = self._snapshot(as_of)
        # In no particular order: what it is read for compares populations, and ordering a
        # whole day would make PostgreSQL sort all of it.
        columns, records = self._db.read(f'SELECT * FROM "{table}"')
        features, eligible = _loaded(columns, records, text_columns)
        return StoredRows(day, features, eligible, population, [])

    def exclusive(self, name: str) -> Any:
        """A context that is True for the one process (of every server sharing the store)
        that has the lock ``name``, False at once for the others; released on leaving."""
        return self._db.exclusive(name)

    def reading(self) -> Any:
        """A context whose reads (in this thread) see one state of the store: the few reads
        of an API call then cannot straddle a day being written again."""
        return self._db.reading()

    def problem(self) -> str | None:
        """Why the store cannot be read now (a database that cannot be reached, a latest day
        whose table is missing), or None; an empty store is no problem."""
        try:
            latest = self._db.read("SELECT table_name FROM snapshots ORDER BY as_of DESC LIMIT 1")[1]
            if latest:
                self._db.read(f'SELECT * FROM "{latest[0][0]}" LIMIT 1')
        except StoreUnavailable as err:
            return str(err)
        except self._db.missing_table:
            return f"feature store {self.shown} lists a day whose table is missing: " \
                   "rebuild it with `radar features DIR --as-of DAY --materialize`"
        return None

    def _columns(self, frame: pd.DataFrame) -> str:
        """A table's column definitions: numbers as floating point (a stored number is read
        back as a float), everything else as text."""
        return ", ".join(
            f"{_quoted(c)} {self._db.real_type if pd.api.types.is_numeric_dtype(frame[c]) else self._db.text_type}"
            for c in frame.columns)

    def _check_names(self, columns: list[str]) -> None:
        """PostgreSQL cuts longer names silently, and a feature column must keep its name."""
        limit = self._db.max_name_bytes
        long = [c for c in columns if limit and len(str(c).encode("utf-8")) > limit]
        if long:
            raise ValueError(f"feature column names longer than {limit} bytes cannot be stored in {self.shown}: "
                             f"{', '.join(long[:5])} (rename the attribute in the mapping file)")


# --- the seam: what SQLite and PostgreSQL do differently ------------------------------------------


class _Transaction(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...

    def load(self, table: str, columns: list[str], rows: Iterable[tuple]) -> None: ...


class _Database(Protocol):
    """What the store needs of a database. SQL is written once, with ``?`` placeholders."""

    #: Column types: text, and numbers.
    text_type: str
    real_type: str
    #: The order rows were written in (a day's tables are written once, never updated).
    row_order: str
    #: What reading a table that does not exist raises (a day stored by an older Radar).
    missing_table: type[Exception]
    #: Longest table or column name, in bytes (0: no limit that matters).
    max_name_bytes: int

    def read(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[str], list[tuple]]: ...

    def transaction(self) -> Any: ...

    def members(self, values: list[str]) -> tuple[str, list[Any]]: ...

    def exclusive(self, name: str) -> Any: ...

    def reading(self) -> Any: ...

    def close(self) -> None: ...


class _SQLite:
    """The embedded store: one file, read through one plain sqlite3 connection per thread
    (SQLite connections must not be shared across the server's worker threads, and a pooled
    SQLAlchemy connection cost more than the read itself)."""

    text_type = "TEXT"
    real_type = "REAL"
    row_order = "rowid"
    missing_table = sqlite3.OperationalError
    max_name_bytes = 0

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Autocommit: a SELECT opens no transaction, so an idle reader never holds the
            # file, and a write's BEGIN really covers its DROP and ALTER TABLE (in its
            # default mode sqlite3 runs those outside any transaction).
            conn = sqlite3.connect(self.path, isolation_level=None)
            conn.execute(_SNAPSHOTS)
            conn.execute(_ANSWER_SETS)
            self._local.conn = conn
        return conn

    def read(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[str], list[tuple]]:
        cursor = self._connection().execute(sql, params)
        return [d[0] for d in cursor.description], cursor.fetchall()

    @contextmanager
    def transaction(self) -> Iterator[_SQLiteTransaction]:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")  # the one writer from the start, not from its first write
        try:
            yield _SQLiteTransaction(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @staticmethod
    def members(values: list[str]) -> tuple[str, list[Any]]:
        return f"IN ({','.join('?' * len(values))})", list(values)

    @contextmanager
    def reading(self) -> Iterator[None]:
        """One read transaction: the file is locked for reading once, not once per query
        (each takes and drops a lock and checks the file again: system calls that cost more
        than the small reads of an API call), and every read sees the same commit."""
        conn = self._connection()
        if conn.in_transaction:  # already inside one (a write's, or an outer read)
            yield
            return
        conn.execute("BEGIN")
        try:
            yield
        finally:
            conn.execute("COMMIT")  # nothing was written: this only ends the read

    @contextmanager
    def exclusive(self, name: str) -> Iterator[bool]:
        """An exclusive, non-blocking lock file beside the store. It is never written (opened
        to append, so it is never truncated either)."""
        fd = os.open(self.path.with_suffix(f".{name}.lock"), os.O_CREAT | os.O_APPEND | os.O_WRONLY, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


class _SQLiteTransaction:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._conn.execute(sql, params)

    def load(self, table: str, columns: list[str], rows: Iterable[tuple]) -> None:
        names = ", ".join(_quoted(c) for c in columns)
        self._conn.executemany(f'INSERT INTO "{table}" ({names}) VALUES ({",".join("?" * len(columns))})', rows)


class _Postgres:
    """The shared store: a PostgreSQL database, through psycopg 3 and SQLAlchemy's
    connection pool (the URL is a SQLAlchemy URL, as for database sources).

    Reads run in autocommit, one round trip each, and never hold a transaction between
    requests. Statements are not prepared: another server swapping a day in changes the
    table under a prepared ``SELECT *``, which PostgreSQL then refuses to run. A connection
    lost (the server restarted) empties the pool and the read is tried once more on a new
    one; a store that still cannot be reached raises :class:`StoreUnavailable`."""

    text_type = 'TEXT COLLATE "C"'  # ordered by code point, as Python and SQLite order text
    real_type = "DOUBLE PRECISION"
    row_order = "ctid"  # a day's tables are filled by one COPY into a new table, never updated
    max_name_bytes = 63

    def __init__(self, url: str, shown: str, connect_timeout: int | None) -> None:
        import psycopg
        import sqlalchemy as sa

        from features.database import database_url

        self.missing_table = psycopg.errors.UndefinedTable
        self._lost = psycopg.OperationalError
        self.shown = shown
        address = database_url(url)
        if address.get_backend_name() != "postgresql":
            raise ValueError(f"the feature store is a SQLite file or a PostgreSQL database, not {shown}")
        # psycopg reads PGPASSWORD and ~/.pgpass; the pool never checks a connection before
        # handing it out (a round trip per read), a lost one is found by the read itself.
        self._engine = sa.create_engine(
            address, isolation_level="AUTOCOMMIT",
            connect_args={"prepare_threshold": None,
                          **({"connect_timeout": connect_timeout} if connect_timeout else {})})
        self._schema_ready = False
        self._schema_lock = threading.Lock()

    def _checkout(self) -> Any:
        import sqlalchemy as sa

        from features.database import problem

        try:
            raw = self._engine.raw_connection()
        except (sa.exc.SQLAlchemyError, self._lost) as err:  # a new connection's errors come unwrapped
            raise StoreUnavailable(f"the feature store {self.shown} cannot be reached ({problem(err)})") from None
        if not self._schema_ready:
            with self._schema_lock:
                if not self._schema_ready:
                    try:
                        self._run_schema(raw.driver_connection)
                    except BaseException:
                        raw.close()
                        raise
                    self._schema_ready = True
        return raw

    def _run_schema(self, conn: Any) -> None:
        with conn.transaction():
            # Two servers starting at once must not both create the tables.
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key("writer"),))
            conn.execute(_SNAPSHOTS)
            conn.execute(_ANSWER_SETS)

    def _gone(self, raw: Any, err: Exception) -> StoreUnavailable:
        """A connection lost: drop it and every idle one (a restarted server lost them all)."""
        from features.database import problem

        raw.invalidate()
        self._engine.dispose()
        return StoreUnavailable(f"the feature store {self.shown} cannot be read now ({problem(err)})")

    def read(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[str], list[tuple]]:
        statement = sql.replace("?", "%s")
        for attempt in (1, 2):
            raw = self._checkout()
            try:
                cursor = raw.driver_connection.execute(statement, params or None)
                return _names(cursor), cursor.fetchall()
            except self._lost as err:
                lost = self._gone(raw, err)
                if attempt == 2:
                    raise lost from None
            finally:
                raw.close()
        raise AssertionError("unreachable")

    @contextmanager
    def transaction(self) -> Iterator[_PostgresTransaction]:
        raw = self._checkout()
        try:
            conn = raw.driver_connection
            with conn.transaction():
                # One writer at a time across every server, as SQLite's BEGIN IMMEDIATE.
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key("writer"),))
                yield _PostgresTransaction(conn)
        except self._lost as err:
            raise self._gone(raw, err) from None
        finally:
            raw.close()

    @staticmethod
    def members(values: list[str]) -> tuple[str, list[Any]]:
        # One array parameter: the same statement for any number of ids.
        return "= ANY(?)", [list(values)]

    @contextmanager
    def reading(self) -> Iterator[None]:
        # Each read stays its own autocommit round trip: a transaction would add two more.
        yield

    @contextmanager
    def exclusive(self, name: str) -> Iterator[bool]:
        """A session advisory lock, held on one pooled connection while inside: the
        processes of every server sharing the database see the same lock, and the database
        releases it if the holder dies."""
        raw = self._checkout()
        try:
            conn = raw.driver_connection
            mine = bool(conn.execute("SELECT pg_try_advisory_lock(%s)", (_lock_key(name),)).fetchone()[0])
            try:
                yield mine
            finally:
                if mine:
                    try:
                        conn.execute("SELECT pg_advisory_unlock(%s)", (_lock_key(name),))
                    except self._lost:  # the session is gone, and its locks with it
                        raw.invalidate()
        finally:
            raw.close()

    def close(self) -> None:
        self._engine.dispose()


class _PostgresTransaction:
    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._conn.execute(sql.replace("?", "%s") if params else sql, params or None)

    def load(self, table: str, columns: list[str], rows: Iterable[tuple]) -> None:
        """COPY: one stream instead of a statement per row (a day of 100 000 people × 120
        features is 12 M values)."""
        names = ", ".join(_quoted(c) for c in columns)
        with self._conn.cursor() as cursor, cursor.copy(f'COPY "{table}" ({names}) FROM STDIN') as copy:
            for row in rows:
                copy.write_row(row)


def _names(cursor: Any) -> list[str]:
    """A result's column names, from the result itself: psycopg's ``description`` builds an
    object per column, which for a day's 120 features cost more than the read."""
    result = cursor.pgresult
    return [result.fname(i).decode() for i in range(result.nfields)]


def _lock_key(name: str) -> int:
    """A PostgreSQL advisory lock key of Radar's own for ``name``."""
    return zlib.crc32(f"radar feature store: {name}".encode())


def _quoted(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def _records(frame: pd.DataFrame) -> Iterator[tuple]:
    """A frame's rows as plain Python values: floats for numbers, text, None for missing.

    The rows are made one at a time as the load takes them, not kept as a list: a day is
    100 000 tuples, and holding them all set off the cycle collector again and again (each
    pass walking every object of the process) for about a second of a day's write."""
    columns = []
    for name in frame.columns:
        series = frame[name]
        if pd.api.types.is_numeric_dtype(series):
            # + 0.0 turns -0.0 into 0.0: SQLite stores it so, and PostgreSQL then reads the same.
            numbers = series.to_numpy(dtype=float, na_value=np.nan) + 0.0
            values = numbers.astype(object)
            values[np.isnan(numbers)] = None
        else:
            values = series.astype(object).where(series.notna(), None).to_numpy()
        columns.append(values.tolist())
    return zip(*columns)


def eligibility_flags(index: pd.Index, eligible: dict[str, pd.Index]) -> dict[str, np.ndarray]:
    """Per target, whether it applies to each person of ``index``, by position. Looked up
    on object indexes: ``isin`` on Arrow text goes through a Python list of every value."""
    objects = pd.Index(index.to_numpy(dtype=object), dtype=object)
    flags = {}
    for target in TARGETS:
        mask = np.zeros(len(objects), dtype=bool)
        people = eligible.get(target)
        if people is not None and len(people):
            at = objects.get_indexer(pd.Index(np.asarray(people, dtype=object), dtype=object))
            mask[at[at >= 0]] = True
        flags[target] = mask
    return flags


def _storable(features: pd.DataFrame, eligible: dict[str, pd.Index]) -> pd.DataFrame:
    """Features with ``person_id`` as a column and the applicable targets as one text column."""
    flags = pd.DataFrame(eligibility_flags(features.index, eligible), index=features.index)
    # "lead_quality,purchase_probability": built column by column, not person by person.
    joined = pd.Series("", index=features.index, dtype=object)
    for target in TARGETS:
        joined = joined.where(~flags[target], joined + target + ",")
    out = features.astype({c: object for c in features.columns if isinstance(features[c].dtype, pd.CategoricalDtype)})
    ids = pd.Series(features.index, index=features.index, name="person_id", dtype=object)
    return pd.concat([ids, out, joined.str.rstrip(",").rename(_TARGETS_COLUMN)], axis=1).reset_index(drop=True)


def _deal_table(as_of: date) -> str:
    return f"deals_{as_of:%Y%m%d}"


def _deal_storable(deals: pd.DataFrame | None) -> pd.DataFrame:
    """An open-deal frame's own columns, with ``person_id`` as a column (no deals: none)."""
    columns = ["person_id", DEAL_COLUMN, *DEAL_ROW_FEATURES]
    if deals is None or not len(deals):
        return pd.DataFrame({c: pd.Series(dtype=object if c in ("person_id", DEAL_COLUMN, "deal_owner") else float)
                             for c in columns})
    own = deals[[DEAL_COLUMN, *DEAL_ROW_FEATURES]]
    own = own.astype({c: object for c in own.columns if not pd.api.types.is_numeric_dtype(own[c])})
    own.insert(0, "person_id", pd.Series(deals.index, index=deals.index, dtype=object))
    return own.reset_index(drop=True)


def _answer_table(as_of: date) -> str:
    return f"answers_{as_of:%Y%m%d}"


def _id_table(as_of: date) -> str:
    return f"ids_{as_of:%Y%m%d}"


def _ids_storable(ids: pd.DataFrame | None) -> pd.DataFrame:
    """Every CRM id of every person as a row (person_id, kind, source_id), oldest first."""
    rows = []
    if ids is not None:
        for kind in ID_COLUMNS:
            every = ids[f"{kind}s"].dropna().astype(str).str.split(SEPARATOR).explode()
            rows.append(pd.DataFrame({"person_id": every.index.astype(str), "kind": kind,
                                      "source_id": every.to_numpy(dtype=object)}))
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in ("person_id", "kind", "source_id")})
    return pd.concat(rows, ignore_index=True)


def _as_rows(columns: list[str], records: list[tuple], text_columns: list[str]) -> tuple[FeatureRows, dict[str, np.ndarray]]:
    """Stored records back to feature rows (numbers in one float block, NULL → NaN; text as
    text) and, per target, whether it applies to each row."""
    position = {c: i for i, c in enumerate(columns)}
    ids = np.array([r[position["person_id"]] for r in records], dtype=object)
    features = [c for c in columns if c not in ("person_id", _TARGETS_COLUMN)]
    numeric = [c for c in features if c not in text_columns]
    picks = [position[c] for c in numeric]
    block = np.array([[r[i] for i in picks] for r in records], dtype=float).reshape(len(records), len(picks))
    at = {c: j for j, c in enumerate(numeric)}
    arrays = {
        c: block[:, at[c]] if c in at else np.array([r[position[c]] for r in records], dtype=object)
        for c in features
    }
    targets = [r[position[_TARGETS_COLUMN]] or "" for r in records]
    eligible = {t: np.array([t in applies for applies in targets], dtype=bool) for t in TARGETS}
    return FeatureRows(ids, arrays), eligible


def _loaded(columns: list[str], records: list[tuple], text_columns: list[str]) -> tuple[pd.DataFrame, dict[str, pd.Index]]:
    """Stored records back to a feature frame and the persons each target applies to."""
    rows, eligible = _as_rows(columns, records, text_columns)
    features = rows.to_frame()
    return features, {t: features.index[mask] for t, mask in eligible.items()}


@dataclass
class MaterialisedDay:
    """A day as it was just written: everyone's features and the persons each target
    applies to, kept so the answers precomputed next need not read them back."""

    as_of: date
    features: pd.DataFrame
    eligible: dict[str, pd.Index]
    #: Persons stored (``FeatureStore.write``'s count).
    persons: int


def materialize(
    data: CRMData, as_of: pd.Timestamp, settings: Settings, store: FeatureStore, features: pd.DataFrame | None = None
) -> int:
    """Store everyone's features as of a day (built with the training pipeline unless given,
    e.g. by ``radar features`` which has just built them) and the targets that apply."""
    return materialize_day(data, as_of, settings, store, features).persons


def materialize_day(
    data: CRMData, as_of: pd.Timestamp, settings: Settings, store: FeatureStore, features: pd.DataFrame | None = None
) -> MaterialisedDay:
    """:func:`materialize`, returning what was written rather than how many persons."""
    from serving.scoring import eligible

    if features is None:
        features = build_features(data, as_of, settings.features)
    populations = {t: eligible(t, data, features, as_of, settings) for t in TARGETS}
    deals = build_deal_features(data, as_of, settings.features, person_features=features.loc[populations["time_to_close"]])
    day = pd.Timestamp(as_of).date()
    persons = store.write(features, populations, day, deals, source_ids(data, as_of))
    return MaterialisedDay(day, features, populations, persons)
