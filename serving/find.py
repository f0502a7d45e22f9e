"""Finding a person by what a marketer has at hand: a lead id, a customer id, an e-mail or a
phone number (or Radar's own ``person_id``).

``GET /find?q=...`` answers who matched and by which kind of key, with the person's CRM
ids, and never the e-mail or phone itself: the page shows nothing personal it did not
already have. E-mails and phones are matched the way identity linking compared them when
the CRM was loaded (``features.identity``): an e-mail trimmed and lower-cased, a phone in
E.164 read in ``identity.default_phone_region`` unless written with ``+``. Where the
mapping hashed them at ingest (``hash_columns`` with ``RADAR_IDENTITY__HASH_SECRET``), the
stored values are keyed hashes of those normal forms, so the query is hashed the same way
(``features.privacy.pseudonymise``) and either form matches.

The lookup reads the validated CRM the server loaded for the page (``serving.ui_api``),
records created before the page's day only, so what is found is what /score and the lists
know. Without a CRM folder, lead and customer ids are still found through the feature
store's id table; e-mails and phones then need the folder.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any, Literal, Optional

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from features.contract import CRMData
from features.identity import normalise_emails, normalise_phones
from features.privacy import hash_form, pseudonymise
from features.source_ids import ids_by_person, source_ids
from radar.config import Settings
from serving.app import ApiError, crm_id_fields
from serving.feature_store import FeatureStore, UnknownDay

FindKind = Literal["person_id", "lead_id", "customer_id", "email", "phone"]
KINDS: tuple[str, ...] = ("person_id", "lead_id", "customer_id", "email", "phone")
CONTACT: tuple[str, ...] = ("email", "phone")
#: Longest query: an e-mail address is at most 254 characters, ids and phones far less.
MAX_QUERY = 320
#: Each table's time column: a record counts from the moment it was created.
TIMES = {"leads": "created_at", "interactions": "timestamp", "orders": "timestamp", "deals": "created_at"}
#: A query read as a phone number: phone characters only, and enough digits to be one
#: (a short number is more likely a typed id than a phone).
_PHONE_QUERY = re.compile(r"\+?[\d\s\-./()]+")
MIN_PHONE_DIGITS = 6


class PersonMatch(BaseModel):
    person_id: str
    lead_id: Optional[str] = Field(None, description="The person's latest lead id in the CRM.")
    customer_id: Optional[str] = Field(None, description="The person's latest customer id in the CRM.")
    lead_ids: list[str] = Field(default_factory=list, description="Every lead id of the person, oldest first.")
    customer_ids: list[str] = Field(default_factory=list, description="Every customer id of the person, oldest first.")
    matched_by: list[FindKind] = Field(description="Which kinds of key matched the query.")


class FindResponse(BaseModel):
    as_of: Optional[str] = Field(None, description="The day whose records were searched (YYYY-MM-DD).")
    matches: list[PersonMatch]
    total: int = Field(description="People matched; more than the matches listed when over serving.find_limit.")


@dataclass
class Query:
    """The forms a query is looked up in, per kind of key (none: not that kind)."""

    forms: dict[str, list[str]]

    @classmethod
    def of(cls, text: str, kind: str | None, settings: Settings) -> "Query":
        text = text.strip()
        wanted = [kind] if kind else list(KINDS)
        forms: dict[str, list[str]] = {}
        for k in wanted:
            normal = _normal_form(k, text, settings)
            if normal is None:
                continue
            secret = settings.identity.hash_secret
            hashed = [pseudonymise(hash_form(normal), secret.get_secret_value())] \
                if k in CONTACT and secret is not None and secret.get_secret_value() else []
            forms[k] = list(dict.fromkeys([normal, *hashed]))
        return cls(forms)

    @property
    def contact(self) -> bool:
        return any(k in self.forms for k in CONTACT)


def _normal_form(kind: str, text: str, settings: Settings) -> str | None:
    """The query as identity linking would have stored a key of this kind; None when it
    cannot be one (not an e-mail, not a valid phone number)."""
    if not text:
        return None
    if kind == "email":
        if "@" not in text:
            return None
        normal = normalise_emails(pd.Series([text], dtype=object))[0].iloc[0]
        return None if pd.isna(normal) else str(normal)
    if kind == "phone":
        if not _PHONE_QUERY.fullmatch(text) or sum(c.isdigit() for c in text) < MIN_PHONE_DIGITS:
            return None
        normal = normalise_phones(pd.Series([text], dtype=object), settings.identity.default_phone_region)[0].iloc[0]
        return None if pd.isna(normal) else str(normal)
    return text


class PersonIndex:
    """Per kind of key, its values sorted with the person each belongs to: a lookup is a
    binary search, and the index holds two arrays per kind rather than a dict per value."""

    def __init__(self, data: CRMData, as_of: pd.Timestamp) -> None:
        self.data, self.as_of = data, as_of
        pairs: dict[str, list[pd.DataFrame]] = {k: [] for k in KINDS}
        for name, time in TIMES.items():
            table = getattr(data, name)
            if table is None or "person_id" not in table.columns or time not in table.columns:
                continue
            # Column by column, never a filtered copy of the whole table (interactions are
            # the largest table and carry a person id on every row).
            known = (table[time] < as_of).to_numpy() & table["person_id"].notna().to_numpy()
            people = table["person_id"].to_numpy(dtype=object)
            for kind in KINDS:
                if kind not in table.columns:
                    continue
                if kind == "person_id":
                    distinct = pd.unique(people[known])
                    pairs[kind].append(pd.DataFrame({"value": distinct, "person_id": distinct}))
                    continue
                keep = known & table[kind].notna().to_numpy()
                pairs[kind].append(pd.DataFrame({"value": table[kind].to_numpy(dtype=object)[keep],
                                                 "person_id": people[keep]}).astype(str))
        self.keys: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for kind, parts in pairs.items():
            if not parts:
                continue
            frame = pd.concat(parts, ignore_index=True).astype(str).drop_duplicates().sort_values(["value", "person_id"])
            self.keys[kind] = (frame["value"].to_numpy(dtype=object), frame["person_id"].to_numpy(dtype=object))

    def lookup(self, kind: str, forms: list[str]) -> list[str]:
        """The people that hold any of these forms of a key of this kind."""
        if kind not in self.keys:
            return []
        values, people = self.keys[kind]
        found: list[str] = []
        for form in forms:
            left, right = np.searchsorted(values, form, "left"), np.searchsorted(values, form, "right")
            found += people[left:right].tolist()
        return found

    def ids(self, people: list[str]) -> dict[str, dict[str, list[str]]]:
        """The CRM ids of these people as of the index's day (``source_ids`` on their rows only)."""
        mine = {name: _rows_of(getattr(self.data, name), people) for name in ("leads", "orders", "deals")}
        return ids_by_person(source_ids(CRMData(**mine), self.as_of))


def _rows_of(table: pd.DataFrame | None, people: list[str]) -> pd.DataFrame | None:
    if table is None or "person_id" not in table.columns:
        return None
    return table[table["person_id"].isin(people)]


_build_lock = threading.Lock()


def person_index(views: Any) -> PersonIndex:
    """The views' index, built on the first search (building it at start would delay /readyz)."""
    data, as_of = views.require_data()
    with _build_lock:
        if getattr(views, "index", None) is None:
            views.index = PersonIndex(data, as_of)
        return views.index


def find_answer(views: Any, store: FeatureStore | None, q: str, kind: str | None, settings: Settings) -> FindResponse:
    """Who ``q`` names (optionally only as a key of ``kind``), with their CRM ids and what
    matched; 404 when nobody, 422 when it cannot be a key of the kind asked."""
    query = Query.of(q, kind, settings)
    if not query.forms:
        # Say what the query is not, never what it is.
        raise ApiError(422, f"the query is not a valid {(kind or 'key').replace('_', ' ')}", field="q",
                       detail="give a lead id, customer id, person id, e-mail address or phone number")
    limit = settings.serving.find_limit
    if views is not None and views.data is not None:
        index = person_index(views)
        matched: dict[str, list[str]] = {}
        for k, forms in query.forms.items():
            for person in index.lookup(k, forms):
                matched.setdefault(person, [])
                if k not in matched[person]:
                    matched[person].append(k)
        people = sorted(matched)[:limit]
        ids = index.ids(people) if people else {}
        day = index.as_of.date().isoformat()
        total = len(matched)
    else:
        people, matched, ids, day = _find_in_store(store, query)
        total = len(people)
        if not people and query.contact:
            raise ApiError(503, "finding by e-mail or phone needs the CRM folder", field="q",
                           detail="start the server with RADAR_DATA_DIR=<validated folder>")
    if not people:
        raise ApiError(404, "nobody matches the query", field="q",
                       detail="searched lead ids, customer ids, person ids, e-mails and phones")
    return FindResponse(as_of=day, total=total,
                        matches=[PersonMatch(person_id=p, matched_by=matched[p], **crm_id_fields(ids, p)) for p in people])


def _find_in_store(store: FeatureStore | None, query: Query) -> tuple[list[str], dict[str, list[str]], dict[str, dict[str, list[str]]], str | None]:
    """Lead and customer ids (and person ids) through the feature store's latest day."""
    if store is None or not store.exists():
        return [], {}, {}, None
    try:
        days = store.days()
        day = days[-1] if days else None
        if day is None:
            return [], {}, {}, None
        matched: dict[str, list[str]] = {}
        for kind in ("lead_id", "customer_id"):
            for form in query.forms.get(kind, []):
                person = store.find_person(kind, form, day)[1]
                if person is not None:
                    matched.setdefault(person, []).append(kind)
        for form in query.forms.get("person_id", []):
            if store.read_rows([form], day).rows.ids.size:
                matched.setdefault(form, []).insert(0, "person_id")
    except UnknownDay:
        return [], {}, {}, None
    people = sorted(matched)
    return people, matched, store.read_ids(day, people) if people else {}, day.isoformat()
