"""Property: features at ``as_of`` depend only on what happened strictly before it.

Each example draws a small CRM "past" (everything before ``as_of``) and two independent
"futures" (rows at or after ``as_of``: new leads, interactions, orders, deals and deal stage
events; and for past rows, their not-yet-known parts: a deal's later closing date, outcome
and current stage, a lead's later conversion, status and qualification). Past + future A
and past + future B must give identical features. Two independent futures cover adding,
removing and changing any future row. Future rows are interleaved with past rows at random
positions, keeping the past rows' own order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.contract import DEAL_OUTCOMES, DEAL_STAGES, INTERACTION_TYPES, ORDER_STATUSES, CRMData
from features.pipeline import build_features

T0 = pd.Timestamp("2024-01-01")
STEP = pd.Timedelta(hours=12)  # a coarse grid, so events often sit exactly on window edges
PERSONS = ["p0", "p1", "p2", "p3"]
FUTURE_ONLY_PERSON = "p_new"
TABLES = ("leads", "interactions", "orders", "deals")

persons = st.sampled_from(PERSONS)
maybe_text = st.none() | st.sampled_from(["a", "b", "c"])


def at(step: int | None) -> pd.Timestamp:
    return pd.NaT if step is None else T0 + step * STEP


@dataclass
class World:
    """Rows of each table as lists of dicts, plus the interleaving keys of future rows."""

    as_of: int
    past: dict[str, list[dict]]


@st.composite
def past_world(draw: st.DrawFn) -> World:
    as_of = draw(st.integers(2, 900))
    before = st.integers(0, as_of - 1)
    deal_ids = [f"D{i}" for i in range(draw(st.integers(0, 4)))]
    deals = [
        {
            "deal_id": deal_id,
            "person_id": draw(persons),
            "created_at": draw(before),
            "amount": draw(st.none() | st.integers(0, 500)),
            # Closed before as_of (known), or not yet: the future decides the rest.
            "closed_step": draw(st.none() | before),
            "outcome": draw(st.sampled_from(DEAL_OUTCOMES)),
        }
        for deal_id in deal_ids
    ]
    leads = [
        {
            "lead_id": f"L{i}",
            "person_id": draw(persons),
            "created_at": draw(before),
            "source": draw(maybe_text),
            "country": draw(st.none() | st.sampled_from(["UK", "FR"])),
            "company_size": draw(st.none() | st.integers(1, 100)),
            "converted_step": draw(st.none() | before),
        }
        for i in range(draw(st.integers(0, 5)))
    ]
    return World(
        as_of=as_of,
        past={
            "leads": leads,
            "interactions": draw(st.lists(interaction(before, deal_ids), max_size=25)),
            "orders": draw(st.lists(order(before), max_size=15)),
            "deals": deals,
        },
    )


def interaction(times: st.SearchStrategy[int], deal_ids: list[str]) -> st.SearchStrategy[dict]:
    return st.fixed_dictionaries(
        {
            "person_id": persons,
            "timestamp": times,
            "type": st.sampled_from(INTERACTION_TYPES),
            "value": st.none() | st.integers(0, 10),
            "deal_id": st.none() | st.sampled_from([*deal_ids, "D_unknown"]),
            "stage": st.none() | st.sampled_from(DEAL_STAGES),
        }
    )


def order(times: st.SearchStrategy[int]) -> st.SearchStrategy[dict]:
    return st.fixed_dictionaries(
        {
            "person_id": persons,
            "timestamp": times,
            "amount": st.integers(0, 200),
            "status": st.none() | st.sampled_from(ORDER_STATUSES),
        }
    )


@st.composite
def future_of(draw: st.DrawFn, world: World) -> dict[str, pd.DataFrame]:
    """One possible future of ``world``, as complete tables (past rows included)."""
    a = world.as_of
    later = st.integers(a, a + 800)
    future_persons = st.sampled_from([*PERSONS, FUTURE_ONLY_PERSON])
    deal_ids = [d["deal_id"] for d in world.past["deals"]]
    new_deal_ids = [f"F{i}" for i in range(draw(st.integers(0, 3)))]

    deals = [_deal_future(draw, d, later) for d in world.past["deals"]]
    deals += [
        {
            "deal_id": deal_id,
            "person_id": draw(future_persons),
            "created_at": at(draw(later)),
            "amount": draw(st.none() | st.integers(0, 500)),
            "closed_at": at(draw(st.none() | later)),
            "outcome": draw(st.none() | st.sampled_from(DEAL_OUTCOMES)),
            "stage": draw(st.none() | st.sampled_from(DEAL_STAGES)),
        }
        for deal_id in new_deal_ids
    ]
    leads = [_lead_future(draw, lead, later) for lead in world.past["leads"]]
    leads += [
        {
            "lead_id": f"LF{i}",
            "person_id": draw(future_persons),
            "created_at": at(draw(later)),
            "source": draw(st.none() | st.sampled_from(["a", "new_source"])),
            "country": draw(st.none() | st.sampled_from(["UK", "DE"])),
            "company_size": draw(st.none() | st.integers(1, 100)),
            "converted_at": at(draw(st.none() | later)),
            "status": draw(maybe_text),
            "qualified_at": at(draw(st.none() | later)),
        }
        for i in range(draw(st.integers(0, 3)))
    ]
    interactions = draw(st.lists(interaction(later, [*deal_ids, *new_deal_ids]), max_size=10))
    for row in interactions:
        row["person_id"] = draw(future_persons)
    orders = draw(st.lists(order(later), max_size=6))

    tables = {}
    for name, future_rows in (("interactions", interactions), ("orders", orders)):
        past_rows = [{**r, "timestamp": at(r["timestamp"])} for r in world.past[name]]
        tables[name] = _interleave(draw, name, past_rows, [{**r, "timestamp": at(r["timestamp"])} for r in future_rows])
    n_past_leads, n_past_deals = len(world.past["leads"]), len(world.past["deals"])
    tables["leads"] = _interleave(draw, "leads", leads[:n_past_leads], leads[n_past_leads:])
    tables["deals"] = _interleave(draw, "deals", deals[:n_past_deals], deals[n_past_deals:])
    return tables


def _deal_future(draw: st.DrawFn, deal: dict, later: st.SearchStrategy[int]) -> dict:
    """A past deal: closed before as_of stays as it was; else closing date, outcome and
    current stage are the future's to choose."""
    row = {k: deal[k] for k in ("deal_id", "person_id", "amount")}
    row["created_at"] = at(deal["created_at"])
    if deal["closed_step"] is not None:
        row |= {"closed_at": at(deal["closed_step"]), "outcome": deal["outcome"]}
    else:
        row |= {
            "closed_at": at(draw(st.none() | later)),
            "outcome": draw(st.none() | st.sampled_from(DEAL_OUTCOMES)),
        }
    row["stage"] = draw(st.none() | st.sampled_from(DEAL_STAGES))
    return row


def _lead_future(draw: st.DrawFn, lead: dict, later: st.SearchStrategy[int]) -> dict:
    """A past lead: a conversion before as_of is known; a later one, the status and the
    qualification date are the future's (status and qualified_at are outcomes)."""
    row = {k: lead[k] for k in ("lead_id", "person_id", "source", "country", "company_size")}
    row["created_at"] = at(lead["created_at"])
    converted = lead["converted_step"]
    row["converted_at"] = at(converted) if converted is not None else at(draw(st.none() | later))
    row["status"] = draw(maybe_text)
    row["qualified_at"] = at(draw(st.none() | st.integers(0, 2000)))
    return row


def _interleave(draw: st.DrawFn, table: str, past_rows: list[dict], future_rows: list[dict]) -> pd.DataFrame:
    """Past rows in their order, future rows slotted in at random places."""
    slots = draw(st.lists(st.integers(0, len(past_rows)), min_size=len(future_rows), max_size=len(future_rows)))
    keyed = [(i, 0, row) for i, row in enumerate(past_rows)]
    keyed += [(slot, 1, row) for slot, row in zip(slots, future_rows)]
    keyed.sort(key=lambda item: (item[0], item[1]))
    return _frame([row for *_, row in keyed], table)


COLUMNS = {
    "leads": ["lead_id", "person_id", "created_at", "source", "country", "company_size",
              "converted_at", "status", "qualified_at"],
    "interactions": ["person_id", "timestamp", "type", "value", "deal_id", "stage"],
    "orders": ["person_id", "timestamp", "amount", "status"],
    "deals": ["deal_id", "person_id", "created_at", "amount", "closed_at", "outcome", "stage"],
}


def _frame(rows: list[dict], table: str) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=COLUMNS[table])
    for column in ("created_at", "closed_at", "converted_at", "qualified_at", "timestamp"):
        if column in frame.columns:
            frame[column] = pd.to_datetime(frame[column]).astype("datetime64[ns]")
    for column in ("amount", "value", "company_size"):
        if column in frame.columns:
            frame[column] = frame[column].astype("float64")
    return frame


def _crm(tables: dict[str, pd.DataFrame]) -> CRMData:
    return CRMData(**tables)


def _assert_same(world: World, a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame], **kwargs: object) -> None:
    as_of = at(world.as_of)
    left = build_features(_crm(a), as_of, **kwargs)
    right = build_features(_crm(b), as_of, **kwargs)
    pd.testing.assert_frame_equal(left, right, check_exact=True)


@st.composite
def world_and_two_futures(draw: st.DrawFn) -> tuple[World, dict, dict]:
    world = draw(past_world())
    return world, draw(future_of(world)), draw(future_of(world))


SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("table", TABLES)
@SETTINGS
@given(case=world_and_two_futures())
def test_future_rows_of_one_table_never_change_features(table: str, case: tuple[World, dict, dict]) -> None:
    world, future_a, future_b = case
    mixed = {**future_a, table: future_b[table]}
    _assert_same(world, future_a, mixed)


@SETTINGS
@given(case=world_and_two_futures())
def test_any_future_never_changes_features(case: tuple[World, dict, dict]) -> None:
    world, future_a, future_b = case
    _assert_same(world, future_a, future_b)


@SETTINGS
@given(case=world_and_two_futures())
def test_any_future_never_changes_features_of_given_persons(case: tuple[World, dict, dict]) -> None:
    world, future_a, future_b = case
    _assert_same(world, future_a, future_b, persons=[*PERSONS, FUTURE_ONLY_PERSON])


def test_the_generator_produces_future_rows() -> None:
    """Guard against a vacuous property: the strategy does make futures that differ."""

    @settings(max_examples=30, deadline=None)
    @given(case=world_and_two_futures())
    def collect(case: tuple[World, dict, dict]) -> None:
        _, future_a, future_b = case
        sizes.append(sum(len(future_a[t]) != len(future_b[t]) for t in TABLES))

    sizes: list[int] = []
    collect()
    assert np.sum(sizes) > 0
