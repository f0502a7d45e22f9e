"""The feature families, each computed for every person at one ``as_of`` moment.

Each function takes encoded arrays (:mod:`features.encoded`) and a :class:`Moment`, keeps
only what was known strictly before ``as_of`` and yields ``(column name, values)`` pairs,
one value per person code, in a fixed order. Columns come one at a time so the caller can
store each and let it go: at 1 M persons every column is 8 MB and a family's columns held
together were hundreds of MB. Windows follow :mod:`features.windows`: ``d`` days covers
``[as_of - d days, as_of)``.

Missing values: NaN means "no data" (no paid order yet → no days since last paid order);
counts and sums over nothing are 0.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features import grouped
from features.contract import ENGAGEMENT_TYPES, INTERACTION_TYPES, JOURNEY_STAGES
from features.encoded import (
    FAILED,
    LOST,
    PAID,
    REFUNDED,
    WON,
    DealRecords,
    EncodedCRM,
    InteractionEvents,
    LeadRecords,
    OrderEvents,
    TextAttribute,
)
from features.windows import DAY_NS, NAT, days_between, in_band, in_band_at, in_window, in_window_at
from radar.config import FeatureConfig

Column = "np.ndarray | pd.Categorical"
#: A family's columns, one ``(name, values)`` pair at a time.
Columns = Iterator[tuple[str, Column]]

#: Interaction types counted per window (deal_stage is CRM bookkeeping, used by deals).
COUNTED_TYPES: tuple[str, ...] = tuple(t for t in INTERACTION_TYPES if t != "deal_stage")
EVALUATION_TYPES: tuple[str, ...] = ("email_click", "form_submit", "meeting", "call")
DECISION_TYPES: tuple[str, ...] = ("cart_add", "cart_abandon")
JOURNEY = {stage: float(i) for i, stage in enumerate(JOURNEY_STAGES)}

_KIND = {t: i for i, t in enumerate(INTERACTION_TYPES)}
#: The id of the deal the ``open_deal_*`` features describe (an identifier, not a feature).
OPEN_DEAL_ID = "open_deal_id"
#: Columns of the orders and deals families that :func:`person_features` reads.
PERSON_INPUTS: tuple[str, ...] = ("n_paid_orders", "n_deals_won", "n_open_deals")


@dataclass(frozen=True)
class Moment:
    """The ``as_of`` cut (int64 ns), the number of persons and the feature settings."""

    as_of: int
    n: int
    config: FeatureConfig


def trend_ratio(recent: np.ndarray, base: np.ndarray, recent_days: int, base_days: int) -> np.ndarray:
    """Daily rate in the recent window over the daily rate in the base window before it.

    Both rates get ``eps = 1 / (recent_days + base_days)`` per day (one event over the whole
    span) so the ratio is always finite: no events at all → 1.0, the same rate → 1.0, one
    event in the last 30 days after none in the 60 before → 4.0 (with 30/60-day windows).
    """
    eps = 1.0 / (recent_days + base_days)
    return (recent / recent_days + eps) / (base / base_days + eps)


# ---------------------------------------------------------------- orders


def order_features(orders: OrderEvents, m: Moment) -> Columns:
    """Recency, frequency, monetary value (paid orders only), trends, gaps, payment issues."""
    before = grouped.rows(orders.t < m.as_of)
    code, t, amount, status = orders.code[before], orders.t[before], orders.amount[before], orders.status[before]
    age = m.as_of - t
    paid = status == PAID
    monetary = _monetary(code, t, amount, paid, m)
    yield from monetary.items()
    yield from _paid_windows(code, age, amount, paid, m)
    yield from _purchase_gaps(code, t, paid, monetary["days_since_last_paid_order"], m).items()
    yield from _payment_problems(code, t, age, amount, status, m)


def _monetary(
    code: np.ndarray, t: np.ndarray, amount: np.ndarray, paid: np.ndarray, m: Moment
) -> dict[str, np.ndarray]:
    n_paid = grouped.count(code, m.n, paid)
    amount_total = grouped.total(code, amount, m.n, paid)
    with np.errstate(invalid="ignore", divide="ignore"):
        amount_mean = np.where(n_paid > 0, amount_total / n_paid, np.nan)
    return {
        "n_paid_orders": n_paid,
        "paid_amount_total": amount_total,
        "paid_amount_mean": amount_mean,
        "paid_amount_max": grouped.maximum(code, amount, m.n, paid),
        "days_since_first_paid_order": days_between(grouped.earliest(code, t, m.n, paid), m.as_of),
        "days_since_last_paid_order": days_between(grouped.latest(code, t, m.n, paid), m.as_of),
    }


def _paid_windows(code: np.ndarray, age: np.ndarray, amount: np.ndarray, paid: np.ndarray, m: Moment) -> Columns:
    for days in m.config.windows_days:
        in_w = paid & in_window(age, days)
        yield f"n_paid_orders_{days}d", grouped.count(code, m.n, in_w)
        yield f"paid_amount_{days}d", grouped.total(code, amount, m.n, in_w)
    recent_days, base_days = m.config.trend_recent_days, m.config.trend_base_days
    recent = grouped.count(code, m.n, paid & in_window(age, recent_days))
    base = grouped.count(code, m.n, paid & in_band(age, recent_days, recent_days + base_days))
    yield f"paid_order_trend_{recent_days}d_vs_{base_days}d", trend_ratio(recent, base, recent_days, base_days)


def _purchase_gaps(
    code: np.ndarray, t: np.ndarray, paid: np.ndarray, days_since_last: np.ndarray, m: Moment
) -> dict[str, np.ndarray]:
    """Gaps between consecutive paid orders. Orders are sorted by (person, time) at encoding,
    so consecutive rows of the same person are consecutive purchases."""
    pc, pt = code[paid], t[paid]
    same = pc[1:] == pc[:-1]
    gap_code = pc[1:][same]
    gaps = (pt[1:] - pt[:-1])[same] / DAY_NS
    n_gaps = grouped.count(gap_code, m.n)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n_gaps > 0, grouped.total(gap_code, gaps, m.n) / n_gaps, np.nan)
        # Two passes (mean, then squared deviations) stay accurate where sum-of-squares would not.
        squares = grouped.total(gap_code, (gaps - mean[gap_code]) ** 2, m.n)
        std = np.where(n_gaps > 1, np.sqrt(squares / (n_gaps - 1)), np.nan)
        # A gap under a day (two orders the same day) would blow the ratio up: floor it at 1.
        overdue = days_since_last / np.maximum(mean, 1.0)
    return {
        "purchase_gap_mean_days": mean,
        "purchase_gap_std_days": std,
        "days_since_last_paid_order_vs_usual_gap": overdue,
    }


def _payment_problems(
    code: np.ndarray, t: np.ndarray, age: np.ndarray, amount: np.ndarray, status: np.ndarray, m: Moment
) -> Columns:
    failed, refunded = status == FAILED, status == REFUNDED
    yield "n_failed_payments", grouped.count(code, m.n, failed)
    yield "n_refunds", grouped.count(code, m.n, refunded)
    yield "refund_amount_total", grouped.total(code, amount, m.n, refunded)
    for days in m.config.windows_days:
        in_w = in_window(age, days)
        yield f"n_failed_payments_{days}d", grouped.count(code, m.n, failed & in_w)
        yield f"n_refunds_{days}d", grouped.count(code, m.n, refunded & in_w)
    # A failed payment is recovered once any paid order follows it (at the same time or later).
    last_paid = grouped.latest(code, t, m.n, status == PAID)
    unrecovered = failed & (t > last_paid[code])
    yield "failed_amount_unrecovered", grouped.total(code, amount, m.n, unrecovered)


# ---------------------------------------------------------------- interactions


def interaction_features(events: InteractionEvents, m: Moment) -> Columns:
    """Counts per type and window, engagement recency and trend, NPS."""
    before = grouped.rows((events.t < m.as_of) & (events.kind >= 0))
    # Windows are tested on the times (views of the encoded arrays when every event is
    # before as_of), not on an array of ages.
    code, kind, value, t = events.code[before], events.kind[before], events.value[before], events.t[before]
    yield from _type_window_counts(code, kind, t, m)
    yield from _engagement(code, kind, t, m)
    yield from _nps(code, kind, t, value, m).items()


def _type_window_counts(code: np.ndarray, kind: np.ndarray, t: np.ndarray, m: Moment) -> Columns:
    # Only events inside the longest window can count: keep those once, so each window is a
    # pass over them rather than over the whole history (at the scoring moment, the last
    # year of three).
    recent = in_window_at(t, m.as_of, max(m.config.windows_days, default=0))
    kind = kind[recent]
    # Grouped by type (a stable sort keeps each type's events in order), so each type is one
    # contiguous run and its windows are counted one column at a time, in column order.
    by_kind = np.argsort(kind, kind="stable")
    code, t = code[recent][by_kind], t[recent][by_kind]
    ends = np.cumsum(np.bincount(kind.astype(np.int64) + 1, minlength=len(INTERACTION_TYPES) + 1))
    del recent, by_kind
    for kind_name in COUNTED_TYPES:
        # Slot 0 holds kind -1 (none here: callers keep typed events), so type k starts at ends[k].
        first, last = ends[_KIND[kind_name]], ends[_KIND[kind_name] + 1]
        type_code, type_t = code[first:last], t[first:last]
        for days in m.config.windows_days:
            yield f"n_{kind_name}_{days}d", grouped.count(type_code, m.n, in_window_at(type_t, m.as_of, days))


def _kinds(kind: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """Which events are of one of the named types (a table lookup: kind -1 hits the last,
    always-False slot)."""
    wanted = np.zeros(len(INTERACTION_TYPES) + 1, dtype=bool)
    wanted[[_KIND[name] for name in names]] = True
    return wanted[kind]


def _engagement(code: np.ndarray, kind: np.ndarray, t: np.ndarray, m: Moment) -> Columns:
    engaged = _kinds(kind, ENGAGEMENT_TYPES)
    recent_days, base_days = m.config.trend_recent_days, m.config.trend_base_days
    # Window counts only see engagement inside the longest window (or trend span): select
    # it once and count each window over that subset, not over the whole history.
    longest = max((*m.config.windows_days, recent_days + base_days))
    counted = engaged & in_window_at(t, m.as_of, longest)
    e_code, e_t = code[counted], t[counted]
    del counted
    for days in m.config.windows_days:
        yield f"n_engagement_{days}d", grouped.count(e_code, m.n, in_window_at(e_t, m.as_of, days))
    recent = grouped.count(e_code, m.n, in_window_at(e_t, m.as_of, recent_days))
    base = grouped.count(e_code, m.n, in_band_at(e_t, m.as_of, recent_days, recent_days + base_days))
    yield f"engagement_trend_{recent_days}d_vs_{base_days}d", trend_ratio(recent, base, recent_days, base_days)
    del e_code, e_t, recent, base
    # Days since the latest engagement: the smallest age is as_of minus the latest time (in
    # integers, then to days, as every "days since" column).
    yield "days_since_last_engagement", days_between(grouped.latest(code, t, m.n, engaged), m.as_of)


def _nps(
    code: np.ndarray, kind: np.ndarray, t: np.ndarray, value: np.ndarray, m: Moment
) -> dict[str, np.ndarray]:
    answered = (kind == _KIND["nps"]) & ~np.isnan(value)
    # The latest answer; at equal times the lowest score (see grouped.value_at_latest).
    last_t, last_value = grouped.value_at_latest(code, t, value, m.n, answered)
    days_since = days_between(last_t, m.as_of)
    detractor = answered & (value <= m.config.nps_detractor_max)
    return {
        "nps_last_value": last_value,
        "days_since_last_nps": days_since,
        "n_nps_detractor": grouped.count(code, m.n, detractor),
    }


def service_features(events: InteractionEvents, orders: OrderEvents, m: Moment) -> Columns:
    """Days since the last service trigger: ticket, complaint, detractor NPS, failed
    payment or refund. Churn after such a trigger is service churn, not indifference."""
    before = grouped.rows(events.t < m.as_of)
    kind, value = events.kind[before], events.value[before]
    trigger = _kinds(kind, ("support_ticket", "complaint")) | (
        (kind == _KIND["nps"]) & (value <= m.config.nps_detractor_max)
    )
    o_before = grouped.rows(orders.t < m.as_of)
    o_trigger = np.isin(orders.status[o_before], [FAILED, REFUNDED])
    codes = np.concatenate([events.code[before][trigger], orders.code[o_before][o_trigger]])
    times = np.concatenate([events.t[before][trigger], orders.t[o_before][o_trigger]])
    yield "days_since_last_service_issue", days_between(grouped.latest(codes, times, m.n), m.as_of)


# ---------------------------------------------------------------- leads


def lead_features(leads: LeadRecords, m: Moment) -> Columns:
    """Lead count, age and source, and every lead attribute, from the person's earliest lead.

    The earliest lead is the acquisition: its source is the channel that brought the person
    in, and it does not change when a later duplicate lead arrives, so a person's attributes
    stay stable across snapshots. Each attribute is the first non-missing value in
    creation order (a later lead may fill a gap the first one left).
    """
    before = leads.created < m.as_of
    mine = before & (leads.code >= 0)
    rows = np.flatnonzero(mine)
    # Ties on creation time fall back to row order, so the choice is deterministic.
    order = rows[np.lexsort((rows, leads.created[rows], leads.code[rows]))]
    yield "n_leads", grouped.count(leads.code, m.n, mine)
    yield "lead_age_days", days_between(grouped.earliest(leads.code, leads.created, m.n, mine), m.as_of)
    person = leads.code[order]
    for name, values in leads.attributes.items():
        if isinstance(values, TextAttribute):
            yield f"lead_{name}", _text_attribute(values, order, person, before, m.n)
        else:
            first = _first_present(person, ~np.isnan(values[order]), m.n)
            yield f"lead_{name}", _take(values[order], first, np.nan)


def _first_present(person: np.ndarray, present: np.ndarray, n: int) -> np.ndarray:
    """Per person, the position of their first row with a value (rows in the order given),
    or -1 if none."""
    positions = np.arange(len(person))
    first = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(first, person[present], positions[present])
    return np.where(first == np.iinfo(np.int64).max, -1, first)


def _take(values: np.ndarray, positions: np.ndarray, fill: float) -> np.ndarray:
    """``values[positions]``, with ``fill`` where the position is -1."""
    if len(values) == 0:
        return np.full(len(positions), fill)
    return np.where(positions >= 0, values[np.maximum(positions, 0)], fill)


def _text_attribute(
    values: TextAttribute, order: np.ndarray, person: np.ndarray, before: np.ndarray, n: int
) -> pd.Categorical:
    """A category over the values seen in any lead before as_of (sorted), so the category
    set never depends on the future. The model stores the categories it was trained on and
    maps new data onto them."""
    codes = values.codes[order]
    chosen = _take(codes, _first_present(person, codes >= 0, n), -1).astype(np.int64)
    seen = np.unique(values.codes[before])
    seen = seen[seen >= 0]
    local = np.where(chosen >= 0, np.searchsorted(seen, chosen), -1)
    return pd.Categorical.from_codes(local, categories=pd.Index(values.categories[seen]))


# ---------------------------------------------------------------- deals


def deal_features(deals: DealRecords, events: InteractionEvents, m: Moment) -> Columns:
    """Open deals at as_of, the most advanced open deal, and deals won/lost before as_of.

    A deal is open unless it closed before as_of; its outcome is only known once it has
    closed. Its stage comes only from deal_stage events before as_of (the deals table's
    ``stage`` column is today's stage, which would leak the future).
    """
    created, closed, is_open = _deal_state(deals, m)
    stage, last_change, n_changes = _stage_history(deals, events, m)
    age = m.as_of - deals.created
    yield "n_open_deals", grouped.count(deals.code, m.n, is_open)
    yield "oldest_open_deal_age_days", days_between(grouped.earliest(deals.code, deals.created, m.n, is_open), m.as_of)
    yield "newest_open_deal_age_days", days_between(grouped.latest(deals.code, deals.created, m.n, is_open), m.as_of)
    yield "open_deals_amount_total", grouped.total(deals.code, deals.amount, m.n, is_open)
    yield from _leading_open_deal(deals, is_open, stage, last_change, n_changes, age, m)
    won, lost = closed & (deals.outcome == WON), closed & (deals.outcome == LOST)
    yield "n_deals_won", grouped.count(deals.code, m.n, won)
    yield "n_deals_lost", grouped.count(deals.code, m.n, lost)
    yield "won_deals_amount", grouped.total(deals.code, deals.amount, m.n, won)


#: A deal row's own features (:func:`open_deals`), beside its person's.
DEAL_ROW_FEATURES: tuple[str, ...] = (
    "deal_stage", "deal_amount", "deal_age_days", "deal_n_stage_changes", "deal_days_since_stage_change",
    "deal_owner",
)


def open_deals(deals: DealRecords, events: InteractionEvents, m: Moment) -> tuple[np.ndarray, dict[str, Column]]:
    """Every deal open at as_of, as rows of ``deals``, with each one's own features.

    The same point-in-time rules as :func:`deal_features`: open means created before as_of
    and not closed before it; the stage comes only from deal_stage events before as_of.
    The owner is a category over the owners of deals created before as_of, so a new
    salesperson hired later never changes a past snapshot.
    """
    created, _, is_open = _deal_state(deals, m)
    rows = np.flatnonzero(is_open & (deals.code >= 0) & (deals.key >= 0))
    stage, last_change, n_changes = _stage_history(deals, events, m)
    owners = deals.owner.codes
    seen = np.unique(owners[created & (owners >= 0)])
    chosen = owners[rows]
    local = np.where(chosen >= 0, np.searchsorted(seen, chosen), -1)
    return rows, {
        "deal_stage": stage[rows],
        "deal_amount": deals.amount[rows],
        "deal_age_days": (m.as_of - deals.created[rows]) / DAY_NS,
        "deal_n_stage_changes": n_changes[rows],
        "deal_days_since_stage_change": days_between(last_change[rows], m.as_of),
        "deal_owner": pd.Categorical.from_codes(local, categories=pd.Index(deals.owner.categories[seen])),
    }


def _deal_state(deals: DealRecords, m: Moment) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per deal row at as_of: created before it, closed before it, and so open."""
    created = deals.created < m.as_of
    closed = created & (deals.closed != NAT) & (deals.closed < m.as_of)
    return created, closed, created & ~closed


def _stage_history(
    deals: DealRecords, events: InteractionEvents, m: Moment
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per deal row: current stage ordinal (NaN if none yet), time of the last stage event
    (NAT if none) and number of stage events, from deal_stage events before as_of."""
    known = (
        (events.t < m.as_of)
        & (events.kind == _KIND["deal_stage"])
        & (events.deal >= 0)
        & (events.stage >= 0)
    )
    n_rows = len(deals.key)
    if deals.n_keys == 0:
        return np.full(n_rows, np.nan), np.full(n_rows, NAT, dtype=np.int64), np.zeros(n_rows)
    deal, t, stage = events.deal[known], events.t[known], events.stage[known]
    # Simultaneous stage events: take the furthest stage (minimum of the negated ordinal).
    last_t, neg_stage = grouped.value_at_latest(deal, t, -stage.astype(np.float64), deals.n_keys)
    n_events = grouped.count(deal, deals.n_keys)
    has_key = deals.key >= 0
    key = np.where(has_key, deals.key, 0)
    return (
        np.where(has_key, -neg_stage[key], np.nan),
        np.where(has_key, last_t[key], NAT),
        np.where(has_key, n_events[key], 0.0),
    )


def _leading_open_deal(
    deals: DealRecords,
    is_open: np.ndarray,
    stage: np.ndarray,
    last_change: np.ndarray,
    n_changes: np.ndarray,
    age: np.ndarray,
    m: Moment,
) -> Columns:
    """The open deal furthest along (ties: the newest, then the later row): the one most
    likely to close next, which is what time-to-close and purchase scoring care about."""
    rows = np.flatnonzero(is_open)
    stage_rank = np.nan_to_num(stage[rows], nan=-1.0)
    order = rows[np.lexsort((rows, deals.created[rows], stage_rank, deals.code[rows]))]
    lead_rows = order[grouped.last_per_group(deals.code[order])]
    persons = deals.code[lead_rows]

    def spread(values: np.ndarray, fill: float = np.nan) -> np.ndarray:
        out = np.full(m.n, fill)
        out[persons] = values
        return out

    deal_ids = np.full(m.n, None, dtype=object)
    if deals.n_keys:
        deal_ids[persons] = deals.ids.take(deals.key[lead_rows])
    # Not a feature: names the deal the open_deal_* columns describe, so time-to-close
    # labels and answers are about that very deal. Its categories are only the deals
    # named here, so deals created after as_of leave the frame untouched.
    yield OPEN_DEAL_ID, pd.Categorical(deal_ids)
    del deal_ids
    yield "open_deal_stage", spread(stage[lead_rows])
    yield "open_deal_amount", spread(deals.amount[lead_rows])
    yield "open_deal_age_days", spread(age[lead_rows] / DAY_NS)
    yield "open_deal_n_stage_changes", spread(n_changes[lead_rows])
    yield "open_deal_days_since_stage_change", spread(days_between(last_change[lead_rows], m.as_of))


# ---------------------------------------------------------------- the person


def person_features(encoded: EncodedCRM, m: Moment, cols: Mapping[str, np.ndarray]) -> Columns:
    """Tenure, customer status and journey stage, from the other families' columns (at
    least those named in :data:`PERSON_INPUTS`)."""
    first_seen = np.where(encoded.first_seen < m.as_of, encoded.first_seen, NAT)
    leads = encoded.leads
    converted = (leads.code >= 0) & (leads.created < m.as_of) & (leads.converted != NAT) & (
        leads.converted < m.as_of
    )
    is_customer = (
        (cols["n_paid_orders"] > 0)
        | (cols["n_deals_won"] > 0)
        | grouped.any_event(leads.code, m.n, converted)
    )
    yield "tenure_days", days_between(first_seen, m.as_of)
    yield "is_customer", is_customer.astype(np.float64)
    yield "journey_stage", _journey(encoded.interactions, m, first_seen != NAT, is_customer, cols)


def _journey(
    events: InteractionEvents, m: Moment, known: np.ndarray, is_customer: np.ndarray, cols: Mapping[str, np.ndarray]
) -> np.ndarray:
    """Furthest journey stage reached (ordinal of JOURNEY_STAGES): any record → search,
    clicks/forms/meetings/calls → evaluation, a cart or an open deal → decision, a customer
    → use. Nobody we know anything about is still at need."""
    before = grouped.rows(events.t < m.as_of)
    code, kind = events.code[before], events.kind[before]
    evaluating = grouped.any_event(code, m.n, _kinds(kind, EVALUATION_TYPES))
    deciding = grouped.any_event(code, m.n, _kinds(kind, DECISION_TYPES)) | (cols["n_open_deals"] > 0)
    stage = np.full(m.n, JOURNEY["need"])
    stage[known] = JOURNEY["search"]
    stage[evaluating] = JOURNEY["evaluation"]
    stage[deciding] = JOURNEY["decision"]
    stage[is_customer] = JOURNEY["use"]
    return stage

