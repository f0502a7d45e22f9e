"""Assembling the five exported tables, with each source's own habits for person keys.

Which keys a row carries depends on where it comes from: web and e-mail tools know an
e-mail or a lead id, WhatsApp and the phone system only a phone, billing a customer id and
e-mail, the helpdesk a customer id or e-mail, the CRM a lead id. Non-GB national phone
layouts appear only in the leads table (which has the country to read them with); other
tables write foreign numbers internationally, as WhatsApp and billing systems do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from features.contract import DEAL_OUTCOMES, DEAL_STAGES, INTERACTION_TYPES, ORDER_STATUSES, TABLES
from radar.demo import columns as col
from radar.demo import vocab
from radar.demo.clock import Clock
from radar.demo.customers import Customers, Orders
from radar.demo.deals import Deals
from radar.demo.events import CUST, EMAIL, EVENT_CHANNELS, LEAD, PHONE, Events, pick
from radar.demo.keys import EMAIL_VARIANT_P, PHONE_INTERNATIONAL, PHONE_VARIANT_P, Identity
from radar.demo.people import People

MODES = np.array([LEAD, EMAIL, LEAD | EMAIL, PHONE, LEAD | PHONE, CUST, CUST | EMAIL, CUST | PHONE])
_WEB = ([0.35, 0.5, 0.15, 0, 0, 0, 0, 0], [0.15, 0.45, 0.0, 0, 0, 0.2, 0.2, 0])
_KEY_POLICY: dict[str, tuple[list[float], list[float]]] = {
    **{t: _WEB for t in ("web_visit", "form_submit", "email_open", "email_click", "chat_message",
                         "cart_add", "cart_abandon", "campaign_touch")},
    "whatsapp_message": ([0, 0, 0, 1, 0, 0, 0, 0], [0, 0, 0, 1, 0, 0, 0, 0]),
    "call": ([0, 0, 0, 0.55, 0.45, 0, 0, 0], [0, 0, 0, 0.5, 0.3, 0, 0, 0.2]),
    "meeting": ([0.5, 0, 0.5, 0, 0, 0, 0, 0], [0.5, 0, 0.5, 0, 0, 0, 0, 0]),
    "support_ticket": ([0, 0.6, 0.4, 0, 0, 0, 0, 0], [0, 0.35, 0, 0, 0, 0.55, 0.1, 0]),
    "complaint": ([0, 0.6, 0.4, 0, 0, 0, 0, 0], [0, 0.35, 0, 0, 0, 0.55, 0.1, 0]),
    "nps": ([0, 0.6, 0.4, 0, 0, 0, 0, 0], [0, 0.35, 0, 0, 0, 0.55, 0.1, 0]),
    "deal_stage": ([1, 0, 0, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0, 0, 0]),
}
#: Rows: type * 2 + (0 before conversion, 1 after).
KEY_POLICY = np.array([p for t in INTERACTION_TYPES for p in _KEY_POLICY[t]], dtype=float)
GB = vocab.COUNTRY_CODES.index("GB")


@dataclass
class Table:
    """One exported table: its columns and the true person behind each row."""

    name: str
    columns: dict[str, pa.Array]
    person: np.ndarray
    #: Rows whose keys must survive breakage (the order that minted a customer id).
    keep_keys: np.ndarray | None = None

    @property
    def n_rows(self) -> int:
        return len(self.person)

    def arrow(self) -> pa.Table:
        spec = TABLES[self.name]
        names = [c for c in spec.names if c in self.columns] + [c for c in self.columns if c not in spec.names]
        return pa.table({c: self.columns[c] for c in names})


def fix_keys(bits: np.ndarray, person: np.ndarray, ident: Identity) -> np.ndarray:
    """Drop keys the person never gave; fall back to the lead id so every row keeps one."""
    bits = np.where(ident.has_email[person], bits, bits & ~EMAIL)
    bits = np.where(ident.has_phone[person], bits, bits & ~PHONE)
    return np.where(bits == 0, LEAD, bits).astype(np.int8)


def _phone_variant(rng: np.random.Generator, country: np.ndarray, national_ok: bool) -> np.ndarray:
    """Phone layout per row; foreign numbers outside the leads table are international."""
    intl = PHONE_VARIANT_P[:PHONE_INTERNATIONAL] / PHONE_VARIANT_P[:PHONE_INTERNATIONAL].sum()
    probs = np.vstack([np.concatenate([intl, np.zeros(len(PHONE_VARIANT_P) - PHONE_INTERNATIONAL)]), PHONE_VARIANT_P])
    allowed = (country == GB) | national_ok
    return pick(rng, probs, allowed.astype(np.int64))


def person_keys(
    rng: np.random.Generator,
    bits: np.ndarray,
    person: np.ndarray,
    customer: np.ndarray,
    ident: Identity,
    people: People,
    n_customers: int,
) -> dict[str, pa.Array]:
    """lead_id, customer_id, email, phone columns for rows keyed by ``bits``."""
    n = len(person)
    width = col.id_width(people.n, 7)
    e_var = pick(rng, EMAIL_VARIANT_P[None, :], np.zeros(n, dtype=np.int64))
    p_var = _phone_variant(rng, people.country[person], national_ok=False)
    return {
        "lead_id": col.ids("L", person + 1, width, (bits & LEAD) > 0),
        "customer_id": col.ids("C", np.maximum(customer, 0) + 1, col.id_width(n_customers, 7), (bits & CUST) > 0),
        "email": col.keyed(ident.email, people.n, person, e_var, (bits & EMAIL) > 0),
        "phone": col.keyed(ident.phone, people.n, person, p_var, (bits & PHONE) > 0),
    }


def customer_index(people_n: int, cust: Customers) -> np.ndarray:
    out = np.full(people_n, -1, dtype=np.int64)
    out[cust.person] = np.arange(len(cust))
    return out


def leads_table(rng: np.random.Generator, clock: Clock, people: People, ident: Identity, cust: Customers,
                deals: Deals, converted: np.ndarray, horizon: float) -> Table:
    n = people.n
    idx = np.arange(n)
    e_var = pick(rng, EMAIL_VARIANT_P[None, :], np.zeros(n, dtype=np.int64))
    p_var = _phone_variant(rng, people.country, national_ok=True)
    shared_e, shared_p = ident.shared_email >= 0, ident.shared_phone >= 0
    personal_email = col.keyed(ident.email, n, idx, e_var, ident.has_email & ~shared_e)
    role_email = col.keyed(ident.shared_email_variants, max(1, int(ident.shared_email.max()) + 1),
                           np.maximum(ident.shared_email, 0), e_var, shared_e)
    personal_phone = col.keyed(ident.phone, n, idx, p_var, ident.has_phone & ~shared_p)
    board = col.keyed(ident.shared_phone_variants, max(1, int(ident.shared_phone.max()) + 1),
                      np.maximum(ident.shared_phone, 0), p_var, shared_p)
    c_of = customer_index(n, cust)
    # CRMs link about half of converted leads to the billing account.
    linked = (c_of >= 0) & (rng.random(n) < 0.5)
    qualified = _qualified_at(rng, people, deals, converted, horizon)
    status = _lead_status(rng, people, converted, qualified, deals, horizon)
    # A few converted leads were never updated in the CRM.
    shown_converted = np.where(rng.random(n) < 0.03, np.nan, converted)
    columns = {
        "lead_id": col.ids("L", idx + 1, col.id_width(n, 7)),
        "customer_id": col.ids("C", np.maximum(c_of, 0) + 1, col.id_width(len(cust), 7), linked),
        "email": pa.compute.coalesce(personal_email, role_email),
        "phone": pa.compute.coalesce(personal_phone, board),
        "created_at": col.timestamps(clock, people.created),
        "source": col.labels(vocab.CHANNEL_NAMES, people.source),
        "campaign": col.labels(vocab.CAMPAIGNS, people.campaign),
        "status": col.labels(LEAD_STATUSES, status),
        "qualified_at": col.timestamps(clock, qualified),
        "converted_at": col.timestamps(clock, shown_converted),
        "country": col.labels(vocab.COUNTRY_CODES, people.country),
        "industry": col.labels(vocab.INDUSTRIES, people.industry),
        "company_size": col.labels(vocab.COMPANY_SIZES, people.company_size),
        "job_title": col.labels(vocab.JOB_TITLES, people.job_title),
    }
    return Table("leads", columns, idx)


LEAD_STATUSES: tuple[str, ...] = ("new", "nurturing", "qualified", "converted", "disqualified")


def _qualified_at(rng: np.random.Generator, people: People, deals: Deals, converted: np.ndarray, horizon: float) -> np.ndarray:
    """Sales qualifies a lead when a deal opens, or partway to conversion, or if keen enough."""
    n = people.n
    q = np.full(n, np.nan)
    keen = (people.intent > 0.8) & (rng.random(n) < 0.5)
    q = np.where(keen, people.created + rng.exponential(10.0, n), q)
    buyer = ~np.isnan(converted) & (rng.random(n) < 0.8)
    q = np.where(buyer, people.created + rng.uniform(0.2, 0.7, n) * (converted - people.created), q)
    q[deals.person] = deals.created
    return np.where(q < horizon, q, np.nan)


def _lead_status(rng: np.random.Generator, people: People, converted: np.ndarray, qualified: np.ndarray,
                 deals: Deals, horizon: float) -> np.ndarray:
    n = people.n
    status = np.where(horizon - people.created < 14.0, 0, 1)
    old = (horizon - people.created > 180.0) & (rng.random(n) < 0.5)
    status = np.where(old, 4, status)
    status = np.where(~np.isnan(qualified), 2, status)
    lost = np.zeros(n, dtype=bool)
    lost[deals.person[deals.outcome == DEAL_OUTCOMES.index("lost")]] = True
    status = np.where(lost, 4, status)
    return np.where(~np.isnan(converted), 3, status)


def interactions_table(rng: np.random.Generator, clock: Clock, people: People, ident: Identity,
                       cust: Customers, events: Events, n_deals: int) -> Table:
    c_of = customer_index(people.n, cust)
    c = c_of[events.person]
    after = (c >= 0) & (events.t >= np.where(c >= 0, cust.converted[np.maximum(c, 0)], np.inf))
    bits = MODES[pick(rng, KEY_POLICY, events.kind.astype(np.int64) * 2 + after)]
    bits = np.where(events.keys > 0, events.keys, bits)
    bits = fix_keys(bits, events.person, ident)
    keys = person_keys(rng, bits, events.person, c, ident, people, len(cust))
    columns = {
        **keys,
        "timestamp": col.timestamps(clock, events.t),
        "type": col.labels(INTERACTION_TYPES, events.kind),
        "channel": col.labels(EVENT_CHANNELS, events.channel),
        "value": col.numbers(events.value),
        "deal_id": col.ids("D", events.deal + 1, col.id_width(n_deals, 6), events.deal >= 0),
        "stage": col.labels(DEAL_STAGES, events.stage),
    }
    return Table("interactions", columns, events.person)


def orders_table(rng: np.random.Generator, clock: Clock, people: People, ident: Identity,
                 cust: Customers, orders: Orders) -> Table:
    n = len(orders)
    modes = np.array([CUST | EMAIL, EMAIL, CUST])
    bits = modes[pick(rng, np.array([[0.91, 0.06, 0.03]]), np.zeros(n, dtype=np.int64))]
    # The first order mints the customer id next to the e-mail: that row ties the two.
    bits = np.where(orders.first, CUST | EMAIL, bits)
    bits = fix_keys(bits, orders.person, ident)
    keys = person_keys(rng, bits, orders.person, orders.customer, ident, people, len(cust))
    columns = {
        **keys,
        "order_id": col.ids("O", np.arange(n) + 1, col.id_width(n, 8)),
        "timestamp": col.timestamps(clock, orders.t),
        "amount": col.numbers(orders.amount),
        "status": col.labels(ORDER_STATUSES, orders.status),
        "product": col.labels(vocab.PRODUCT_NAMES, orders.product),
        "category": col.labels(vocab.CATEGORIES, orders.category),
        "channel": col.labels(vocab.ORDER_CHANNELS, orders.channel),
    }
    return Table("orders", columns, orders.person, keep_keys=orders.first)


def deals_table(rng: np.random.Generator, clock: Clock, people: People, ident: Identity,
                cust: Customers, deals: Deals) -> Table:
    n = len(deals)
    bits = np.where(rng.random(n) < 0.4, LEAD | EMAIL, LEAD)
    bits = fix_keys(bits, deals.person, ident)
    keys = person_keys(rng, bits, deals.person, np.full(n, -1), ident, people, len(cust))
    columns = {
        **keys,
        "deal_id": col.ids("D", np.arange(n) + 1, col.id_width(n, 6)),
        "created_at": col.timestamps(clock, deals.created),
        "stage": col.labels(DEAL_STAGES, deals.stage),
        "closed_at": col.timestamps(clock, deals.closed),
        "outcome": col.labels(DEAL_OUTCOMES, deals.outcome),
        "amount": col.numbers(deals.amount),
        "owner": col.labels(vocab.DEAL_OWNERS, deals.owner),
    }
    return Table("deals", columns, deals.person)
