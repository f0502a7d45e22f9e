"""generate_world: draw the whole demo CRM from one seed and write it out.

The story (documented in data/README.md): people arrive through marketing channels as
leads, engage along a journey, some buy (businesses through a deal), customers repeat-buy
and engage, and eventually some leave, by fading away or after a service problem. Every
step is drawn for all people at once with numpy: there is no per-person Python loop.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from radar.demo import broken, journeys, truth
from radar.demo.clock import Clock
from radar.demo.contact import CONTACT_STREAM, ContactDetails, draw_contact
from radar.demo.customers import customer_events, sample_customers, sample_orders, thin_after_conversion
from radar.demo.deals import sample_deals
from radar.demo.events import EMAIL, LEAD, PHONE, TYPE, Events, concat, make_events
from radar.demo.keys import Identity, build_identity
from radar.demo.people import People, daily_channel_intensity, sample_people, score_people
from radar.demo.spend import spend_table
from radar.demo.tables import Table, deals_table, interactions_table, leads_table, orders_table

DEFAULT_END = date(2026, 9, 30)
TABLE_ORDER: tuple[str, ...] = ("leads", "interactions", "orders", "deals", "spend")
#: Share of leads who never buy and never give an e-mail address.
NO_EMAIL_SHARE = 0.08
#: Median days from lead to first order for consumers (businesses go through a deal).
B2C_MEDIAN_DAYS_TO_BUY = 12.0


@dataclass
class WorldSummary:
    """What generate_world wrote."""

    out_dir: Path
    n_people: int
    rows: dict[str, int] = field(default_factory=dict)
    broken_rows: dict[str, int] = field(default_factory=dict)
    n_customers: int = 0
    seconds: float = 0.0


def _consumer_conversion(rng: np.random.Generator, people: People, horizon: float) -> np.ndarray:
    delay = rng.lognormal(np.log(B2C_MEDIAN_DAYS_TO_BUY), 1.1, people.n)
    # Late buyers buy when they come back, months after the lead.
    delay = np.where(people.late, people.comeback, delay)
    t = people.created + delay
    return np.where(people.will_convert & ~people.b2b & (t < horizon), t, np.nan)


def _bridge_rows(rng: np.random.Generator, people: People, shared: np.ndarray, has_phone: np.ndarray) -> Events:
    """People whose lead carries a shared key later fill a form with their own details."""
    who = np.flatnonzero(shared)
    keys = np.where(has_phone[who], LEAD | EMAIL | PHONE, LEAD | EMAIL)
    return make_events(who, people.created[who] + rng.uniform(0.3, 3.0, len(who)), TYPE["form_submit"], keys=keys)


def build_world(n_customers: int, seed: int, end: date, broken_share: float) -> tuple[list[Table], dict[str, pa.Table], WorldSummary]:
    """All tables and truth files in memory."""
    rng = np.random.default_rng(seed)
    clock = Clock.ending(end)
    horizon = float(clock.n_days)
    intensity = daily_channel_intensity(clock, rng)
    people = sample_people(rng, n_customers, clock, intensity)
    ident = build_identity(rng, people)
    score_people(rng, people)
    contact = draw_contact(np.random.default_rng([seed, CONTACT_STREAM]), people, ident)

    deals, deal_events, b2b_converted = sample_deals(rng, people, horizon)
    converted = np.where(people.b2b, b2b_converted, _consumer_conversion(rng, people, horizon))
    cust = sample_customers(rng, people, converted, horizon)
    orders = sample_orders(rng, cust, people, deals, horizon)
    ident.has_email &= ~(np.isnan(converted) & ~people.will_convert & (ident.shared_email < 0)
                          & (rng.random(people.n) < NO_EMAIL_SHARE))

    lead_events = journeys.lead_journeys(rng, people, converted, horizon)
    lead_events = thin_after_conversion(rng, lead_events, cust, people.n)
    bridges = _bridge_rows(rng, people, (ident.shared_email >= 0) | (ident.shared_phone >= 0), ident.has_phone)
    events = concat([lead_events, deal_events, bridges, customer_events(rng, cust, people, horizon)])
    events = events.subset(events.t < horizon)
    order = np.lexsort((events.person, events.t))
    events = events.subset(order)
    _fill_values(rng, events, people)

    leads = with_contact(leads_table(rng, clock, people, ident, cust, deals, converted, horizon), contact, ident)
    tables = [
        leads,
        interactions_table(rng, clock, people, ident, cust, events, len(deals)),
        orders_table(rng, clock, people, ident, cust, orders),
        deals_table(rng, clock, people, ident, cust, deals),
        spend_table(rng, clock, intensity, people.n),
    ]
    orphan_start = {"lead_id": people.n + 1_000_001, "customer_id": len(cust) + 1_000_001}
    damaged = {t.name: broken.break_rows(rng, t, broken_share, orphan_start) for t in tables}
    pids = truth.person_ids(people.n)
    truth_tables = {
        "record_links": truth.record_links([t for t in tables if t.name != "spend"], pids),
        "broken_rows": truth.broken_rows(damaged),
        "people": truth.people_table(clock, people, ident, cust, deals, converted, horizon),
        "shared_keys": truth.shared_keys(ident),
        "drivers": truth.drivers(people, cust, deals, horizon),
    }
    summary = WorldSummary(
        out_dir=Path("."),
        n_people=people.n,
        rows={t.name: t.n_rows for t in tables},
        broken_rows={name: len(items) for name, items in damaged.items()},
        n_customers=len(cust),
    )
    return tables, truth_tables, summary


def with_contact(leads: Table, contact: ContactDetails, ident: Identity) -> Table:
    """The lead form as filled in: a name column, and the made-up phones in place of the
    real ones. Those people then have no phone anywhere else (nobody could call them), so
    the tables built after this one key their rows by lead id or e-mail instead."""
    junk = contact.has_junk_phone
    leads.columns["phone"] = pc.if_else(pa.array(junk), contact.junk_phone, leads.columns["phone"])
    leads.columns["name"] = contact.name
    ident.has_phone &= ~junk
    return leads


def _fill_values(rng: np.random.Generator, events: Events, people: People) -> None:
    """Seconds on site for visits, call length, cart value: the ``value`` column."""
    kind = events.kind
    for name, median, sd in (("web_visit", 75.0, 0.9), ("call", 210.0, 0.7)):
        rows = kind == TYPE[name]
        events.value[rows] = np.round(rng.lognormal(np.log(median), sd, rows.sum()))
    carts = np.isin(kind, [TYPE["cart_add"], TYPE["cart_abandon"]])
    scale = np.where(people.b2b[events.person[carts]], 400.0, 60.0)
    events.value[carts] = np.round(scale * rng.lognormal(0.0, 0.6, carts.sum()), 2)


def write_table(table: pa.Table, path: Path, file_format: Literal["csv", "parquet"]) -> None:
    from features.atomic import atomic_path

    with atomic_path(path) as temp:  # a half-written table is never there to be loaded
        if file_format == "parquet":
            pq.write_table(table, temp, compression="zstd")
        else:
            pacsv.write_csv(table, temp, write_options=pacsv.WriteOptions(quoting_style="needed"))


def generate_world(
    n_customers: int,
    seed: int,
    out_dir: Path,
    *,
    end: date = DEFAULT_END,
    file_format: Literal["csv", "parquet"] = "csv",
    broken_share: float = 0.005,
) -> WorldSummary:
    """Write a seeded demo CRM of ``n_customers`` people to ``out_dir``, with ``truth/``.

    Same arguments give byte-identical files. ``n_customers`` counts people: everyone starts
    as a lead and a share of them become paying customers.
    """
    if n_customers < 1:
        raise ValueError("n_customers must be at least 1")
    if file_format not in ("csv", "parquet"):
        raise ValueError(f"file_format must be 'csv' or 'parquet', not {file_format!r}")
    if not 0.0 <= broken_share < 0.5:
        raise ValueError("broken_share must be in [0, 0.5)")
    started = time.perf_counter()
    tables, truth_tables, summary = build_world(n_customers, seed, end, broken_share)
    out_dir = Path(out_dir)
    (out_dir / "truth").mkdir(parents=True, exist_ok=True)
    for t in tables:
        write_table(t.arrow(), out_dir / f"{t.name}.{file_format}", file_format)
    for name, table in truth_tables.items():
        write_table(table, out_dir / "truth" / f"{name}.csv", "csv")
    summary.out_dir = out_dir
    summary.seconds = time.perf_counter() - started
    return summary
