"""The answer key in ``truth/``: who every row really is, what was broken, why people left.

Radar never reads these files; tests and evaluations do.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from radar.demo import columns as col
from radar.demo import vocab
from radar.demo.clock import Clock
from radar.demo.customers import CHURN_KINDS, INDIFFERENCE, NO_CHURN, SERVICE, TRIGGERS, Customers
from radar.demo.deals import Deals
from radar.demo.keys import Identity
from radar.demo.people import People
from radar.demo.tables import Table, customer_index


def person_ids(n: int) -> pa.Array:
    return col.ids("P", np.arange(n) + 1, col.id_width(n, 7))


def record_links(tables: list[Table], pids: pa.Array) -> pa.Table:
    parts = []
    for t in tables:
        parts.append(
            pa.table(
                {
                    "table": pa.array([t.name]).take(pa.array(np.zeros(t.n_rows, dtype=np.int64))),
                    "row_number": pa.array(np.arange(1, t.n_rows + 1, dtype=np.int64)),
                    "person": pids.take(pa.array(t.person)),
                }
            )
        )
    return pa.concat_tables(parts)


def broken_rows(broken: dict[str, list[tuple[int, str]]]) -> pa.Table:
    rows = [(name, r + 1, kind) for name, items in broken.items() for r, kind in items]
    return pa.table(
        {
            "table": pa.array([r[0] for r in rows], pa.string()),
            "row_number": pa.array([r[1] for r in rows], pa.int64()),
            "kind": pa.array([r[2] for r in rows], pa.string()),
        }
    )


def churn_outcome(cust: Customers, horizon: float) -> tuple[np.ndarray, np.ndarray]:
    """(kind, churned_at) per customer as the world stands at its end."""
    gone = cust.churn_at < horizon
    return np.where(gone, cust.churn_kind, NO_CHURN), np.where(gone, cust.churn_at, np.nan)


def _drivers_text(cust: Customers, kind: np.ndarray) -> pa.Array:
    first = col.labels(TRIGGERS, cust.triggers[:, 0])
    second = col.labels(TRIGGERS, cust.triggers[:, 1])
    service = pc.coalesce(pc.binary_join_element_wise(first, " then ", second, ""), first)
    faded = pc.binary_join_element_wise(
        "engagement faded over ", pa.array(np.round(cust.fade_days).astype(np.int64)).cast(pa.string()), " days", ""
    )
    text = pc.if_else(pa.array(kind == SERVICE), service, pa.scalar(None, pa.string()))
    return pc.if_else(pa.array(kind == INDIFFERENCE), faded, text)


def people_table(clock: Clock, people: People, ident: Identity, cust: Customers, deals: Deals,
                 converted: np.ndarray, horizon: float) -> pa.Table:
    n = people.n
    c_of = customer_index(n, cust)
    is_c = c_of >= 0
    ci = np.maximum(c_of, 0)
    kind, churned = churn_outcome(cust, horizon)

    def per_person(values: np.ndarray, fill: float = np.nan) -> np.ndarray:
        return np.where(is_c, np.asarray(values, dtype=float)[ci] if len(values) else fill, fill)

    drivers = _drivers_text(cust, kind)
    deal_of = np.full(n, -1, dtype=np.int64)
    deal_of[deals.person] = np.arange(len(deals))
    return pa.table(
        {
            "person": person_ids(n),
            "lead_id": col.ids("L", np.arange(n) + 1, col.id_width(n, 7)),
            "customer_id": col.ids("C", ci + 1, col.id_width(len(cust), 7), is_c),
            "email": pc.if_else(pa.array(ident.has_email), ident.email_canonical, pa.scalar(None, pa.string())),
            "phone": pc.if_else(pa.array(ident.has_phone), ident.phone_canonical, pa.scalar(None, pa.string())),
            "country": col.labels(vocab.COUNTRY_CODES, people.country),
            "segment": pa.array(np.where(people.b2b, "b2b", "b2c")),
            "source": col.labels(vocab.CHANNEL_NAMES, people.source),
            "campaign": col.labels(vocab.CAMPAIGNS, people.campaign),
            "created_at": col.timestamps(clock, people.created),
            "converted_at": col.timestamps(clock, converted),
            "deal_id": col.ids("D", deal_of + 1, col.id_width(len(deals), 6), deal_of >= 0),
            "churn_kind": col.labels(CHURN_KINDS, np.where(is_c, kind[ci] if len(cust) else 0, NO_CHURN)),
            "churned_at": col.timestamps(clock, per_person(churned)),
            "churn_drivers": drivers.take(pa.array(ci, mask=~is_c)) if len(cust) else pa.nulls(n, pa.string()),
            "shared_key": pa.array(np.where(ident.shared_email >= 0, "role_email", np.where(ident.shared_phone >= 0, "switchboard_phone", "")), pa.string()),
            "lead_intent": col.numbers(np.round(people.intent, 4)),
            "lead_logit": col.numbers(np.round(people.logit, 4)),
            "will_convert": pa.array(people.will_convert),
            "comeback_after_days": col.numbers(np.round(people.comeback, 1)),
            "one_off_buyer": pa.array(np.where(is_c, cust.one_off[ci] if len(cust) else False, False)),
            "dormant_spells": pa.array(np.where(is_c, _spells_started(cust, horizon)[ci] if len(cust) else 0, 0)),
            "buying_rate_per_year": col.numbers(np.round(per_person(cust.buy_rate) * 365.0, 4)),
            "mean_order_value": col.numbers(np.round(per_person(cust.order_value), 2)),
            "engagement_per_year": col.numbers(np.round(per_person(cust.engagement_rate) * 365.0, 4)),
            "satisfaction": col.numbers(np.round(per_person(cust.satisfaction), 4)),
            "favourite_category": col.labels(vocab.CATEGORIES, np.where(is_c, cust.favourite[ci] if len(cust) else -1, -1)),
        }
    )


def _spells_started(cust: Customers, horizon: float) -> np.ndarray:
    """Dormant spells that began while the customer was still a customer, before the end."""
    began = (cust.dormant_from < np.minimum(cust.churn_at, horizon)[:, None])  # NaN compares False
    return began.sum(axis=1).astype(np.int64)


def shared_keys(ident: Identity) -> pa.Table:
    return pa.table(
        {
            "key": pa.array([k for k, _, _ in ident.shared_keys], pa.string()),
            "kind": pa.array([k for _, k, _ in ident.shared_keys], pa.string()),
            "n_people": pa.array([m for _, _, m in ident.shared_keys], pa.int64()),
        }
    )


def drivers(people: People, cust: Customers, deals: Deals, horizon: float) -> pa.Table:
    """Dominant drivers where one exists: what a good explanation should rank high."""
    pid = person_ids(people.n)
    rows: list[tuple[np.ndarray, str, pa.Array]] = []
    kind, _ = churn_outcome(cust, horizon)
    # One-off buyers drift away from their first order on: no long fade to point at.
    ind = np.flatnonzero((kind == INDIFFERENCE) & ~cust.one_off)
    rows.append((cust.person[ind], "churn_by_indifference", pa.array(np.full(len(ind), "engagement decline"))))
    svc = np.flatnonzero(kind == SERVICE)
    rows.append((cust.person[svc], "service_churn", col.labels(TRIGGERS, cust.triggers[svc, 0])))
    # Lead quality: the source channel dominates when its effect outweighs intent.
    strong_source = np.flatnonzero(np.abs(people.channel_effect) > np.maximum(0.8, np.abs(people.intent)))
    rows.append((strong_source, "lead_quality", pa.array(np.full(len(strong_source), "source channel"))))
    strong_intent = np.flatnonzero(np.abs(people.intent) > 1.5)
    rows.append((strong_intent, "lead_quality", pa.array(np.full(len(strong_intent), "engagement"))))
    # Purchase: frequent buyers buy again; recency then dominates for those who have gone.
    frequent = np.flatnonzero(~cust.one_off & (cust.buy_rate > np.quantile(cust.buy_rate, 0.9))) if len(cust) else np.array([], dtype=np.int64)
    rows.append((cust.person[frequent], "purchase_probability", pa.array(np.full(len(frequent), "purchase frequency"))))
    busy = np.flatnonzero(np.abs(np.log(deals.contact_rate / np.median(deals.contact_rate))) > 0.8) if len(deals) else np.array([], dtype=np.int64)
    rows.append((deals.person[busy], "time_to_close", pa.array(np.full(len(busy), "meetings and calls"))))
    return pa.table(
        {
            "person": pa.concat_arrays([pid.take(pa.array(p, pa.int64())) for p, _, _ in rows]),
            "target": pa.concat_arrays([pa.array(np.full(len(p), t), pa.string()) for p, t, _ in rows]),
            "driver_feature_hint": pa.concat_arrays([h.cast(pa.string()) for _, _, h in rows]),
        }
    )
