"""Labels for Radar's four targets, each taken only from the window after ``as_of``.

Convention: features see events in ``[.., as_of)`` and labels see ``[as_of, as_of + H)``.
The two windows partition the timeline, so no event is ever both a feature and a label.
(The design brief writes the label window as ``(as_of, as_of + H]``; with timestamps to
the second the two differ only for an event exactly at ``as_of``, which this convention
counts once rather than never.)

Who is eligible for a target is decided from events before ``as_of`` only, because that
is all a scorer will know.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.contract import ENGAGEMENT_TYPES, LEAD_WON_STATUSES, SERVICE_TRIGGER_TYPES, CRMData


def _days(days: int) -> pd.Timedelta:
    return pd.Timedelta(days=days)


def paid_orders(data: CRMData) -> pd.DataFrame:
    """Orders that brought money in. An order without a status is a purchase (sales exports
    often carry none), exactly as the features read it."""
    orders = data.orders
    if orders is None:
        return pd.DataFrame({"person_id": pd.Series(dtype=object), "timestamp": pd.Series(dtype="datetime64[ns]")})
    if "status" not in orders.columns:
        return orders
    status = orders["status"].astype(object)
    return orders[(status == "paid") | status.isna()]


def conversion_times(data: CRMData) -> pd.Series:
    """When each person first became a customer: first paid order or first won deal, and
    for people whom neither shows converting, their lead's own ``converted_at`` (lead
    exports often carry the outcome and nothing else)."""
    candidates = [paid_orders(data).groupby("person_id")["timestamp"].min()]
    deals = data.deals
    if deals is not None and "outcome" in deals.columns and "closed_at" in deals.columns:
        won = deals[(deals["outcome"].astype(object) == "won") & deals["closed_at"].notna()]
        candidates.append(won.groupby("person_id")["closed_at"].min())
    stacked = pd.concat(candidates)
    known = stacked.groupby(level=0).min()
    leads = data.leads
    if leads is not None and "converted_at" in leads.columns:
        own = leads.dropna(subset=["converted_at"]).groupby("person_id")["converted_at"].min()
        known = pd.concat([known, own[~own.index.isin(known.index)]])
    return known.rename("converted_at").rename_axis("person_id")


def converted_without_date(data: CRMData) -> pd.Index:
    """People whose lead ``status`` says they won or became customers, with no conversion
    time anywhere: they count as converted, but never as customers before any as-of."""
    leads = data.leads
    if leads is None or "status" not in leads.columns:
        return pd.Index([], name="person_id")
    won = leads.loc[leads["status"].astype(object).isin(LEAD_WON_STATUSES), "person_id"].unique()
    return pd.Index(won, name="person_id").difference(conversion_times(data).index)


def label_purchase_probability(
    data: CRMData, persons: pd.Index, as_of: pd.Timestamp, horizon_days: int
) -> pd.Series:
    """1 if the person has at least one paid order in ``[as_of, as_of + H)``."""
    paid = paid_orders(data)
    in_window = paid[(paid["timestamp"] >= as_of) & (paid["timestamp"] < as_of + _days(horizon_days))]
    buyers = pd.Index(in_window["person_id"].unique())
    return pd.Series(persons.isin(buyers).astype(np.int8), index=persons, name="label")


def open_leads(data: CRMData, as_of: pd.Timestamp, horizon_days: int) -> pd.Series:
    """People with an open lead at ``as_of``, with its creation time.

    Open: the person's latest lead before ``as_of`` is younger than H days and the person
    is not a customer yet (no paid order or won deal before ``as_of``).
    """
    leads = data.leads
    if leads is None:
        return pd.Series(dtype="datetime64[ns]", name="lead_created_at").rename_axis("person_id")
    known = leads[leads["created_at"] < as_of]
    latest = known.groupby("person_id")["created_at"].max().rename("lead_created_at")
    latest = latest[latest >= as_of - _days(horizon_days)]
    converted = conversion_times(data).reindex(latest.index)
    return latest[converted.isna() | (converted >= as_of)]


def label_lead_quality(data: CRMData, as_of: pd.Timestamp, horizon_days: int) -> pd.DataFrame:
    """Open leads at ``as_of`` and whether each converts within H days of its creation.

    The label window is ``[as_of, lead_created_at + H)``: a lead scored at 80 days old has
    10 days left, which the model sees through the lead's age.
    """
    frame = open_leads(data, as_of, horizon_days).to_frame()
    converted = conversion_times(data).reindex(frame.index)
    in_time = converted < frame["lead_created_at"] + _days(horizon_days)
    # An undated win is known only from the export's current status: it counts as a
    # conversion, and the lead's age (a feature) tells the model how long it had.
    undated = frame.index.isin(converted_without_date(data))
    frame["label"] = (in_time | undated).astype(np.int8)
    return frame


def service_trigger_times(data: CRMData, nps_detractor_max: float) -> pd.DataFrame:
    """Every service problem as (person_id, timestamp): tickets, complaints, refunds,
    failed payments and detractor NPS answers."""
    parts = []
    inter = data.interactions
    if inter is not None:
        kind = inter["type"].astype(object)
        is_trigger = kind.isin(SERVICE_TRIGGER_TYPES)
        if "value" in inter.columns:
            is_trigger |= (kind == "nps") & (inter["value"] <= nps_detractor_max)
        parts.append(inter.loc[is_trigger, ["person_id", "timestamp"]])
    orders = data.orders
    if orders is not None and "status" in orders.columns:
        bad = orders["status"].astype(object).isin(("failed", "refunded"))
        parts.append(orders.loc[bad, ["person_id", "timestamp"]])
    if not parts:
        return pd.DataFrame({"person_id": pd.Series(dtype=object), "timestamp": pd.Series(dtype="datetime64[ns]")})
    return pd.concat(parts, ignore_index=True)


def activity_times(data: CRMData) -> pd.DataFrame:
    """Every sign of a customer's own interest as (person_id, timestamp): paid orders and
    engagement interactions."""
    parts = [paid_orders(data)[["person_id", "timestamp"]]]
    inter = data.interactions
    if inter is not None:
        engaged = inter["type"].astype(object).isin(ENGAGEMENT_TYPES)
        parts.append(inter.loc[engaged, ["person_id", "timestamp"]])
    return pd.concat(parts, ignore_index=True)


def _people_with_events(events: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.Index:
    stamps = events["timestamp"]
    return pd.Index(events.loc[(stamps >= start) & (stamps < end), "person_id"].unique())


def active_customers(
    data: CRMData, as_of: pd.Timestamp, horizon_days: int, active_customer_days: int
) -> pd.Index:
    """Customers who have not already left at ``as_of``: a paid order in the last
    ``active_customer_days`` and some activity (paid order or engagement) in the last H days."""
    recent_buyers = _people_with_events(paid_orders(data), as_of - _days(active_customer_days), as_of)
    recently_active = _people_with_events(activity_times(data), as_of - _days(horizon_days), as_of)
    return recent_buyers.intersection(recently_active).sort_values().rename("person_id")


def label_churn(
    data: CRMData,
    as_of: pd.Timestamp,
    horizon_days: int,
    active_customer_days: int,
    nps_detractor_max: float,
) -> pd.DataFrame:
    """Active customers at ``as_of`` and how (if at all) each goes quiet over the next H days.

    Quiet: no paid order and no engagement in ``[as_of, as_of + H)``.
    A service trigger in ``[as_of - H, as_of + H)`` makes quietness *service* churn; quiet
    without one is churn *by indifference*. Columns: ``churn_by_indifference``,
    ``service_churn`` (0/1 each, never both) and ``label`` (= churn_by_indifference).
    """
    horizon = _days(horizon_days)
    eligible = active_customers(data, as_of, horizon_days, active_customer_days)
    active_after = _people_with_events(activity_times(data), as_of, as_of + horizon)
    triggered = _people_with_events(
        service_trigger_times(data, nps_detractor_max), as_of - horizon, as_of + horizon
    )
    quiet = ~eligible.isin(active_after)
    had_trigger = eligible.isin(triggered)
    frame = pd.DataFrame(
        {
            "churn_by_indifference": (quiet & ~had_trigger).astype(np.int8),
            "service_churn": (quiet & had_trigger).astype(np.int8),
        },
        index=eligible,
    )
    frame["label"] = frame["churn_by_indifference"]
    return frame


def label_time_to_close(
    data: CRMData, as_of: pd.Timestamp, horizon_days: int, data_end: pd.Timestamp
) -> pd.DataFrame:
    """Deals open at ``as_of`` with their time to close, lost as a competing outcome.

    Follow-up runs to ``min(as_of + H, data_end)``. ``event`` is ``won``, ``lost`` or
    ``censored`` (still open at the end of follow-up); ``duration_days`` is the time from
    ``as_of`` to the close, or to the end of follow-up when censored.
    """
    deals = data.deals
    columns = ["person_id", "duration_days", "event"]
    if deals is None:
        return pd.DataFrame(columns=columns).rename_axis("deal_id")
    closed_at = deals["closed_at"] if "closed_at" in deals.columns else pd.Series(pd.NaT, index=deals.index)
    is_open = (deals["created_at"] < as_of) & (closed_at.isna() | (closed_at >= as_of))
    open_deals = deals[is_open]
    closes = closed_at[is_open]
    follow_up_end = min(as_of + _days(horizon_days), data_end)
    outcome = (
        open_deals["outcome"].astype(object)
        if "outcome" in open_deals.columns
        else pd.Series("open", index=open_deals.index)
    )
    closes_in_follow_up = closes.notna() & (closes < follow_up_end) & outcome.isin(("won", "lost"))
    event = np.where(closes_in_follow_up, outcome, "censored")
    end_time = closes.where(closes_in_follow_up, follow_up_end)
    duration = (end_time - as_of) / pd.Timedelta(days=1)
    frame = pd.DataFrame(
        {"person_id": open_deals["person_id"].to_numpy(), "duration_days": duration.to_numpy(), "event": event},
        index=pd.Index(open_deals["deal_id"].to_numpy(), name="deal_id"),
    )
    return frame
