"""Marketing and sales KPIs from the CRM tables: plain frames, no HTML (see ``serving.report``).

Definitions (every figure uses only records before ``as_of``; H = ``training.horizon_days``):

* **channel** of a person: the ``source`` of their earliest lead ("(unknown)" when the lead
  has none, "(no lead)" for people known only from orders or interactions). Spend carries
  its own ``channel``.
* **month**: the calendar month of a lead's creation (acquisition figures), of a spend row,
  of a paid order (average ticket) or of an NPS answer.
* **conversion**: a person's first paid order or won deal (``training.labels.conversion_times``).
  A lead *converts* when that first conversion falls in ``[created_at, created_at + H)``;
  the conversion is credited to the person's latest lead created at or before it, so a
  person with several leads counts once. A lead created when the person already was a
  customer does not convert. A month is *mature* once all its leads have had H days; the
  rates of younger months are provisional, and channel totals of conversion rate, CAC and
  LTV/CAC use mature months only.
* **cost per lead** = spend / leads; **CAC** = spend / converted leads (mature months).
* **average ticket** = mean amount of paid orders (status ``paid`` or none).
* **predicted LTV** per channel = revenue per paying customer per year × expected lifetime.
  Revenue per year: paid revenue in ``[as_of - 365 d, as_of)`` over the people who paid in
  that year. Lifetime: with ``p`` the observed H-day churn rate (service + indifference,
  ``training.labels.label_churn``) of active customers at the monthly as-ofs of the last
  year whose window has passed, a customer lives on average ``1 / p`` periods of H days,
  i.e. ``H / 365 / p`` years, capped at :data:`MAX_LIFETIME_YEARS`. It is revenue, not
  margin.
* **LTV/CAC** = channel LTV / CAC; flagged when below :data:`LTV_CAC_TARGET`.
* **NPS** = 100 × (promoters − detractors) / answers; promoters answer 9-10, detractors
  at most ``features.nps_detractor_max`` (6).
* **sales cycle** = days from the converting lead's creation to the conversion; median.
* **funnel**: people at or past each journey stage at ``as_of``, from the features'
  ``journey_stage`` (``features.families``).
* **churn split**: at each month start whose H-day window has passed, active customers and
  how many went quiet by indifference or after a service trigger (``label_churn``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.core.groupby import DataFrameGroupBy

from features.contract import JOURNEY_STAGES, CRMData
from features.pipeline import build_features
from radar.config import Settings
from training.labels import conversion_times, label_churn, paid_orders

LTV_CAC_TARGET = 3.0
MAX_LIFETIME_YEARS = 5.0
PROMOTER_MIN = 9.0
#: How far back the churn split goes (monthly as-ofs).
CHURN_MONTHS = 24
NO_LEAD = "(no lead)"
UNKNOWN = "(unknown)"
YEAR = pd.Timedelta(days=365)

#: Columns of ``Kpis.by_channel_month`` and ``Kpis.by_channel``, in display order.
ACQUISITION_COLUMNS: tuple[str, ...] = (
    "spend",
    "leads",
    "cost_per_lead",
    "conversions",
    "conversion_rate",
    "cac",
    "avg_ticket",
    "ltv",
    "ltv_cac",
    "ltv_cac_low",
    "nps",
    "nps_answers",
    "median_cycle_days",
    "mature",
)


@dataclass
class Kpis:
    """Every figure of the KPI report."""

    as_of: pd.Timestamp
    horizon_days: int
    #: Index (channel, month); columns ACQUISITION_COLUMNS.
    by_channel_month: pd.DataFrame
    #: Index channel; the same columns over all months (rates over mature months).
    by_channel: pd.DataFrame
    #: The same figures for the whole business (one value each).
    overall: dict[str, float]
    #: Index stage (JOURNEY_STAGES order); column ``people``.
    funnel: pd.DataFrame
    #: Index as-of month; columns ``active_customers``, ``indifference``, ``service``.
    churn: pd.DataFrame
    #: Index channel: ``revenue_per_year``, ``churn_rate``, ``lifetime_years``, ``ltv``.
    ltv_inputs: pd.DataFrame


# --- preparing the tables ------------------------------------------------------------------


def default_as_of(data: CRMData) -> pd.Timestamp:
    """The day after the latest record, so that every record counts."""
    stamps = [
        frame[column].max()
        for frame, column in (
            (data.leads, "created_at"),
            (data.interactions, "timestamp"),
            (data.orders, "timestamp"),
            (data.deals, "created_at"),
            (data.spend, "date"),
        )
        if frame is not None and len(frame)
    ]
    stamps = [s for s in stamps if pd.notna(s)]
    if not stamps:
        raise ValueError("the CRM has no dated records")
    return pd.Timestamp(max(stamps)).normalize() + pd.Timedelta(days=1)


def cut_before(data: CRMData, as_of: pd.Timestamp) -> CRMData:
    """The CRM as it stood at ``as_of``: later rows dropped, deals not yet closed reopened."""
    def before(frame: pd.DataFrame | None, column: str) -> pd.DataFrame | None:
        return None if frame is None else frame[frame[column] < as_of]

    deals = before(data.deals, "created_at")
    if deals is not None and "closed_at" in deals.columns:
        later = deals["closed_at"] >= as_of
        deals = deals.assign(closed_at=deals["closed_at"].mask(later))
        if "outcome" in deals.columns:
            deals = deals.assign(outcome=deals["outcome"].astype(object).mask(later, "open"))
    return CRMData(
        leads=before(data.leads, "created_at"),
        interactions=before(data.interactions, "timestamp"),
        orders=before(data.orders, "timestamp"),
        deals=deals,
        spend=before(data.spend, "date"),
    )


def _month(stamps: pd.Series) -> pd.Series:
    return stamps.dt.to_period("M").dt.to_timestamp()


def person_channels(data: CRMData) -> pd.Series:
    """Each person's acquisition channel: the source of their earliest lead."""
    leads = data.leads
    if leads is None or leads.empty:
        return pd.Series(dtype=object, name="channel").rename_axis("person_id")
    first = leads.sort_values(["created_at", "lead_id"], kind="stable").drop_duplicates("person_id")
    source = first["source"].astype(object) if "source" in first.columns else pd.Series(np.nan, index=first.index)
    return pd.Series(source.fillna(UNKNOWN).to_numpy(), index=first["person_id"].to_numpy(), name="channel")


def _channel_of(persons: pd.Series, channels: pd.Series) -> np.ndarray:
    return persons.map(channels).fillna(NO_LEAD).to_numpy(dtype=object)


# --- acquisition ---------------------------------------------------------------------------


def converting_leads(data: CRMData, horizon_days: int) -> pd.DataFrame:
    """Every lead with its channel, month and, when it converted, the days it took."""
    leads = data.leads
    if leads is None:
        return pd.DataFrame(columns=["channel", "month", "converted", "cycle_days"])
    source = leads["source"].astype(object) if "source" in leads.columns else pd.Series(np.nan, index=leads.index)
    frame = pd.DataFrame(
        {
            "person_id": leads["person_id"].to_numpy(dtype=object),
            "created_at": leads["created_at"].to_numpy(),
            "channel": source.fillna(UNKNOWN).to_numpy(dtype=object),
        }
    )
    frame["month"] = _month(frame["created_at"])
    frame["conversion"] = frame["person_id"].map(conversion_times(data))
    # Credit the conversion to the latest lead before it only (one conversion per person).
    candidate = frame["conversion"] >= frame["created_at"]
    latest = frame["created_at"].where(candidate).groupby(frame["person_id"]).transform("max")
    credited = candidate & (frame["created_at"] == latest)
    cycle = (frame["conversion"] - frame["created_at"]) / pd.Timedelta(days=1)
    frame["converted"] = credited & (cycle < horizon_days)
    frame["cycle_days"] = cycle.where(frame["converted"])
    return frame[["channel", "month", "converted", "cycle_days"]]


def _spend_by(data: CRMData) -> pd.Series:
    spend = data.spend
    if spend is None or spend.empty:
        return pd.Series(dtype=float, name="spend")
    keys = [spend["channel"].astype(object).fillna(UNKNOWN).rename("channel"), _month(spend["date"]).rename("month")]
    return spend["amount"].groupby(keys).sum().rename("spend")


def _paid_by(data: CRMData, channels: pd.Series) -> pd.DataFrame:
    paid = paid_orders(data)
    if "amount" not in paid.columns:
        return pd.DataFrame({"channel": [], "month": [], "amount": []})
    return pd.DataFrame(
        {
            "channel": _channel_of(paid["person_id"], channels),
            "month": _month(paid["timestamp"]).to_numpy(),
            "amount": paid["amount"].to_numpy(dtype=float),
        }
    )


def nps_answers(data: CRMData, channels: pd.Series, detractor_max: float) -> pd.DataFrame:
    """Each NPS answer as channel, month, promoter (0/1) and detractor (0/1)."""
    inter = data.interactions
    empty = pd.DataFrame({"channel": [], "month": [], "promoter": [], "detractor": []})
    if inter is None or "value" not in inter.columns:
        return empty
    answers = inter[(inter["type"].astype(object) == "nps") & inter["value"].notna()]
    return pd.DataFrame(
        {
            "channel": _channel_of(answers["person_id"], channels),
            "month": _month(answers["timestamp"]).to_numpy(),
            "promoter": (answers["value"] >= PROMOTER_MIN).to_numpy(dtype=float),
            "detractor": (answers["value"] <= detractor_max).to_numpy(dtype=float),
        }
    )


def _ratio(numerator: pd.Series, denominator: pd.Series) -> pd.Series:
    """numerator / denominator, NaN (not inf) where the denominator is 0 or missing."""
    return numerator / denominator.where(denominator > 0)


def _nps(promoters: pd.Series, detractors: pd.Series, answers: pd.Series) -> pd.Series:
    return 100.0 * _ratio(promoters - detractors, answers)


def _monthly_sums(data: CRMData, settings: Settings, channels: pd.Series) -> pd.DataFrame:
    """Additive figures per (channel, month); ratios are taken from these sums later."""
    leads = converting_leads(data, settings.training.horizon_days)
    keys = ["channel", "month"]
    acquisition = leads.groupby(keys).agg(leads=("converted", "size"), conversions=("converted", "sum"))
    paid = _paid_by(data, channels).groupby(keys)["amount"].agg(revenue="sum", paid_orders="size")
    nps = nps_answers(data, channels, settings.features.nps_detractor_max).groupby(keys).agg(
        promoters=("promoter", "sum"), detractors=("detractor", "sum"), nps_answers=("promoter", "size")
    )
    sums = pd.concat([_spend_by(data), acquisition, paid, nps], axis=1).fillna(0.0)
    cycles = leads.groupby(keys)["cycle_days"].median().rename("median_cycle_days")
    return sums.join(cycles).rename_axis(keys).sort_index()


def _mature(months: pd.Index, as_of: pd.Timestamp, horizon_days: int) -> np.ndarray:
    """A lead month is mature when its last lead has had H days (the month's end + H <= as_of)."""
    month_end = pd.DatetimeIndex(months) + pd.offsets.MonthBegin(1)
    return np.asarray(month_end + pd.Timedelta(days=horizon_days) <= as_of)


def _derive(sums: pd.DataFrame, ltv: pd.Series | float) -> pd.DataFrame:
    """The ACQUISITION_COLUMNS from additive sums (one row per group)."""
    out = pd.DataFrame(index=sums.index)
    out["spend"] = sums["spend"]
    out["leads"] = sums["leads"].astype(int)
    out["cost_per_lead"] = _ratio(sums["spend"], sums["leads"])
    out["conversions"] = sums["conversions"].astype(int)
    out["conversion_rate"] = _ratio(sums["conversions"], sums["leads"])
    out["cac"] = _ratio(sums["spend"], sums["conversions"])
    out["avg_ticket"] = _ratio(sums["revenue"], sums["paid_orders"])
    out["ltv"] = ltv
    out["ltv_cac"] = _ratio(out["ltv"], out["cac"])
    out["ltv_cac_low"] = out["ltv_cac"] < LTV_CAC_TARGET
    out["nps"] = _nps(sums["promoters"], sums["detractors"], sums["nps_answers"])
    out["nps_answers"] = sums["nps_answers"].astype(int)
    out["median_cycle_days"] = sums["median_cycle_days"]
    out["mature"] = sums["mature"].astype(bool)
    return out[list(ACQUISITION_COLUMNS)]


#: Figures summed over every month in channel totals; the rest come from mature months only.
ALL_MONTH_SUMS: tuple[str, ...] = ("revenue", "paid_orders", "promoters", "detractors", "nps_answers")


def _summarise(
    sums: pd.DataFrame, leads: pd.DataFrame, ltv: pd.Series | float, level: str | None
) -> pd.DataFrame:
    """Totals per channel (``level="channel"``) or for everything (``level=None``, index "all").

    Acquisition figures (spend, leads, conversions, cycle) cover mature lead months only, so
    that every rate compares a lead with a conversion it had the time to make; the average
    ticket and NPS cover every month.
    """
    def group(frame: pd.DataFrame) -> pd.core.groupby.GroupBy:
        return frame.groupby(level) if level else frame.groupby(lambda _: "all")

    by_row = sums.reset_index(level="month", drop=True)
    total = group(by_row[by_row["mature"]]).sum(numeric_only=True)
    every_month = group(by_row).sum(numeric_only=True)
    total = total.reindex(every_month.index).fillna(0.0)
    total[list(ALL_MONTH_SUMS)] = every_month[list(ALL_MONTH_SUMS)]
    mature_leads = leads[leads["mature"]].set_index("channel")
    total["median_cycle_days"] = group(mature_leads)["cycle_days"].median().reindex(total.index)
    total["mature"] = True
    return _derive(total, ltv)


# --- lifetime value and churn ----------------------------------------------------------------


def churn_as_ofs(data: CRMData, as_of: pd.Timestamp, horizon_days: int, months: int = CHURN_MONTHS) -> list[pd.Timestamp]:
    """Month starts whose H-day window has fully passed by ``as_of``, the last ``months``."""
    latest = as_of - pd.Timedelta(days=horizon_days)
    starts = pd.date_range(end=latest, periods=months, freq="MS")
    earliest = _earliest(data)
    # Before the first record nobody can be an active customer: those months say nothing.
    return [s for s in starts if earliest is not None and s > earliest]


def _earliest(data: CRMData) -> pd.Timestamp | None:
    stamps = [
        frame[column].min()
        for frame, column in ((data.orders, "timestamp"), (data.interactions, "timestamp"), (data.leads, "created_at"))
        if frame is not None and len(frame)
    ]
    stamps = [s for s in stamps if pd.notna(s)]
    return min(stamps) if stamps else None


def churn_split(data: CRMData, settings: Settings, as_ofs: list[pd.Timestamp], channels: pd.Series) -> pd.DataFrame:
    """Per as-of and channel: active customers, churned by indifference, churned after a service trigger."""
    training = settings.training
    parts = []
    for moment in as_ofs:
        labels = label_churn(
            data, moment, training.horizon_days, training.active_customer_days, settings.features.nps_detractor_max
        )
        parts.append(
            pd.DataFrame(
                {
                    "month": moment,
                    "channel": _channel_of(labels.index.to_series(), channels),
                    "indifference": labels["churn_by_indifference"].to_numpy(dtype=int),
                    "service": labels["service_churn"].to_numpy(dtype=int),
                }
            )
        )
    if not parts:
        return pd.DataFrame(columns=["month", "channel", "active_customers", "indifference", "service"])
    stacked = pd.concat(parts, ignore_index=True)
    return (
        stacked.groupby(["month", "channel"])
        .agg(active_customers=("service", "size"), indifference=("indifference", "sum"), service=("service", "sum"))
        .reset_index()
    )


def lifetime_years(churn_rate: pd.Series, horizon_days: int) -> pd.Series:
    """Expected lifetime in years for an H-day churn rate: 1/p periods of H days (geometric),
    capped because a tiny observed churn rate would promise customers for ever."""
    years = (horizon_days / 365.0) / churn_rate.where(churn_rate > 0)
    return years.fillna(MAX_LIFETIME_YEARS).clip(upper=MAX_LIFETIME_YEARS).where(churn_rate.notna())


def ltv_inputs(
    data: CRMData, as_of: pd.Timestamp, horizon_days: int, churn: pd.DataFrame, channels: pd.Series
) -> pd.DataFrame:
    """Per channel (and ``all``): revenue per paying customer per year, churn rate, lifetime, LTV."""
    paid = paid_orders(data)
    last_year = paid[paid["timestamp"] >= as_of - YEAR]
    year = pd.DataFrame(
        {
            "channel": _channel_of(last_year["person_id"], channels),
            "person_id": last_year["person_id"].to_numpy(dtype=object),
            "amount": last_year["amount"].to_numpy(dtype=float) if "amount" in last_year else 0.0,
        }
    )
    recent = churn[churn["month"] > as_of - pd.Timedelta(days=horizon_days) - YEAR] if len(churn) else churn
    by_channel = _ltv_frame(year.groupby("channel"), recent.groupby("channel"), horizon_days)
    overall = _ltv_frame(year.groupby(lambda _: "all"), recent.groupby(lambda _: "all"), horizon_days)
    return pd.concat([by_channel, overall])


def _ltv_frame(year: DataFrameGroupBy, churn: DataFrameGroupBy, horizon_days: int) -> pd.DataFrame:
    revenue = year["amount"].sum()
    customers = year["person_id"].nunique()
    churned = churn["indifference"].sum() + churn["service"].sum()
    active = churn["active_customers"].sum()
    frame = pd.concat(
        [_ratio(revenue, customers).rename("revenue_per_year"), _ratio(churned, active).rename("churn_rate")], axis=1
    )
    frame["lifetime_years"] = lifetime_years(frame["churn_rate"], horizon_days)
    frame["ltv"] = frame["revenue_per_year"] * frame["lifetime_years"]
    return frame


# --- funnel ------------------------------------------------------------------------------------


def journey_funnel(data: CRMData, as_of: pd.Timestamp, settings: Settings) -> pd.DataFrame:
    """People who reached each journey stage by ``as_of`` (the features' ``journey_stage``)."""
    stage = build_features(data, as_of, settings.features)["journey_stage"].to_numpy()
    counts = [int((stage >= i).sum()) for i in range(len(JOURNEY_STAGES))]
    return pd.DataFrame({"people": counts}, index=pd.Index(JOURNEY_STAGES, name="stage"))


# --- everything ------------------------------------------------------------------------------


def compute_kpis(data: CRMData, settings: Settings, *, as_of: pd.Timestamp | None = None) -> Kpis:
    """Every KPI of the report at ``as_of`` (default: the day after the latest record)."""
    as_of = pd.Timestamp(as_of) if as_of is not None else default_as_of(data)
    horizon = settings.training.horizon_days
    data = cut_before(data, as_of)
    channels = person_channels(data)
    sums = _monthly_sums(data, settings, channels)
    sums["mature"] = _mature(sums.index.get_level_values("month"), as_of, horizon)
    leads = converting_leads(data, horizon)
    leads["mature"] = _mature(pd.Index(leads["month"]), as_of, horizon)
    churn_by_channel = churn_split(data, settings, churn_as_ofs(data, as_of, horizon), channels)
    ltv = ltv_inputs(data, as_of, horizon, churn_by_channel, channels)
    channel_ltv = ltv["ltv"].drop("all", errors="ignore")
    by_month = _derive(sums, sums.index.get_level_values("channel").map(channel_ltv).to_numpy(dtype=float))
    by_channel = _summarise(sums, leads, channel_ltv, "channel")
    overall = _summarise(sums, leads, float(ltv["ltv"].get("all", np.nan)), None)
    churn = churn_by_channel.groupby("month")[["active_customers", "indifference", "service"]].sum()
    return Kpis(
        as_of=as_of,
        horizon_days=horizon,
        by_channel_month=by_month,
        by_channel=by_channel,
        overall={k: _plain(v) for k, v in overall.iloc[0].items()} if len(overall) else {},
        funnel=journey_funnel(data, as_of, settings),
        churn=churn,
        ltv_inputs=ltv,
    )


def _plain(value: object) -> float:
    """A numpy scalar as a Python float (bools as 0/1), for templates and JSON."""
    return float(value) if value is not None else float("nan")
