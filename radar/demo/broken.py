"""Deliberately broken rows: what a real export always contains and Radar must reject.

Each table gets about ``share`` of its rows corrupted in place. Every broken row is listed
(table, row_number, kind) so tests can check the validator caught exactly these.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from radar.demo.tables import Table

BAD_DATES: tuple[str, ...] = ("31/02/2024", "yesterday", "2024-13-45", "n/a", "32.01.2025", "2025-02-30T10:00:00")
UNKNOWN_TYPES: tuple[str, ...] = ("fax", "carrier_pigeon", "sms", "webinar_attended")
KEY_COLUMNS: tuple[str, ...] = ("lead_id", "customer_id", "email", "phone")

#: Kinds of damage per table, with their shares.
KINDS: dict[str, dict[str, float]] = {
    "leads": {"bad_date": 0.5, "missing_required": 0.5},
    "interactions": {"bad_date": 0.3, "missing_required": 0.2, "unknown_type": 0.25, "orphan_key": 0.25},
    "orders": {"bad_date": 0.25, "negative_amount": 0.3, "missing_required": 0.15, "orphan_key": 0.3},
    "deals": {"bad_date": 0.3, "negative_amount": 0.3, "missing_required": 0.1, "orphan_key": 0.3},
    "spend": {"bad_date": 0.5, "negative_amount": 0.5},
}
DATE_COLUMN = {"leads": "created_at", "interactions": "timestamp", "orders": "timestamp", "deals": "created_at", "spend": "date"}
#: Required fields that go missing. Ids are never blanked: other tables refer to them, and a
#: blank id would leave those references dangling in rows that are not themselves broken.
REQUIRED_TO_DROP = {
    "leads": ("created_at",),
    "interactions": ("timestamp", "type"),
    "orders": ("amount", "timestamp"),
    "deals": ("created_at",),
}


def _replace(values: pa.Array, rows: np.ndarray, new: pa.Array) -> pa.Array:
    """``values`` with ``rows`` (sorted) replaced by ``new``, in order."""
    mask = np.zeros(len(values), dtype=bool)
    mask[rows] = True
    return pc.replace_with_mask(values, pa.array(mask), new.cast(values.type))


def _nulls(values: pa.Array, rows: np.ndarray) -> pa.Array:
    return _replace(values, rows, pa.nulls(len(rows), values.type))


def _choose(rng: np.random.Generator, options: tuple[str, ...], k: int) -> pa.Array:
    return pa.array(options).take(pa.array(rng.integers(0, len(options), k)))


def break_rows(rng: np.random.Generator, table: Table, share: float, orphan_start: dict[str, int]) -> list[tuple[int, str]]:
    """Corrupt about ``share`` of ``table``'s rows in place; return (row index, kind) pairs.

    ``orphan_start`` gives the first unused number for lead and customer ids, so orphan keys
    match nothing in the world.
    """
    n = table.n_rows
    if n == 0 or share <= 0:
        return []
    # The row that mints a customer id is never broken: for a one-off buyer it is the only
    # row that makes the id known, so breaking it would orphan the customer's other rows.
    candidates = np.arange(n) if table.keep_keys is None else np.flatnonzero(~table.keep_keys)
    if len(candidates) == 0:
        return []
    k = min(len(candidates), max(1, int(rng.binomial(n, share))))
    rows = np.sort(rng.choice(candidates, size=k, replace=False))
    names = list(KINDS[table.name])
    kind = rng.choice(len(names), size=k, p=list(KINDS[table.name].values()))
    cols = table.columns
    for ki, name in enumerate(names):
        hit = rows[kind == ki]
        if len(hit) == 0:
            continue
        if name == "bad_date":
            c = DATE_COLUMN[table.name]
            cols[c] = _replace(cols[c], hit, _choose(rng, BAD_DATES, len(hit)))
        elif name == "negative_amount":
            amount = cols["amount"].to_numpy(zero_copy_only=False)
            fixed = -np.abs(np.nan_to_num(amount[hit], nan=10.0)) - 0.01
            cols["amount"] = _replace(cols["amount"], hit, pa.array(fixed))
        elif name == "unknown_type":
            cols["type"] = _replace(cols["type"], hit, _choose(rng, UNKNOWN_TYPES, len(hit)))
        elif name == "missing_required":
            options = REQUIRED_TO_DROP[table.name]
            which = rng.integers(0, len(options), len(hit))
            for oi, c in enumerate(options):
                cols[c] = _nulls(cols[c], hit[which == oi])
        elif name == "orphan_key":
            _orphan(table, hit, orphan_start)
    return [(int(r), names[int(k_)]) for r, k_ in zip(rows, kind)]


def _orphan(table: Table, rows: np.ndarray, orphan_start: dict[str, int]) -> None:
    """Replace the row's keys by one id that exists nowhere.

    Orders mint customer ids, so an unknown customer id on an order is just a new customer:
    orders (like deals) get a lead id that no lead has instead.
    """
    cols = table.columns
    prefix, column = ("C", "customer_id") if table.name == "interactions" else ("L", "lead_id")
    for c in KEY_COLUMNS:
        if c in cols:
            cols[c] = _nulls(cols[c], rows)
    width = len(cols[column].drop_null()[0].as_py()) - 1 if cols[column].null_count < len(cols[column]) else 7
    numbers = orphan_start[column] + np.arange(len(rows))
    # Advance the counter so orphans in different tables do not match each other either.
    orphan_start[column] += len(rows)
    text = pc.utf8_lpad(pa.array(numbers).cast(pa.string()), width=width, padding="0")
    cols[column] = _replace(cols[column], rows, pc.binary_join_element_wise(prefix, text, ""))
