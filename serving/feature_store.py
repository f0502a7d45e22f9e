"""The online feature store: features of every person as of a day, in SQLite, for scoring by id.

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
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

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
    """Where the store lives unless told otherwise: beside the MLflow store in the work dir."""
    return Path(settings.work_dir) / STORE_FILE


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


class FeatureStore:
    """Read and write materialised features. One connection per thread: SQLite connections
    must not be shared across the server's worker threads."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path)
            conn.execute(_SNAPSHOTS)
            conn.execute(_ANSWER_SETS)
            self._local.conn = conn
        return conn

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
        conn = self._connection()
        staging = f"{table}_staging"
        frame.to_sql(staging, conn, if_exists="replace", index=False, chunksize=5_000)
        own.to_sql(f"{deal_table}_staging", conn, if_exists="replace", index=False, chunksize=5_000)
        long_ids.to_sql(f"{id_table}_staging", conn, if_exists="replace", index=False, chunksize=5_000)
        with conn:  # one transaction: readers see the old day or the new one, never half
            for name in (table, deal_table, id_table):
                conn.execute(f'DROP TABLE IF EXISTS "{name}"')
                conn.execute(f'ALTER TABLE "{name}_staging" RENAME TO "{name}"')
            conn.execute(f'CREATE UNIQUE INDEX "{table}_person" ON "{table}" (person_id)')
            conn.execute(f'CREATE INDEX "{deal_table}_person" ON "{deal_table}" (person_id)')
            conn.execute(f'CREATE INDEX "{id_table}_id" ON "{id_table}" (kind, source_id)')
            conn.execute(f'CREATE INDEX "{id_table}_person" ON "{id_table}" (person_id)')
            # Answers made from the day's old features are stale from this moment on.
            conn.execute(f'DROP TABLE IF EXISTS "{_answer_table(as_of)}"')
            conn.execute("DELETE FROM answer_sets WHERE as_of = ?", (as_of.isoformat(),))
            conn.execute(
                "INSERT OR REPLACE INTO snapshots VALUES (?, ?, ?, ?, ?, ?)",
                (as_of.isoformat(), table, json.dumps(text_columns), json.dumps(population_figures(features)),
                 len(frame), datetime.now(timezone.utc).isoformat(timespec="seconds")),
            )
        return len(frame)

    def person_ids(self, day: date) -> list[str]:
        """Everyone stored for ``day``, in stored order."""
        table = self._snapshot(day)[1]
        return [r[0] for r in self._connection().execute(f'SELECT person_id FROM "{table}" ORDER BY rowid')]

    def answer_set(self, day: date, target: str) -> tuple[str, int] | None:
        """(champion version, reasons per answer) of the answers stored for ``day`` and
        ``target``; None when there are none."""
        found = self._connection().execute(
            "SELECT version, top_k FROM answer_sets WHERE as_of = ? AND target = ?", (day.isoformat(), target)
        ).fetchone()
        return (found[0], int(found[1])) if found else None

    def write_answers(self, day: date, target: str, version: str, top_k: int,
                      answers: list[tuple[str, str]]) -> None:
        """Store one target's answers for ``day`` as (person_id, JSON text) rows, replacing
        that target's; the day must be materialised (its features are what they answer)."""
        if day not in self.days():
            raise UnknownDay(f"no features materialised for {day}: answers need the day's features")
        table = _answer_table(day)
        conn = self._connection()
        with conn:
            conn.execute(f'CREATE TABLE IF NOT EXISTS "{table}" (person_id TEXT NOT NULL, target TEXT NOT NULL, '
                         "payload TEXT NOT NULL, PRIMARY KEY (person_id, target))")
            conn.execute(f'DELETE FROM "{table}" WHERE target = ?', (target,))
            conn.executemany(f'INSERT INTO "{table}" VALUES (?, ?, ?)', [(p, target, a) for p, a in answers])
            conn.execute("INSERT OR REPLACE INTO answer_sets VALUES (?, ?, ?, ?, ?)",
                         (day.isoformat(), target, version, top_k,
                          datetime.now(timezone.utc).isoformat(timespec="seconds")))

    def read_answers(self, day: date, target: str, person_ids: list[str]) -> dict[str, str]:
        """The stored answers (JSON text) of the given persons for one target and day."""
        marks = ",".join("?" * len(person_ids))
        rows = self._connection().execute(
            f'SELECT person_id, payload FROM "{_answer_table(day)}" WHERE target = ? AND person_id IN ({marks})',
            [target, *person_ids]).fetchall()
        return dict(rows)

    def days(self) -> list[date]:
        """Materialised days, oldest first."""
        rows = self._connection().execute("SELECT as_of FROM snapshots ORDER BY as_of").fetchall()
        return [date.fromisoformat(r[0]) for r in rows]

    def read(self, person_ids: list[str], as_of: date | None = None) -> StoredRows:
        """Rows of the given persons at ``as_of`` (default: the latest day), as a frame."""
        found = self.read_rows(person_ids, as_of)
        features = found.rows.to_frame()
        eligible = {t: features.index[mask] for t, mask in found.eligible.items()}
        return StoredRows(found.as_of, features, eligible, found.population, found.missing)

    def read_rows(self, person_ids: list[str], as_of: date | None = None) -> StoredPeople:
        """Rows of the given persons at ``as_of`` (default: the latest day), as arrays: the
        API's path, which scores a person or two and cannot afford a frame per request."""
        day, table, text_columns, population = self._snapshot(as_of)
        wanted = list(dict.fromkeys(person_ids))
        marks = ",".join("?" * len(wanted))
        cursor = self._connection().execute(f'SELECT * FROM "{table}" WHERE person_id IN ({marks})', wanted)
        rows, eligible = _as_rows([d[0] for d in cursor.description], cursor.fetchall(), text_columns)
        found = set(rows.ids.tolist())
        return StoredPeople(day, rows, eligible, population, [p for p in wanted if p not in found])

    def read_deals(self, day: date, people: FeatureRows) -> FeatureRows:
        """The open deals of ``people`` (rows read for ``day``) at that day, one row per
        deal: the deal's own columns beside its person's, in person then deal order, as
        ``build_deal_features`` gives them."""
        ids = people.ids.tolist()
        marks = ",".join("?" * len(ids))
        text_columns = self._snapshot(day)[2]
        try:
            cursor = self._connection().execute(
                f'SELECT * FROM "{_deal_table(day)}" WHERE person_id IN ({marks}) ORDER BY person_id, deal_id', ids)
        except sqlite3.OperationalError:  # a day stored before deals had their own rows
            cursor = None
        records = cursor.fetchall() if cursor is not None else []
        names = [d[0] for d in cursor.description] if cursor is not None else ["person_id", DEAL_COLUMN]
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
            found = self._connection().execute(
                f'SELECT person_id FROM "{_id_table(day)}" WHERE kind = ? AND source_id = ? LIMIT 1',
                (kind, source_id)).fetchone()
        except sqlite3.OperationalError:  # a day stored before the CRM ids were kept
            found = None
        return day, found[0] if found else None

    def read_ids(self, day: date, person_ids: list[str]) -> dict[str, dict[str, list[str]]]:
        """The CRM ids of the given persons at ``day``: per person, per kind (lead_id,
        customer_id), every id oldest first."""
        marks = ",".join("?" * len(person_ids))
        try:
            records = self._connection().execute(
                f'SELECT person_id, kind, source_id FROM "{_id_table(day)}" WHERE person_id IN ({marks}) '
                "ORDER BY rowid", person_ids).fetchall()
        except sqlite3.OperationalError:
            records = []
        found: dict[str, dict[str, list[str]]] = {}
        for person, kind, source_id in records:
            found.setdefault(person, {}).setdefault(kind, []).append(source_id)
        return found

    def _snapshot(self, as_of: date | None) -> tuple[date, str, list[str], dict[str, float]]:
        """The day's table, its text columns and population figures (latest day by default)."""
        conn = self._connection()
        if as_of is None:
            found = conn.execute("SELECT * FROM snapshots ORDER BY as_of DESC LIMIT 1").fetchone()
        else:
            found = conn.execute("SELECT * FROM snapshots WHERE as_of = ?", (as_of.isoformat(),)).fetchone()
        if found is None:
            raise UnknownDay(f"no features materialised for {as_of or 'any day'}")
        return date.fromisoformat(found[0]), found[1], json.loads(found[2]), json.loads(found[3])

    def read_day(self, as_of: date | None = None) -> StoredRows:
        """Everyone stored for ``as_of`` (default: the latest day): the population drift
        monitoring compares with each champion's training profile."""
        day, table, text_columns, population = self._snapshot(as_of)
        cursor = self._connection().execute(f'SELECT * FROM "{table}"')
        columns = [d[0] for d in cursor.description]
        features, eligible = _loaded(columns, cursor.fetchall(), text_columns)
        return StoredRows(day, features, eligible, population, [])


def _storable(features: pd.DataFrame, eligible: dict[str, pd.Index]) -> pd.DataFrame:
    """Features with ``person_id`` as a column and the applicable targets as one text column."""
    flags = pd.DataFrame({t: features.index.isin(eligible.get(t, [])) for t in TARGETS}, index=features.index)
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


def materialize(
    data: CRMData, as_of: pd.Timestamp, settings: Settings, store: FeatureStore, features: pd.DataFrame | None = None
) -> int:
    """Store everyone's features as of a day (built with the training pipeline unless given,
    e.g. by ``radar features`` which has just built them) and the targets that apply."""
    from serving.scoring import eligible

    if features is None:
        features = build_features(data, as_of, settings.features)
    populations = {t: eligible(t, data, features, as_of, settings) for t in TARGETS}
    deals = build_deal_features(data, as_of, settings.features, person_features=features.loc[populations["time_to_close"]])
    return store.write(features, populations, pd.Timestamp(as_of).date(), deals, source_ids(data, as_of))
