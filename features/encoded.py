"""CRM tables turned into flat numpy arrays once, for any number of ``as_of`` moments.

Person ids are factorised to integer codes ``0..n-1`` (in sorted id order; int32, which
halves the largest arrays, unless there are 2**31 persons or more), categories to small
integers and datetimes to int64 nanoseconds. Training builds many snapshots from one
encoding; scoring builds one. Nothing here looks at ``as_of``: the point-in-time cut is
made later, in :mod:`features.families`, on these arrays.

Rows without a person or without their defining time (e.g. an order without timestamp)
cannot be placed before or after any moment and are left out; validation reports them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.contract import (
    DEAL_OUTCOMES,
    DEAL_STAGES,
    INTERACTION_TYPES,
    LEADS,
    ORDER_STATUSES,
    PERSON_KEYS,
    CRMData,
)
from features.grouped import earliest
from features.grouped import rows as _all_or_mask
from features.mapping import normalise_label
from features.privacy import PERSONAL_COLUMNS
from features.windows import NAT, column_ns

PERSON_COLUMN = "person_id"
PAID, FAILED, REFUNDED = (ORDER_STATUSES.index(s) for s in ("paid", "failed", "refunded"))
WON, LOST = DEAL_OUTCOMES.index("won"), DEAL_OUTCOMES.index("lost")


@dataclass(frozen=True)
class OrderEvents:
    """Orders sorted by (person, time); ``status`` indexes ORDER_STATUSES (-1: other)."""

    code: np.ndarray
    t: np.ndarray
    amount: np.ndarray
    status: np.ndarray


@dataclass(frozen=True)
class InteractionEvents:
    """Interactions; ``kind`` indexes INTERACTION_TYPES and ``stage`` DEAL_STAGES (-1: none).

    ``deal`` indexes :attr:`DealRecords` keys (-1: no known deal).
    """

    code: np.ndarray
    t: np.ndarray
    kind: np.ndarray
    value: np.ndarray
    deal: np.ndarray
    stage: np.ndarray


@dataclass(frozen=True)
class DealRecords:
    """Deals; ``key`` is a dense deal-id code shared with interactions' ``deal``."""

    code: np.ndarray
    key: np.ndarray
    created: np.ndarray
    closed: np.ndarray
    outcome: np.ndarray
    amount: np.ndarray
    #: Deal id of each key (``ids[key]``), so results can name the deal they are about.
    ids: pd.Index
    #: The salesperson on each deal, as text codes (all -1 when the table has no owner).
    owner: "TextAttribute"

    @property
    def n_keys(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class TextAttribute:
    """A text lead column as codes into ``categories`` (sorted; -1: missing)."""

    codes: np.ndarray
    categories: np.ndarray


@dataclass(frozen=True)
class LeadRecords:
    """Leads with their source and attributes: float64 arrays (numbers) or text codes."""

    code: np.ndarray
    created: np.ndarray
    converted: np.ndarray
    attributes: dict[str, "np.ndarray | TextAttribute"]


@dataclass(frozen=True)
class EncodedCRM:
    """A whole CRM as arrays. ``ids`` are the persons, sorted; codes index into them."""

    ids: pd.Index
    first_seen: np.ndarray
    explicit_persons: bool
    leads: LeadRecords
    interactions: InteractionEvents
    orders: OrderEvents
    deals: DealRecords

    @property
    def n(self) -> int:
        return len(self.ids)


def lead_attribute_columns(leads: pd.DataFrame | None) -> list[str]:
    """Extra lead columns used as attributes, sorted by name so the order never depends on
    the export. Personal data (names, e-mails…) and datetimes are left out: a datetime in a
    lead export (``last_activity_at``…) is usually written after the fact and would leak.
    """
    if leads is None:
        return []
    skip = set(LEADS.names) | set(PERSON_KEYS) | {PERSON_COLUMN}
    return sorted(
        str(c)
        for c in leads.columns
        # Personal columns by their normalised label too: a "First Name" header is a name.
        if c not in skip and normalise_label(str(c)) not in PERSONAL_COLUMNS
        and not pd.api.types.is_datetime64_any_dtype(leads[c])
    )


def encode(data: CRMData, persons: Sequence[object] | None = None) -> EncodedCRM:
    """Encode ``data`` for the given persons, or for everyone in it when ``persons`` is None."""
    tables = {
        "leads": _or_empty(data.leads, "created_at"),
        "interactions": _or_empty(data.interactions, "timestamp"),
        "orders": _or_empty(data.orders, "timestamp"),
        "deals": _or_empty(data.deals, "created_at", "deal_id"),
    }
    ids, codes = _person_codes(tables, persons)
    leads = _encode_leads(tables["leads"], codes["leads"])
    deals, deal_ids = _encode_deals(tables["deals"], codes["deals"])
    interactions = _encode_interactions(tables["interactions"], codes["interactions"], deal_ids)
    orders = _encode_orders(tables["orders"], codes["orders"])
    first_seen = _first_seen(len(ids), leads, interactions, orders, deals)
    return EncodedCRM(ids, first_seen, persons is not None, leads, interactions, orders, deals)


def _or_empty(table: pd.DataFrame | None, *columns: str) -> pd.DataFrame:
    """An absent table behaves as an empty one with the columns the encoders need."""
    if table is not None:
        return table
    return pd.DataFrame({c: pd.Series([], dtype=object) for c in (PERSON_COLUMN, *columns)})


def _person_codes(
    tables: dict[str, pd.DataFrame], persons: Sequence[object] | None
) -> tuple[pd.Index, dict[str, np.ndarray]]:
    """The sorted person ids, and each table's rows as codes into them (-1: no person, or
    not one of ``persons``).

    The person columns of all tables are hashed together in one pass, so each row is
    hashed once and every later step works on integers: the distinct ids are sorted once
    and each row's code is its id's rank. (Hashing text ids was most of the time at 1 M
    persons; looking the distinct ids up again per table doubled it.)
    """
    for frame in tables.values():
        if PERSON_COLUMN not in frame.columns:
            raise KeyError("tables need a person_id column: unify identities before features")
    # Empty tables stay out: their object dtype would turn the others' text into objects.
    columns = [frame[PERSON_COLUMN] for frame in tables.values() if len(frame)]
    if columns:
        local, uniques = pd.factorize(pd.concat(columns, ignore_index=True))
        # Python objects (ids of mixed dtypes) are re-read, as a new Index does: text → str.
        uniques = pd.Index(np.asarray(uniques) if uniques.dtype == object else uniques)
    else:
        local, uniques = np.zeros(0, dtype=np.intp), pd.Index([], dtype=object)
    if persons is not None:
        ids = pd.Index(list(persons), dtype=object).dropna().unique()
        ids = ids if len(ids) else _no_one()
        ids = ids.sort_values()
        positions = ids.get_indexer(uniques) if len(uniques) else np.zeros(0, dtype=np.int64)
    elif len(uniques):
        ids, order = uniques.sort_values(return_indexer=True)
        positions = np.empty(len(order), dtype=np.int64)
        positions[order] = np.arange(len(order))
    else:
        ids, positions = _no_one(), np.zeros(0, dtype=np.int64)
    # factorize marks missing ids with -1, which picks the appended -1. Every table's codes
    # are views of this one array (the largest of the encoding: one code per row).
    row_codes = np.append(positions, -1).astype(_index_dtype(len(ids)))[local]
    del local
    codes, start = {}, 0
    for name, frame in tables.items():
        codes[name] = row_codes[start : start + len(frame)]
        start += len(frame)
    return ids.rename(PERSON_COLUMN), codes


def _index_dtype(n: int) -> type:
    """The integer type of codes into ``n`` things: int32 when it can hold them all."""
    return np.int32 if n < np.iinfo(np.int32).max else np.int64


def _no_one() -> pd.Index:
    """No person: the running pandas' text dtype, so an empty frame's index never depends
    on whether the tables held (future) rows."""
    return pd.Index([], dtype=pd.Series([""]).dtype)


def _category_codes(frame: pd.DataFrame, name: str, categories: tuple[str, ...]) -> np.ndarray:
    if name not in frame.columns:
        return np.full(len(frame), -1, dtype=np.int8)
    values = frame[name]
    text = pa.array(values.array) if hasattr(values.array, "__arrow_array__") else None
    if text is not None and (pa.types.is_string(text.type) or pa.types.is_large_string(text.type)):
        # Arrow text (as tables are loaded): each row is looked up among the few categories
        # in one C++ pass (missing or unknown → null → -1), with no Python string per row.
        found = pc.index_in(text, value_set=pa.array(categories, type=text.type))
        return pc.fill_null(found, -1).to_numpy().astype(np.int8)
    # Otherwise hash the rows once and look up only the few distinct values: a Categorical
    # built straight from a long text column turns every row into a Python string first.
    local, uniques = pd.factorize(values)
    positions = pd.Index(list(categories)).get_indexer(uniques) if len(uniques) else np.zeros(0, dtype=np.int64)
    return np.append(positions, -1).astype(np.int8)[local]


def _numbers(frame: pd.DataFrame, name: str) -> np.ndarray:
    if name not in frame.columns:
        return np.full(len(frame), np.nan)
    if frame[name].dtype == np.float64:
        # Already float64 (as loaded tables are): a read-only view, not a copy of the column.
        return frame[name].to_numpy()
    return pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _keep(code: np.ndarray, t: np.ndarray) -> np.ndarray | slice:
    """Rows with a person and a time (a whole-array slice, i.e. views, when that is all)."""
    keep = (code >= 0) & (t != NAT)
    return slice(None) if keep.all() else keep


def _encode_orders(orders: pd.DataFrame, code: np.ndarray) -> OrderEvents:
    t = column_ns(orders, "timestamp")
    status = _category_codes(orders, "status", ORDER_STATUSES)
    if "status" in orders.columns:
        # An order without a status is a purchase: exports of sales often carry no status.
        status = np.where(orders["status"].isna().to_numpy(), PAID, status).astype(np.int8)
    else:
        status = np.full(len(orders), PAID, dtype=np.int8)
    keep = _keep(code, t)
    code, t, amount, status = code[keep], t[keep], _numbers(orders, "amount")[keep], status[keep]
    # Sorted by person then time once, so inter-purchase gaps need no sort per snapshot.
    order = np.lexsort((t, code))
    return OrderEvents(code[order], t[order], amount[order], status[order])


def _encode_interactions(interactions: pd.DataFrame, code: np.ndarray, deal_ids: pd.Index) -> InteractionEvents:
    t = column_ns(interactions, "timestamp")
    kind = _category_codes(interactions, "type", INTERACTION_TYPES)
    deal = np.full(len(interactions), -1, dtype=_index_dtype(len(deal_ids)))
    if "deal_id" in interactions.columns and len(deal_ids):
        # Only stage events point at deals: look up those few rather than every event.
        staged = np.flatnonzero(kind == INTERACTION_TYPES.index("deal_stage"))
        deal[staged] = deal_ids.get_indexer(pd.Index(interactions["deal_id"].iloc[staged]))
    keep = _keep(code, t)
    return InteractionEvents(
        code=code[keep],
        t=t[keep],
        kind=kind[keep],
        value=_numbers(interactions, "value")[keep],
        deal=deal[keep],
        stage=_category_codes(interactions, "stage", DEAL_STAGES)[keep],
    )


def _encode_deals(deals: pd.DataFrame, code: np.ndarray) -> tuple[DealRecords, pd.Index]:
    created = column_ns(deals, "created_at")
    keep = _keep(code, created)
    # Deal ids are unique by contract; a dense key still tolerates duplicates gracefully.
    key, deal_ids = pd.factorize(deals["deal_id"]) if "deal_id" in deals.columns else (
        np.arange(len(deals)), pd.Index([]))
    records = DealRecords(
        code=code[keep],
        key=np.asarray(key, dtype=np.int64)[keep],
        created=created[keep],
        closed=column_ns(deals, "closed_at")[keep],
        outcome=_category_codes(deals, "outcome", DEAL_OUTCOMES)[keep],
        amount=_numbers(deals, "amount")[keep],
        ids=pd.Index(deal_ids),
        owner=_owner_codes(deals, keep),
    )
    return records, pd.Index(deal_ids)


def _owner_codes(deals: pd.DataFrame, keep: np.ndarray | slice) -> TextAttribute:
    """Each kept deal's owner as text codes over every owner of the table (sorted)."""
    if "owner" not in deals.columns:
        return TextAttribute(np.full(len(deals), -1, dtype=np.int64)[keep], np.array([], dtype=object))
    codes, categories = pd.factorize(deals["owner"].astype("string"), sort=True)
    return TextAttribute(codes.astype(np.int64)[keep], np.asarray(categories, dtype=object))


def _encode_leads(leads: pd.DataFrame, code: np.ndarray) -> LeadRecords:
    """Leads of everyone, including rows of persons not asked for (code -1): category sets
    are taken from all leads, so scoring a few persons sees the same categories as training.
    """
    created = column_ns(leads, "created_at")
    rows = np.flatnonzero(created != NAT)
    columns = ["source", *lead_attribute_columns(leads)]
    attributes = leads.reindex(columns=columns).iloc[rows]
    return LeadRecords(
        code=code[rows],
        created=created[rows],
        converted=column_ns(leads, "converted_at")[rows],
        attributes={c: _attribute_values(attributes[c]) for c in columns},
    )


def _attribute_values(values: pd.Series) -> np.ndarray | TextAttribute:
    """Numbers as float64; anything else as text codes, so that each snapshot picks its
    categories with integer operations instead of hashing strings again.

    The column's dtype decides, never its values: deciding from values would let a future
    row (one non-number) change how past rows are read.
    """
    if pd.api.types.is_numeric_dtype(values) and not isinstance(values.dtype, pd.CategoricalDtype):
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    if isinstance(values.dtype, pd.CategoricalDtype):
        values = values.astype(object)
    codes, categories = pd.factorize(values.astype("string"), sort=True)
    return TextAttribute(codes.astype(np.int64), np.asarray(categories, dtype=object))


def _first_seen(
    n: int, leads: LeadRecords, interactions: InteractionEvents, orders: OrderEvents, deals: DealRecords
) -> np.ndarray:
    """Each person's first record in any table (NAT if none): their tenure starts here."""
    first = np.full(n, NAT, dtype=np.int64)
    for codes, times in ((leads.code, leads.created), (interactions.code, interactions.t),
                         (orders.code, orders.t), (deals.code, deals.created)):
        # A whole-array slice (views) when every row has a person, as after _keep.
        known = _all_or_mask(codes >= 0)
        table_first = earliest(codes[known], times[known], n)
        # NAT is the smallest int64, so "earliest" must skip it explicitly.
        first = np.where((first == NAT) | ((table_first != NAT) & (table_first < first)), table_first, first)
    return first
