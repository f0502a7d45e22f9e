"""Score history: each person's score per target, day after day, and its trend.

Every ``radar score`` records what it wrote: per person (and per deal for
``time_to_close``), target and day, the model version, probability and 0-100 score. A
re-run on the same day replaces that day's points. Score files and API answers then carry
``previous_score`` (the latest recorded score *before* the day being scored),
``score_change`` and ``trend``:

* ``improving``: the score rose by at least ``scoring.trend_min_change`` points;
* ``declining``: it fell by at least that much;
* ``steady``: it moved less;
* ``new``: no earlier score was recorded for this person and target.

The store is a SQLAlchemy database: a SQLite file in the work dir by default, or the
``serving.store_url`` database (PostgreSQL, so that several scoring servers share one).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from features.database import database_url
from radar.config import Settings

HISTORY_FILE = "score_history.sqlite"
TREND_COLUMNS: tuple[str, ...] = ("previous_score", "score_change", "trend")
#: Who a point belongs to: the person, and the deal for per-deal targets ("" otherwise).
KEY_COLUMNS: tuple[str, ...] = ("person_id", "target", "deal_id")

_metadata = sa.MetaData()
POINTS = sa.Table(
    "score_history",
    _metadata,
    sa.Column("person_id", sa.String, primary_key=True),
    sa.Column("target", sa.String, primary_key=True),
    sa.Column("deal_id", sa.String, primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("model_version", sa.String, nullable=False),
    sa.Column("probability", sa.Float, nullable=False),
    sa.Column("score", sa.Integer, nullable=False),
)


def history_url(settings: Settings) -> str:
    """The history database: ``serving.store_url`` when set, else a SQLite file in the work dir."""
    if settings.serving.store_url:
        return settings.serving.store_url
    return f"sqlite:///{(Path(settings.work_dir) / HISTORY_FILE).resolve()}"


def trend_of(change: pd.Series, min_change: float) -> pd.Series:
    """``improving`` / ``steady`` / ``declining`` from a score change, ``new`` where there
    was no earlier score (a missing change)."""
    values = np.select(
        [change.isna(), change >= min_change, change <= -min_change],
        ["new", "improving", "declining"],
        "steady",
    )
    return pd.Series(values, index=change.index, dtype=object)


class ScoreHistory:
    """Reads and writes score points; one instance per process is enough."""

    def __init__(self, url: str, connect_timeout: int | None = None) -> None:
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        # PostgreSQL through psycopg 3, as for database sources (features.database).
        address = database_url(url)
        postgres = address.get_backend_name() == "postgresql"
        wait = {"connect_timeout": connect_timeout} if connect_timeout and postgres else {}
        self.engine = sa.create_engine(address, pool_pre_ping=True, connect_args=wait)
        # PostgreSQL reads in autocommit: no BEGIN before the query nor ROLLBACK after it, two
        # round trips of four saved a read (same pool). SQLite's file reads gain nothing, and
        # switching its connection's mode back and forth costs more than the read.
        self._reader = self.engine.execution_options(isolation_level="AUTOCOMMIT") if postgres else self.engine
        self._table_made = False
        self._previous_sqls: dict[tuple[int, int], str] = {}
        #: The driver's placeholder, for the statements written in its own SQL.
        self._mark = "?" if self.engine.dialect.paramstyle == "qmark" else "%s"
        self._sqlite_path = address.database if address.get_backend_name() == "sqlite" else None
        self._local = threading.local()
        # How long a SQLite read waits for a writer's lock (sqlite3's own default otherwise).
        self._busy_seconds = float(connect_timeout) if connect_timeout else 5.0

    @classmethod
    def of(cls, settings: Settings) -> "ScoreHistory":
        return cls(history_url(settings), settings.serving.store_connect_timeout_seconds)

    def _db(self, reading: bool = False) -> sa.Engine:
        """The engine (``reading``: in autocommit), its table made on first use: a shared
        store that is down when a server starts must not stop it starting (its requests
        answer 503 meanwhile)."""
        if not self._table_made:
            _metadata.create_all(self.engine, checkfirst=True)
            self._table_made = True
        return self._reader if reading else self.engine

    def record(self, scores: pd.DataFrame, day: date) -> int:
        """Store the scores of one day (replacing that day's points for the same keys)."""
        points = _points(scores, day)
        if not len(points):
            return 0
        names = [c.name for c in POINTS.columns]
        columns = [points[n].tolist() for n in names]
        at = names.index("day")
        columns[at] = [self._day_value(d) for d in columns[at]]
        rows = list(zip(*columns))
        # In the driver's own SQL, many rows to one statement: SQLAlchemy's handling of each
        # row cost several times the insert itself (a day of 100 k people: seconds).
        with self._db().begin() as conn:
            conn.exec_driver_sql(self._upsert_sql(names), rows)
        return len(rows)

    def _upsert_sql(self, names: list[str]) -> str:
        """INSERT that replaces the point of the same key and day (SQLite and PostgreSQL)."""
        if self.engine.dialect.name not in ("sqlite", "postgresql"):
            raise ValueError(f"score history needs SQLite or PostgreSQL, not {self.engine.dialect.name}")
        mark = self._mark
        kept = ", ".join(f"{n} = excluded.{n}" for n in ("model_version", "probability", "score"))
        return (f"INSERT INTO {POINTS.name} ({', '.join(names)}) VALUES ({', '.join([mark] * len(names))}) "
                f"ON CONFLICT ({', '.join([*KEY_COLUMNS, 'day'])}) DO UPDATE SET {kept}")

    def previous(self, keys: pd.DataFrame, day: date) -> pd.Series:
        """The latest score before ``day`` for each row of ``keys`` (person_id, target,
        deal_id), aligned with ``keys``; missing where none was recorded."""
        if not len(keys):
            return pd.Series(dtype=float, index=keys.index)
        wanted = _key_frame(keys)
        latest = (
            sa.select(POINTS.c.person_id, POINTS.c.target, POINTS.c.deal_id, sa.func.max(POINTS.c.day).label("day"))
            .where(POINTS.c.day < day, POINTS.c.target.in_(wanted["target"].unique().tolist()))
            .group_by(POINTS.c.person_id, POINTS.c.target, POINTS.c.deal_id)
            .subquery()
        )
        query = sa.select(POINTS.c.person_id, POINTS.c.target, POINTS.c.deal_id, POINTS.c.score).join(
            latest,
            sa.and_(*(POINTS.c[k] == latest.c[k] for k in (*KEY_COLUMNS, "day"))),
        )
        people = wanted["person_id"].unique().tolist()
        if len(people) <= 1000:  # one person's API call should not read everyone's history
            query = query.where(POINTS.c.person_id.in_(people))
        with self._db(reading=True).connect() as conn:
            found = pd.DataFrame(conn.execute(query).fetchall(), columns=[*KEY_COLUMNS, "score"])
        merged = wanted.merge(found, on=list(KEY_COLUMNS), how="left")
        return pd.Series(merged["score"].to_numpy(dtype=float), index=keys.index, name="previous_score")

    def previous_of(self, keys: list[tuple[str, str, str]], day: date) -> list[int | None]:
        """The latest score before ``day`` of each (person, target, deal), in order; None
        where none was recorded. :meth:`previous` for the few rows of an API call, every
        target in one query."""
        latest: dict[tuple[str, str, str], tuple[Any, int]] = {}
        targets, people = sorted({k[1] for k in keys}), sorted({k[0] for k in keys})
        found = self._read(self._previous_sql(len(targets), len(people)), (*targets, self._day_value(day), *people))
        # ``when`` is the driver's own value (ISO text in SQLite): only compared here.
        for person, target, deal, when, score in found:
            key = (person, target, deal)
            if key not in latest or when > latest[key][0]:
                latest[key] = (when, int(score))
        return [latest[k][1] if k in latest else None for k in keys]

    def _previous_sql(self, n_targets: int, n_people: int) -> str:
        """:meth:`previous_of`'s query as the driver's own SQL, made once per shape: an API
        call's few rows cannot afford SQLAlchemy compiling and expanding a statement per
        call (it cost more than running it)."""
        shape = (n_targets, n_people)
        if shape not in self._previous_sqls:
            mark = self._mark
            targets, people = ", ".join([mark] * n_targets), ", ".join([mark] * n_people)
            self._previous_sqls[shape] = (f"SELECT person_id, target, deal_id, day, score FROM {POINTS.name} "
                                          f"WHERE target IN ({targets}) AND day < {mark} AND person_id IN ({people})")
        return self._previous_sqls[shape]

    def _read(self, sql: str, params: tuple) -> list[tuple]:
        """Rows of a query in the driver's SQL. A SQLite file is read through one plain
        connection per thread, as the feature store reads it: a pooled SQLAlchemy
        connection's checkout and result cost several times the read itself."""
        if self._sqlite_path is None:
            with self._db(reading=True).connect() as conn:
                return conn.exec_driver_sql(sql, params).fetchall()
        conn = getattr(self._local, "conn", None)
        if conn is None:
            self._db()  # the table exists before the first read
            # Autocommit: a SELECT opens no transaction, so an idle reader never holds the file.
            conn = self._local.conn = sqlite3.connect(self._sqlite_path, isolation_level=None,
                                                      timeout=self._busy_seconds)
        return conn.execute(sql, params).fetchall()

    def _day_value(self, day: date) -> Any:
        """A day as the driver compares it with the stored ones (SQLite keeps ISO text)."""
        return day.isoformat() if self._sqlite_path is not None else day

    def series(self, person_ids: Iterable[str], target: str | None = None) -> pd.DataFrame:
        """Every recorded point of these people (optionally one target), oldest first."""
        query = sa.select(POINTS).where(POINTS.c.person_id.in_(list(person_ids)))
        if target is not None:
            query = query.where(POINTS.c.target == target)
        query = query.order_by(POINTS.c.target, POINTS.c.deal_id, POINTS.c.day)
        with self._db(reading=True).connect() as conn:
            rows = conn.execute(query).fetchall()
        return pd.DataFrame(rows, columns=[c.name for c in POINTS.columns])

    def annotate(self, scores: pd.DataFrame, day: date, min_change: float) -> pd.DataFrame:
        """``scores`` with ``previous_score``, ``score_change`` and ``trend`` added."""
        out = scores.copy()
        previous = self.previous(out, day)
        out["previous_score"] = previous.astype("Int64")
        out["score_change"] = (pd.to_numeric(out["score"]) - previous).astype("Int64")
        out["trend"] = trend_of(out["score_change"].astype(float), min_change)
        return out


def _key_frame(frame: pd.DataFrame) -> pd.DataFrame:
    deal = frame["deal_id"] if "deal_id" in frame.columns else pd.Series(None, index=frame.index, dtype=object)
    return pd.DataFrame({
        "person_id": frame["person_id"].astype(str).to_numpy(),
        "target": frame["target"].astype(str).to_numpy(),
        "deal_id": deal.astype(object).where(deal.notna(), "").astype(str).to_numpy(),
    })


def _points(scores: pd.DataFrame, day: date) -> pd.DataFrame:
    if not len(scores):
        return pd.DataFrame(columns=[c.name for c in POINTS.columns])
    points = _key_frame(scores)
    points["day"] = day
    points["model_version"] = scores["model_version"].astype(str).to_numpy()
    points["probability"] = pd.to_numeric(scores["probability"]).to_numpy(dtype=float)
    points["score"] = pd.to_numeric(scores["score"]).to_numpy(dtype=int)
    return points.drop_duplicates(list(KEY_COLUMNS), keep="last")


def record_scores(scores: pd.DataFrame, day: date, settings: Settings, key: str = "person_id",
                  target: str | None = None) -> pd.DataFrame:
    """``scores`` (a score file's rows) with the trend columns, recorded as the points of
    ``day``. ``key`` names the id column; ``target`` is given for flat tables, which have
    no target column."""
    history = ScoreHistory.of(settings)
    keyed = scores.assign(person_id=scores[key].astype(str), **({"target": target} if target else {}))
    annotated = history.annotate(keyed, day, settings.scoring.trend_min_change)
    history.record(keyed, day)
    return scores.assign(**{c: annotated[c] for c in TREND_COLUMNS})


def answer_trends(history: ScoreHistory | None, records: list[dict[str, Any]], day: date,
                  min_change: float) -> list[dict[str, Any]]:
    """API answer records (of any targets) with ``previous_score``, ``score_change`` and
    ``trend`` set; unchanged when there is no history store. The same figures as
    :meth:`ScoreHistory.annotate`, read with one small query and no frames: an API call
    scores a person or a few, and building frames cost more than the scoring."""
    if history is None or not records:
        return records
    keys = [(str(r["person_id"]), str(r["target"]),
             str(r.get("deal_id") or "") if r["target"] == "time_to_close" else "") for r in records]
    previous = history.previous_of(keys, day)
    for record, before in zip(records, previous):
        change = None if before is None else int(record["score"]) - before
        record.update(previous_score=before, score_change=change, trend=_trend(change, min_change))
    return records


def _trend(change: int | None, min_change: float) -> str:
    """:func:`trend_of` for one change."""
    if change is None:
        return "new"
    return "improving" if change >= min_change else "declining" if change <= -min_change else "steady"
