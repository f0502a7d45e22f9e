"""Precomputed answers: every person's answer by id, made once per day and champion.

Scoring one person by id costs a model call and an explanation per target; a CRM that
asks for thousands of people a minute asks again and again about the same day. So when a
day is materialised (``radar features --materialize``, the quickstart) and when the
scoring server starts with champions the stored answers were not made by, every stored
person is scored and explained once, through the very code that answers a request
(``ScoringApp.target_records``), and each answer is kept in the feature store per day,
target and champion version, with ``serving.precomputed_top_k`` reasons.

``POST /score`` by id then reads the stored answer of each target asked for; the trend
against the score history is added as it is read. An answer is only read when it was made
for that day by the champion serving now, with the request's ``top_k`` reasons (the
default) or none asked for, and for every person the target applies to; anything else is
computed. Writing a day again
drops its answers in the same transaction, so a re-materialised day is never answered
from the old features. Answers by history are always computed.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import orjson
import pandas as pd

from features.contract import CRMData
from features.rows import FeatureRows
from radar.config import Settings
from serving.feature_store import FeatureStore, MaterialisedDay, StoreUnavailable, eligibility_flags, materialize_day
from serving.scoring import ValueBasis
from training.datasets import TARGETS

logger = logging.getLogger(__name__)


def stale_targets(app: Any, day: date | None = None) -> list[str]:
    """Champion targets whose stored answers for ``day`` (default: the latest) are missing
    or were made by another version or with another number of reasons than configured."""
    store = app.store
    if store is None or not store.exists() or not store.days():
        return []
    day = day or store.days()[-1]
    k = app.settings.serving.precomputed_top_k
    stale = []
    sets = store.answer_sets(day)
    for target, champion in app.models.champions.items():
        made = sets.get(target)
        if made is None or made[0] != champion.version or made[1] != k:
            stale.append(target)
    return [t for t in TARGETS if t in stale]


def precompute_answers(app: Any, day: date | None = None, targets: list[str] | None = None,
                       record_history: bool = False, written: MaterialisedDay | None = None) -> dict[str, int]:
    """Score and explain everyone stored for ``day`` (default: the latest) with each
    champion and store the answers; returns the answers stored per target. With
    ``record_history`` (a day being materialised), each score is also a point of the
    score history for that day, as ``radar score`` records them.

    ``written`` is the day just materialised (``materialize_day``): its features are
    scored from memory rather than read back from the store, once a sample of them is
    checked to read exactly as the store gives them (else they are read back)."""
    store = app.store
    day = day or (written.as_of if written is not None else store.days()[-1])
    if written is not None and written.as_of != day:
        raise ValueError(f"the features in memory are of {written.as_of}, not of {day}")
    targets = [t for t in (targets or TARGETS) if t in app.models.champions]
    k = app.settings.serving.precomputed_top_k
    size = app.settings.serving.precompute_chunk_rows
    moment = pd.Timestamp(day)
    source = _Source(store, day, written)
    basis = ValueBasis.stored(source.population)
    payloads: dict[str, list[tuple[str, str]]] = {t: [] for t in targets}
    points: list[pd.DataFrame] = []
    for start in range(0, source.n, size):
        rows, eligible = source.chunk(start, start + size)
        for target in targets:
            applies = eligible[target]
            if not applies.any():
                continue
            deals = None
            if target == "time_to_close":
                deals = store.read_deals(day, rows.take(np.flatnonzero(applies)))
            records = app.target_records(target, rows, applies, moment, k, basis, deals)
            payloads[target] += _payloads(records, rows.ids[applies])
            if record_history and records:
                points.append(_points(records, target))
    for target in targets:
        store.write_answers(day, target, app.models.champions[target].version, k, payloads[target])
    if record_history and app.history is not None and points:
        app.history.record(pd.concat(points, ignore_index=True), day)
    return {t: len(p) for t, p in payloads.items()}


@dataclass
class MaterialisedAnswers:
    """A day materialised with every answer precomputed, and each stage's wall seconds
    (``store``, ``champions``: the wait for them once the day is written, ``answers``)."""

    written: MaterialisedDay
    #: The champions the answers were made by (none loaded when precomputing is off).
    champions: dict[str, Any]
    #: Answers stored per target; empty when there is no champion yet or precomputing is off.
    answers: dict[str, int]
    seconds: dict[str, float] = field(default_factory=dict)


def materialize_with_answers(data: CRMData, as_of: pd.Timestamp, settings: Settings, store: FeatureStore,
                             features: pd.DataFrame | None = None) -> MaterialisedAnswers:
    """What ``radar features --materialize`` does: the day written to the store, then (when
    ``serving.precompute_answers`` is on and there are champions) every person's answer
    precomputed from the features just written and recorded as the day's score history.
    The champions are loaded from MLflow and read into TreeSHAP tables while the day is
    written: seconds of imports, registry and file reads and checks that need not wait for
    the store."""
    from serving.app import ScoringApp
    from serving.history import ScoreHistory
    from serving.model_store import LoadedModels

    precompute = settings.serving.precompute_answers
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="radar-champions") as pool:
        loading = pool.submit(_champions_prepared, settings) if precompute else None
        started = time.perf_counter()
        written = materialize_day(data, as_of, settings, store, features=features)
        stored = time.perf_counter()
        champions = loading.result() if loading is not None else {}
        loaded = time.perf_counter()
    done: dict[str, int] = {}
    if champions:  # none on the first run: the server precomputes once there are champions
        app = ScoringApp(settings, LoadedModels(champions=champions), store, ScoreHistory.of(settings))
        done = precompute_answers(app, written.as_of, record_history=True, written=written)
    return MaterialisedAnswers(written, champions, done, {"store": stored - started, "champions": loaded - stored,
                                               "answers": time.perf_counter() - loaded})


def _champions_prepared(settings: Settings) -> dict[str, Any]:
    """The champions, each read into TreeSHAP tables and checked, as the server loads them."""
    from serving.explain import prepare_all
    from serving.scoring import load_champions

    champions = load_champions(settings)
    prepare_all(champions, settings.explain)
    return champions


def _payloads(records: list[dict[str, Any]], people: np.ndarray) -> list[tuple[str, str]]:
    """Each person's answers of one target as (person_id, JSON text), in ``people`` order.
    A person the target applies to without an answer (no open deal left) gets an empty
    list, so the set stays complete and is read, not recomputed. The text is orjson's: the
    values read back (``json.loads``) are exactly the records (floats are written in
    their shortest exact form, as ``json`` writes them)."""
    dumps = orjson.dumps
    wanted = people.tolist()
    if [r["person_id"] for r in records] == wanted:  # one answer a person (all but time to close)
        return [(pid, dumps([r], default=_plain).decode()) for pid, r in zip(wanted, records)]
    grouped: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        grouped.setdefault(record["person_id"], []).append(record)
    return [(pid, dumps(grouped.get(pid, []), default=_plain).decode()) for pid in dict.fromkeys(wanted)]


def _points(records: list[dict[str, Any]], target: str) -> pd.DataFrame:
    """The score history's points of one target's answers."""
    return pd.DataFrame({
        "person_id": [r["person_id"] for r in records], "target": target,
        "score": [r["score"] for r in records], "deal_id": [r.get("deal_id") for r in records],
        "probability": [r["probability"] for r in records], "model_version": [r["model_version"] for r in records],
    })


class _Source:
    """Where the rows of the day to precompute come from: the features just written, when
    they read as the store gives them, else the store."""

    #: Rows compared with the store before the features in memory are trusted.
    CHECKED_ROWS = 64

    def __init__(self, store: FeatureStore, day: date, written: MaterialisedDay | None) -> None:
        self.store, self.day = store, day
        self.population = store.read_rows([], day).population
        self.memory = StoredForm(written) if written is not None else None
        if self.memory is not None and not self._reads_as_stored(self.memory):
            self.memory = None
        self.people = [] if self.memory is not None else store.person_ids(day)
        self.n = len(self.memory) if self.memory is not None else len(self.people)

    def chunk(self, start: int, stop: int) -> tuple[FeatureRows, dict[str, np.ndarray]]:
        if self.memory is not None:
            return self.memory.rows(np.arange(start, min(stop, self.n)))
        found = self.store.read_rows(self.people[start:stop], self.day)
        return found.rows, found.eligible

    def _reads_as_stored(self, memory: StoredForm) -> bool:
        n = len(memory)
        at = np.unique(np.linspace(0, n - 1, min(self.CHECKED_ROWS, n)).astype(np.int64))
        ours, our_eligible = memory.rows(at)
        found = self.store.read_rows(ours.ids.tolist(), self.day)
        theirs = {pid: i for i, pid in enumerate(found.rows.ids.tolist())}
        for j, pid in enumerate(ours.ids.tolist()):
            i = theirs.get(pid)
            if i is None or not _same_row(ours, our_eligible, j, found.rows, found.eligible, i):
                logger.warning("the features in memory do not read as the store gives them (person %s): "
                               "precomputing from the store", pid)
                return False
        return True


class StoredForm:
    """A day just written, as ``FeatureStore.read_rows`` gives its rows back: numbers as one
    float block (NaN for missing; -0.0 as 0.0, as SQLite stores it), text as objects with
    None for missing, and per target whether it applies to each row."""

    def __init__(self, written: MaterialisedDay) -> None:
        self.features = written.features
        index = pd.Index(self.features.index.to_numpy(dtype=object), dtype=object)
        self.ids = index.to_numpy()
        self.text = [c for c in self.features.columns if not pd.api.types.is_numeric_dtype(self.features[c])]
        self.numeric = [c for c in self.features.columns if c not in self.text]
        # Flags by position, once: looking a chunk's ids up in each population again
        # costs more than scoring them.
        self.eligible = eligibility_flags(index, written.eligible)

    def __len__(self) -> int:
        return len(self.ids)

    def rows(self, positions: np.ndarray) -> tuple[FeatureRows, dict[str, np.ndarray]]:
        """The rows at ``positions``, and per target whether it applies to each."""
        frame = self.features.iloc[positions]
        block = frame[self.numeric].to_numpy(dtype=np.float64, na_value=np.nan) + 0.0
        at = {c: j for j, c in enumerate(self.numeric)}
        columns = {}
        for c in frame.columns:
            if c in at:
                columns[c] = block[:, at[c]]
            else:
                values = frame[c].astype(object).to_numpy()
                columns[c] = np.where(pd.isna(values), None, values)
        return FeatureRows(self.ids[positions], columns), {t: f[positions] for t, f in self.eligible.items()}


def _same_row(ours: FeatureRows, our_eligible: dict[str, np.ndarray], j: int, stored: FeatureRows,
              stored_eligible: dict[str, np.ndarray], i: int) -> bool:
    """Whether row ``j`` in memory is the stored row ``i``: the same columns, numbers equal
    to the bit, text of the same type and value, the same targets."""
    if ours.names != stored.names or any(bool(our_eligible[t][j]) != bool(stored_eligible[t][i]) for t in TARGETS):
        return False
    for name in ours.names:
        a, b = ours.column(name)[j : j + 1], stored.column(name)[i : i + 1]
        if a.dtype != b.dtype:
            return False
        if a.dtype == np.float64:
            if a.view(np.int64)[0] != b.view(np.int64)[0] and not (np.isnan(a[0]) and np.isnan(b[0])):
                return False
        elif type(a[0]) is not type(b[0]) or a[0] != b[0]:
            return False
    return True


def refresh_answers(app: Any) -> dict[str, int]:
    """What the server runs after loading: precompute the latest day's stale targets, in
    one process of the server at a time (the others keep computing on a miss meanwhile).
    Never raises: an answer not stored is an answer computed."""
    if not app.settings.serving.precompute_answers:
        return {}
    try:
        stale = stale_targets(app)
        if not stale:
            return {}
        # One process of every server sharing the store: a lock file beside a SQLite store,
        # an advisory lock in a PostgreSQL one.
        with app.store.exclusive("answers") as mine:
            if not mine:
                return {}
            stale = stale_targets(app)  # another process may have just made them
            done = precompute_answers(app, targets=stale) if stale else {}
        logger.info("precomputed answers: %s", done)
        return done
    except StoreUnavailable as err:  # one line: the store is down, not broken
        logger.warning("precomputing answers skipped: %s; answers by id are computed", err)
        return {}
    except Exception:  # logged: scoring must not stop because a cache could not be filled
        logger.exception("precomputing answers failed; answers by id are computed")
        return {}


def _plain(value: Any) -> Any:
    """What json cannot write itself: times as ISO text, numpy scalars as numbers."""
    if isinstance(value, (pd.Timestamp, date)):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in an answer")
