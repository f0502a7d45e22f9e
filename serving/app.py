"""What the HTTP API does, without HTTP: the BentoML service only forwards to this.

A person is scored either from the online feature store (by ``person_id``) or from a
history sent in the request; both go through the same pipeline and scoring functions as
``radar score``, so a person gets the same answer by every route. Problems with a request
raise :class:`ApiError`, which the service turns into a JSON answer with its status.
"""

from __future__ import annotations

import logging
import math
import sqlite3
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
import orjson
import pandas as pd
from sqlalchemy.exc import OperationalError

from features.contact import add_contact_quality
from features.contract import CRMData
from features.database import problem
from features.rows import FeatureRows
from features.pipeline import build_deal_features, build_features
from features.privacy import redact
from features.source_ids import ID_COLUMNS, ids_by_person, source_ids
from features.validation import text_output
from radar.config import Settings
from serving import scoring
from serving.feature_store import FeatureStore, StoredPeople, StoreUnavailable, UnknownDay
from serving.history import ScoreHistory, answer_trends
from serving.model_store import LoadedModels
from serving.scoring import ValueBasis
from serving.schemas import (
    BatchRequest,
    BatchResponse,
    HistoryResponse,
    ModelsResponse,
    PersonHistory,
    PersonRequest,
    PersonScores,
    ScoreOptions,
    ScoreRequest,
)
from training.datasets import TARGETS

logger = logging.getLogger(__name__)
WHY_NOT = {
    "lead_quality": "not an open lead: no lead in the last horizon, or already a customer",
    "purchase_probability": "unknown person",
    "time_to_close": "no open deal",
    "churn_by_indifference": "not an active customer",
}


class ApiError(Exception):
    """A request the API cannot answer, with the HTTP status and the field at fault."""

    def __init__(self, status: int, error: str, field: str | None = None, detail: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(error)
        self.status, self.error, self.field, self.detail = status, error, field, detail
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": self.error, "field": self.field, "detail": self.detail}


@contextmanager
def store_errors() -> Iterator[None]:
    """A store that cannot be read now as a 503 to retry, never a 500: the shared store of
    ``serving.store_url`` down for a moment, or a SQLite file busy; nothing is wrong with
    the request. Where the store lives goes to the log, not to the caller."""
    try:
        yield
    except (StoreUnavailable, OperationalError, sqlite3.OperationalError) as err:
        if isinstance(err, sqlite3.OperationalError) and not _sqlite_busy(err):
            raise  # a wrong statement is Radar's bug, not a moment to wait out
        logger.warning("store unavailable: %s", err if isinstance(err, StoreUnavailable) else problem(err))
        raise ApiError(503, "the store cannot be read now; try again", headers={"Retry-After": "1"}) from None


def _sqlite_busy(err: sqlite3.OperationalError) -> bool:
    """Whether SQLite failed for a moment (a writer's lock, a file that cannot be opened or
    read now) rather than on a statement."""
    text = str(err).lower()
    return any(word in text for word in ("locked", "busy", "unable to open", "disk i/o"))


@dataclass
class _Job:
    """One person of a request, with its position (answers keep the request's order)."""

    position: int
    request: PersonRequest
    key: str


class ScoringApp:
    """Scores people with loaded champions; knows nothing of HTTP."""

    def __init__(self, settings: Settings, models: LoadedModels, store: FeatureStore | None,
                 history: ScoreHistory | None = None) -> None:
        self.settings, self.models, self.store, self.history = settings, models, store, history

    def score_history(self, person_id: str | None = None, target: str | None = None, lead_id: str | None = None,
                      customer_id: str | None = None) -> HistoryResponse:
        """Every recorded score of one person (optionally one target), oldest first; the
        person by Radar's ``person_id`` or by the CRM's ``lead_id`` or ``customer_id`` (found
        through the feature store's id table of the latest day, as /score finds them)."""
        given = {k: v for k, v in (("person_id", person_id), ("lead_id", lead_id), ("customer_id", customer_id))
                 if v is not None}
        if len(given) != 1:
            raise ApiError(422, "give one of person_id, lead_id or customer_id", field=next(iter(given), "person_id"))
        field, value = next(iter(given.items()))
        if target is not None and target not in TARGETS:
            raise ApiError(422, f"unknown target {target!r}; known: {', '.join(TARGETS)}", field="target")
        if self.history is None:
            raise ApiError(404, "no score history: `radar score` records one", field=field)
        if field != "person_id":
            person_id = self._person_of(field, value)
        points = self.history.series([person_id], target)
        points = points[points["target"].isin(TARGETS)]
        if not len(points):
            raise ApiError(404, f"no recorded scores for {field} {redact(value)!r}", field=field)
        records = [r | {"deal_id": r["deal_id"] or None} for r in points.to_dict(orient="records")]
        return HistoryResponse(person_id=person_id, target=target, points=records)

    def _person_of(self, kind: str, value: str) -> str:
        """The person a CRM id belongs to in the latest materialised day; 404 when none."""
        if self.store is None or not self.store.exists():
            raise ApiError(404, "no feature store: run `radar features DIR --as-of DAY --materialize`", field=kind)
        try:
            day, person = self.store.find_person(kind, value)
        except UnknownDay:
            raise ApiError(404, "no materialised day in the feature store", field=kind) from None
        if person is None:
            raise ApiError(404, f"unknown {kind} {redact(value)!r} in the features of {day}", field=kind)
        return person

    def model_list(self) -> ModelsResponse:
        infos = [self.models.infos[t] for t in TARGETS if t in self.models.infos]
        return ModelsResponse(models=infos, missing=[t for t in TARGETS if t not in self.models.champions])

    def score(self, request: ScoreRequest) -> PersonScores:
        answer = self._score_all([request], request)[0]
        if answer.error:
            field = next((k for k in ("lead_id", "customer_id") if getattr(request, k) is not None), "person_id")
            raise ApiError(404, answer.error, field=field)
        return answer

    def score_batch(self, request: BatchRequest) -> BatchResponse:
        limit = self.settings.serving.max_batch_size
        if len(request.persons) > limit:
            raise ApiError(422, f"too many persons: {len(request.persons)} > max_batch_size {limit}", field="persons")
        return BatchResponse(results=self._score_all(request.persons, request))

    # --- the two routes ---------------------------------------------------------------

    def _score_all(self, persons: list[PersonRequest], options: ScoreOptions) -> list[PersonScores]:
        targets = list(dict.fromkeys(options.targets or TARGETS))
        top_k = self.settings.serving.default_top_k if options.top_k is None else options.top_k
        groups: dict[tuple[bool, datetime | None], list[_Job]] = defaultdict(list)
        for i, person in enumerate(persons):
            by_history = person.history is not None
            key = f"#{i}" if by_history else str(person.person_id or "")
            groups[(by_history, _naive(person.as_of))].append(_Job(i, person, key))
        answers: list[PersonScores | None] = [None] * len(persons)
        for (by_history, as_of), jobs in groups.items():
            score = self._from_history if by_history else self._from_store
            for job, answer in zip(jobs, score(jobs, as_of, targets, top_k)):
                answers[job.position] = answer
        return [a for a in answers if a is not None]

    def _from_store(self, jobs: list[_Job], as_of: datetime | None, targets: list[str], top_k: int) -> list[PersonScores]:
        if self.store is None or not self.store.exists():
            raise ApiError(404, "no feature store: run `radar features DIR --as-of DAY --materialize`",
                           field="person_id")
        if as_of is not None and as_of != datetime(as_of.year, as_of.month, as_of.day):
            raise ApiError(422, "by person_id, as_of must be a materialised day (YYYY-MM-DD)", field="as_of")
        with self.store.reading():
            return self._read_and_score(jobs, as_of, targets, top_k)

    def _read_and_score(self, jobs: list[_Job], as_of: datetime | None, targets: list[str],
                        top_k: int) -> list[PersonScores]:
        try:
            unknown = {j.position: self._find_person(j, as_of) for j in jobs if j.request.person_id is None}
            keys = [j.key for j in jobs]  # those asked by a CRM id now hold its person's
            # Who is stored and which targets apply first: when every answer asked for is
            # precomputed, the features themselves are never read.
            found = self.store.read_rows(keys, as_of.date() if as_of else None, features=False)
        except UnknownDay as err:
            raise ApiError(404, str(err), field="as_of", detail=f"materialised days: {self._days()}") from None
        stored = self._stored_answers(found, targets, top_k)
        if not self._covered(found, targets, stored):
            found = self.store.read_rows(keys, found.as_of)
        ids = self.store.read_ids(found.as_of, keys)
        moment = pd.Timestamp(found.as_of)
        deals = None
        if "time_to_close" in targets and "time_to_close" not in stored and found.eligible["time_to_close"].any():
            deals = self.store.read_deals(found.as_of, found.rows.take(np.flatnonzero(found.eligible["time_to_close"])))
        scores = self._score_rows(found.rows, found.eligible, moment, targets, top_k, ValueBasis.stored(found.population),
                                  deals, stored)
        where = f"in the features of {found.as_of}"
        return [self._answer(j, moment, targets, scores, found.rows.ids,
                             unknown.get(j.position) or f"unknown person_id {redact(j.key)!r} {where}", ids)
                for j in jobs]

    def _find_person(self, job: _Job, as_of: datetime | None) -> str:
        """Point a job asked by ``lead_id`` or ``customer_id`` at its person (its key stays
        empty when none has that id); returns the message for an unknown id."""
        kind = "lead_id" if job.request.lead_id is not None else "customer_id"
        value = str(getattr(job.request, kind))
        day, person = self.store.find_person(kind, value, as_of.date() if as_of else None)
        job.key = person or ""
        return f"unknown {kind} {redact(value)!r} in the features of {day}"

    def _from_history(self, jobs: list[_Job], as_of: datetime | None, targets: list[str], top_k: int) -> list[PersonScores]:
        moment = pd.Timestamp(as_of or datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0))
        data = history_to_crm([(j.key, j.request.history) for j in jobs if j.request.history is not None],
                              self.settings.identity.default_phone_region)
        ids = [j.key for j in jobs]
        features = build_features(data, moment, self.settings.features, persons=ids)
        eligible = {t: features.index.isin(scoring.eligible(t, data, features, moment, self.settings)) for t in targets}
        # A one-person history has no population of its own to read an expected value against.
        basis = self._basis() or ValueBasis.of(features)
        deals = None
        if "time_to_close" in targets:
            people = features.loc[eligible["time_to_close"]]
            deals = FeatureRows.from_frame(build_deal_features(data, moment, self.settings.features, person_features=people))
        scores = self._score_rows(FeatureRows.from_frame(features), eligible, moment, targets, top_k, basis, deals)
        # The CRM's ids are the lead ids the request gave (a lead sent without one has none).
        given = CRMData(leads=None if data.leads is None else data.leads[data.leads["lead_id"].isin(_given_lead_ids(jobs))])
        ids = ids_by_person(source_ids(given, moment))
        return [self._answer(j, moment, targets, scores, features.index.to_numpy(), "", ids) for j in jobs]

    # --- scoring and answers ------------------------------------------------------------

    def _score_rows(self, rows: FeatureRows, eligible: dict[str, np.ndarray], as_of: pd.Timestamp,
                    targets: list[str], top_k: int, basis: ValueBasis, deals: FeatureRows | None = None,
                    stored: dict[str, dict[str, list[dict[str, Any]]]] | None = None,
                    ) -> dict[str, list[dict[str, Any]]]:
        """Every target's answers with their trends, as JSON-ready records grouped by person
        id; a target in ``stored`` (precomputed answers) is read from there, without its
        reasons when none are asked for, instead of computed."""
        records: list[dict[str, Any]] = []
        for target in targets:
            applies = eligible.get(target)
            if target not in self.models.champions or applies is None or not applies.any():
                continue
            if stored and target in stored:
                records += [_cut(r, top_k) for pid in rows.ids[applies] for r in stored[target][pid]]
            else:
                records += self.target_records(target, rows, applies, as_of, top_k, basis, deals)
        # Every target's trend in one read of the history (a round trip each to a shared store).
        by_person: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for record in answer_trends(self.history, records, as_of.date(), self.settings.scoring.trend_min_change):
            by_person[record.pop("person_id")].append(record)
        return by_person

    def target_records(self, target: str, rows: FeatureRows, applies: np.ndarray, as_of: pd.Timestamp, top_k: int,
                       basis: ValueBasis, deals: FeatureRows | None = None) -> list[dict[str, Any]]:
        """One target's computed answers for the rows it applies to (time to close: one per
        open deal of ``deals``), as records with their ``person_id``; no trends."""
        scored = deals if target == "time_to_close" else rows.take(np.flatnonzero(applies))
        if scored is None or not len(scored):
            return []
        champion = self.models.champions[target]
        return _records(scoring.target_answers(target, champion, scored, as_of, self.settings, basis, top_k or None))

    def _stored_answers(self, found: StoredPeople, targets: list[str],
                        top_k: int) -> dict[str, dict[str, list[dict[str, Any]]]]:
        """Per target, the precomputed answers of the found persons, when they are usable:
        made by the champion serving now, for this day, with ``top_k`` reasons (or any, when
        none are asked for), and for every person the target applies to. Anything else is
        computed. Exactly ``top_k``: the reasons merge groups that say the same thing among
        ``2 × top_k`` candidates, so the top 3 are not always the first 3 of the top 5."""
        if not self.settings.serving.precompute_answers or self.store is None:
            return {}
        asked = [t for t in targets if t in self.models.champions and found.eligible.get(t) is not None
                 and found.eligible[t].any()]
        made = self.store.answer_sets(found.as_of) if asked else {}
        usable: dict[str, list[str]] = {}
        for target in asked:
            version = made.get(target)
            if version is None or version[0] != self.models.champions[target].version or (top_k and version[1] != top_k):
                continue
            usable[target] = list(dict.fromkeys(found.rows.ids[found.eligible[target]].tolist()))
        if not usable:
            return {}
        people = list(dict.fromkeys(p for wanted in usable.values() for p in wanted))
        payloads = self.store.read_answers(found.as_of, list(usable), people)
        return {target: {pid: orjson.loads(payloads[target][pid]) for pid in wanted}
                for target, wanted in usable.items() if all(pid in payloads[target] for pid in wanted)}

    def _covered(self, found: StoredPeople, targets: list[str], stored: dict[str, Any]) -> bool:
        """Whether every target asked for that applies to someone found is answered from
        ``stored``: then nothing needs computing, and no feature needs reading."""
        return all(t in stored for t in targets
                   if t in self.models.champions and t in found.eligible and found.eligible[t].any())

    def _answer(self, job: _Job, as_of: pd.Timestamp, targets: list[str], scores: dict[str, list[dict[str, Any]]],
                known: np.ndarray, unknown_message: str, ids: dict[str, dict[str, list[str]]]) -> PersonScores:
        by_id = job.request.history is None
        label = job.key if by_id and job.key else job.request.person_id
        if by_id and job.key not in known:
            asked = {k: getattr(job.request, k) for k in ("lead_id", "customer_id") if getattr(job.request, k)}
            return PersonScores(person_id=label, as_of=as_of.to_pydatetime(), scores=[], error=unknown_message,
                                **asked)
        answered = scores.get(job.key, [])
        done = {s["target"] for s in answered}
        skipped = {t: ("no champion model yet" if t not in self.models.champions else WHY_NOT[t])
                   for t in targets if t not in done}
        return PersonScores.model_validate({"person_id": label, "as_of": as_of.to_pydatetime(), "scores": answered,
                                            "not_applicable": skipped, **crm_id_fields(ids, job.key)})

    def _basis(self) -> ValueBasis | None:
        """The latest materialised population's figures, if there is one."""
        if self.store is None or not self.store.exists():
            return None
        try:
            return ValueBasis.stored(self.store.read_rows([], None).population)
        except UnknownDay:
            return None

    def _days(self) -> str:
        days = self.store.days() if self.store else []
        return ", ".join(d.isoformat() for d in days[-5:]) or "none"


def _cut(record: dict[str, Any], top_k: int) -> dict[str, Any]:
    """A stored answer as computing gives it: without reasons when none are asked for."""
    record = dict(record)
    if not top_k:
        record.pop("reasons", None)
    return record


def _given_lead_ids(jobs: list[_Job]) -> list[str]:
    return [lead.lead_id for j in jobs if j.request.history is not None for lead in j.request.history.leads
            if lead.lead_id is not None]


def crm_id_fields(ids: dict[str, dict[str, list[str]]], person: str) -> dict[str, Any]:
    """One person's CRM ids as answer fields: the latest of each kind and every one."""
    mine = ids.get(person, {})
    return {k: mine[k][-1] if mine.get(k) else None for k in ID_COLUMNS} | {f"{k}s": mine.get(k, []) for k in ID_COLUMNS}


def _records(columns: dict[str, Any]) -> list[dict[str, Any]]:
    """Score-table columns as one JSON-ready record per row: NaN becomes null, numbers
    plain Python numbers, the deal id text."""
    names = [c for c in (*scoring.SCORE_COLUMNS, "reasons") if c in columns]
    values = [_json_column(name, columns[name]) for name in names]
    return [dict(zip(names, row)) for row in zip(*values)]


def _json_column(name: str, values: Any) -> list[Any]:
    if name == "deal_id":
        return [None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in values]
    if isinstance(values, np.ndarray) and values.dtype.kind == "f":
        return [None if math.isnan(v) else v for v in values.tolist()]
    return values.tolist() if isinstance(values, np.ndarray) else list(values)


def _naive(moment: datetime | None) -> datetime | None:
    """UTC without a zone, as the data contract stores times."""
    if moment is None or moment.tzinfo is None:
        return moment
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


# --- a request's history as CRM tables -----------------------------------------------------

#: Lead fields read for their contact-data quality only.
CONTACT_FIELDS: tuple[str, ...] = ("email", "phone", "name")


def history_to_crm(histories: list[tuple[str, PersonHistory]], phone_region: str = "GB") -> CRMData:
    """The contract's tables for people sent in a request (``person_id`` already known:
    one history is one person, so no identity linking is needed).

    Leads get their contact-data quality as loading gives it (features.contact), phones
    read in the lead's country or else ``phone_region``. A contact field no lead of the
    request carries is left out, so its kind reads as unknown rather than "none given"."""
    leads, interactions, orders, deals = [], [], [], []
    for pid, history in histories:
        for j, lead in enumerate(history.leads):
            row = lead.model_dump(exclude={"attributes", *CONTACT_FIELDS}) | dict(lead.attributes)
            row |= lead.model_dump(include=set(CONTACT_FIELDS), exclude_none=True)
            leads.append(row | {"lead_id": lead.lead_id or f"{pid}-lead{j}", "person_id": pid})
        interactions += [i.model_dump() | {"person_id": pid} for i in history.interactions]
        orders += [o.model_dump() | {"person_id": pid} for o in history.orders]
        deals += [d.model_dump() | {"person_id": pid} for d in history.deals]
    lead_table = _table(leads, ("created_at", "converted_at"), ())
    if lead_table is not None:
        lead_table = add_contact_quality(lead_table, phone_region)
        if "has_name" in lead_table.columns:
            # A lead sent without a name says nothing about one (in a CRM export, a blank
            # name cell is "no name"); so one person's answer never depends on the batch.
            lead_table["has_name"] = lead_table["has_name"].where(lead_table["name"].notna())
    return CRMData(
        leads=lead_table,
        interactions=_table(interactions, ("timestamp",), ("value",)),
        orders=_table(orders, ("timestamp",), ("amount",)),
        deals=_table(deals, ("created_at", "closed_at"), ("amount",)),
    )


def _table(rows: list[dict[str, Any]], times: tuple[str, ...], numbers: tuple[str, ...]) -> pd.DataFrame | None:
    """Rows with the dtypes loading gives: UTC-naive datetime64[ns], float64, text."""
    if not rows:
        return None
    frame = pd.DataFrame(rows)
    for column in frame.columns:
        if column in times:
            frame[column] = pd.to_datetime(frame[column].map(_naive_or_none)).astype("datetime64[ns]")
        elif column in numbers:
            frame[column] = pd.to_numeric(frame[column]).astype("float64")
        elif not pd.api.types.is_numeric_dtype(frame[column]) or frame[column].isna().all():
            frame[column] = text_output(frame[column].astype(object).where(frame[column].notna(), None))
    return frame


def _naive_or_none(value: Any) -> Any:
    return _naive(value) if isinstance(value, datetime) else None


def build_app(settings: Settings, source: str = "auto") -> ScoringApp:
    """Load the champions (registry, or BentoML store) and open the feature store."""
    from serving.explain import prepare_all
    from serving.feature_store import open_store
    from serving.model_store import load_models

    models = load_models(settings, source)
    # Each champion read into TreeSHAP tables and checked at load, not on the first request.
    prepare_all(models.champions, settings.explain)
    return ScoringApp(settings, models, open_store(settings), ScoreHistory.of(settings))
