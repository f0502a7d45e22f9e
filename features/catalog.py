"""Every feature in plain words, for the reasons shown next to a score.

:func:`describe_feature` turns a column and its value into a phrase a salesperson
understands: ``n_email_open_30d = 6`` → "opened 6 e-mails in the last 30 days";
``days_since_last_paid_order = 140`` with ``purchase_gap_mean_days = 35`` in the row →
"no purchase for 140 days; usually buys every 35". Phrases carry their own direction words
where the value has one (trend "up"/"down", "longer than usual"); whether the feature
pushed the score up or down is the explanation's job (SHAP sign), not the catalog's.

The catalog is a list of :class:`Entry`, one per feature or family of features (a regular
expression over column names, e.g. ``n_<type>_<d>d``). The first matching entry wins, so
specific entries come before catch-alls such as ``lead_<attribute>``.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pandas as pd

from features.contract import DEAL_STAGES, JOURNEY_STAGES
from radar.text import count_text, plural

Row = Mapping[str, object] | pd.Series | None
Render = Callable[[object, dict[str, str], Row], str]


@dataclass(frozen=True)
class Entry:
    """One feature (or family): the name pattern, what it measures, how to say a value."""

    pattern: str
    meaning: str
    render: Render

    def match(self, name: str) -> re.Match[str] | None:
        return re.fullmatch(self.pattern, name)


# ---------------------------------------------------------------- formatting helpers


def _missing(value: object) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, numbers.Real) and math.isnan(float(value))


def _num(value: float) -> str:
    """A count or amount as a person writes it: 6, 1,250, 2.5."""
    return count_text(value)


def _days(value: float) -> str:
    return f"{float(value):.0f}"


def _day_count(value: float) -> str:
    """Whole days with their unit: "1 day", "140 days"."""
    return plural(round(float(value)), "day")


def _days_ago(value: float) -> str:
    """"today", "1 day ago", "8 days ago" (whole days)."""
    days = round(float(value))
    return "today" if days == 0 else f"{plural(days, 'day')} ago"


def _window(days: str) -> str:
    """A window's length from its ``<d>d`` name: "30 days"; a one-day window is "day"
    ("in the last day")."""
    return "day" if int(days) == 1 else plural(int(days), "day")


def _with_window(groups: dict[str, str]) -> dict[str, str]:
    """The pattern's groups, plus ``window`` ("30 days") where the name has a window."""
    return {**groups, "window": _window(groups["days"])} if "days" in groups else groups


def _counted(zero: str, one: str, many: str, missing: str | None = None) -> Render:
    """A count: ``many`` takes ``{n}``; every template may use the pattern's groups."""

    def render(value: object, groups: dict[str, str], row: Row) -> str:
        groups = _with_window(groups)
        if _missing(value):
            return (missing or zero).format(**groups)
        number = float(value)  # type: ignore[arg-type]
        template = zero if number == 0 else one if number == 1 else many
        return template.format(n=_num(number), **groups)

    return render


def _measured(template: str, missing: str, fmt: Callable[[float], str] = _num) -> Render:
    """A measurement: ``template`` takes ``{value}`` (formatted) and the pattern's groups."""

    def render(value: object, groups: dict[str, str], row: Row) -> str:
        groups = _with_window(groups)
        if _missing(value):
            return missing.format(**groups)
        return template.format(value=fmt(float(value)), **groups)  # type: ignore[arg-type]

    return render


def _text(template: str, missing: str) -> Render:
    """A category value, shown as it is."""

    def render(value: object, groups: dict[str, str], row: Row) -> str:
        return missing if _missing(value) else template.format(value=value, **groups)

    return render


def _trend(subject: str) -> Render:
    def render(value: object, groups: dict[str, str], row: Row) -> str:
        span = f"in the last {_window(groups['recent'])} vs the {groups['base']} before"
        if _missing(value):
            return f"{subject} trend unknown"
        ratio = float(value)  # type: ignore[arg-type]
        if ratio > 1.05:
            return f"{subject} up {ratio:.1f}× {span}"
        if ratio < 0.95:
            return f"{subject} down to {ratio:.1f}× {span}"
        return f"{subject} steady {span}"

    return render


def _last_purchase(value: object, groups: dict[str, str], row: Row) -> str:
    if _missing(value):
        return "has never bought"
    text = f"no purchase for {_day_count(value)}"  # type: ignore[arg-type]
    gap = None if row is None else row.get("purchase_gap_mean_days")
    if not _missing(gap):
        text += f"; usually buys every {_days(gap)}"  # type: ignore[arg-type]
    return text


def _overdue(value: object, groups: dict[str, str], row: Row) -> str:
    if _missing(value):
        return "no purchase rhythm yet"
    ratio = float(value)  # type: ignore[arg-type]
    if ratio > 1:
        return f"{ratio:.1f}× longer than usual since the last purchase"
    return "last purchase within the usual gap"


def _yes_no(yes: str, no: str) -> Render:
    def render(value: object, groups: dict[str, str], row: Row) -> str:
        return yes if not _missing(value) and float(value) > 0 else no  # type: ignore[arg-type]

    return render


def _ordinal(names: tuple[str, ...], template: str, missing: str) -> Render:
    def render(value: object, groups: dict[str, str], row: Row) -> str:
        if _missing(value) or not 0 <= float(value) < len(names):  # type: ignore[arg-type]
            return missing
        return template.format(stage=names[int(float(value))])  # type: ignore[arg-type]

    return render


#: How each kind of e-mail and phone (features.contact) reads in a reason.
EMAIL_PHRASES: dict[str, str] = {
    "company": "uses a company e-mail address",
    "webmail": "uses a free webmail address",
    "disposable": "gave a disposable (throwaway) e-mail address",
    "invalid": "gave an e-mail address that is not valid",
}
PHONE_PHRASES: dict[str, str] = {
    "mobile": "gave a mobile number",
    "fixed_line": "gave a landline number",
    "fixed_line_or_mobile": "gave a valid phone number",
    "other": "gave a toll-free, VoIP or other special number",
    "invalid": "gave a phone number that is not valid",
}


def _phrase_of(phrases: dict[str, str], missing: str, label: str) -> Render:
    """A category with a sentence per value (``label: value`` for a value it does not know)."""

    def render(value: object, groups: dict[str, str], row: Row) -> str:
        if _missing(value):
            return missing
        return phrases.get(str(value), f"{label}: {value}")

    return render


def _attribute(value: object, groups: dict[str, str], row: Row) -> str:
    label = groups["attribute"].replace("_", " ")
    if _missing(value):
        return f"{label}: unknown"
    shown = _num(value) if isinstance(value, numbers.Real) else str(value)  # type: ignore[arg-type]
    return f"{label}: {shown}"


# ---------------------------------------------------------------- interaction types

_W = r"(?P<days>\d+)"
#: The window phrase: "{window}" is filled with "30 days" (or "1 day") by describe_feature.
_IN = " in the last {window}"

#: (none, once, {n} times) for each interaction type, as a salesperson would say it.
TYPE_PHRASES: dict[str, tuple[str, str, str]] = {
    "web_visit": ("no website visits", "visited the website once", "visited the website {n} times"),
    "form_submit": ("no forms filled in", "filled in 1 form", "filled in {n} forms"),
    "email_open": ("opened no e-mails", "opened 1 e-mail", "opened {n} e-mails"),
    "email_click": ("clicked no e-mail links", "clicked 1 e-mail link", "clicked {n} e-mail links"),
    "call": ("no calls", "had 1 call", "had {n} calls"),
    "meeting": ("no meetings", "had 1 meeting", "had {n} meetings"),
    "whatsapp_message": ("no WhatsApp messages", "sent 1 WhatsApp message", "sent {n} WhatsApp messages"),
    "chat_message": ("no chat messages", "sent 1 chat message", "sent {n} chat messages"),
    "cart_add": ("added nothing to the cart", "added to the cart once", "added to the cart {n} times"),
    "cart_abandon": ("no abandoned carts", "abandoned a cart once", "abandoned a cart {n} times"),
    "campaign_touch": ("no campaign touches", "reached by 1 campaign", "reached by {n} campaigns"),
    "support_ticket": ("no support tickets", "opened 1 support ticket", "opened {n} support tickets"),
    "complaint": ("no complaints", "complained once", "complained {n} times"),
    "nps": ("no NPS answers", "answered 1 NPS survey", "answered {n} NPS surveys"),
}


def _per_type(value: object, groups: dict[str, str], row: Row) -> str:
    zero, one, many = TYPE_PHRASES[groups["type"]]
    return _counted(zero + _IN, one + _IN, many + _IN)(value, groups, row)


_TYPES = "|".join(TYPE_PHRASES)

# ---------------------------------------------------------------- the catalog

CATALOG: tuple[Entry, ...] = (
    # the person
    Entry("tenure_days", "days since the person's first record of any kind",
          _measured("known for {value}", "not known before", _day_count)),
    Entry("is_customer", "1 if they have bought, won a deal or converted as a lead",
          _yes_no("already a customer", "not a customer yet")),
    Entry("journey_stage", "furthest journey stage reached: 0 need … 4 use",
          _ordinal(JOURNEY_STAGES, "at the {stage} stage of the journey", "journey stage unknown")),
    # leads
    Entry("n_leads", "lead records for the person",
          _counted("never came in as a lead", "came in as 1 lead", "came in as {n} leads")),
    Entry("lead_age_days", "days since the earliest lead",
          _measured("first came in as a lead {value}", "never came in as a lead", _days_ago)),
    Entry("lead_source", "source channel of the earliest lead that has one",
          _text("came in through {value}", "lead source unknown")),
    # orders: recency, frequency, monetary (paid orders only)
    Entry("n_paid_orders", "paid orders ever",
          _counted("has never bought", "bought once", "bought {n} times")),
    Entry("paid_amount_total", "total of paid orders", _measured("spent {value} in total", "has never bought")),
    Entry("paid_amount_mean", "mean paid order amount",
          _measured("spends {value} per order on average", "has never bought")),
    Entry("paid_amount_max", "largest paid order", _measured("largest order {value}", "has never bought")),
    Entry("days_since_first_paid_order", "days since the first paid order",
          _measured("first purchase {value}", "has never bought", _days_ago)),
    Entry("days_since_last_paid_order", "days since the last paid order", _last_purchase),
    Entry(rf"n_paid_orders_{_W}d", "paid orders in the window",
          _counted("no purchases" + _IN, "bought once" + _IN, "bought {n} times" + _IN)),
    Entry(rf"paid_amount_{_W}d", "paid amount in the window",
          _measured("spent {value}" + _IN, "spent nothing" + _IN)),
    Entry(r"paid_order_trend_(?P<recent>\d+)d_vs_(?P<base>\d+)d",
          "daily purchase rate recently over the rate before (1 = steady)", _trend("purchases")),
    Entry("purchase_gap_mean_days", "mean days between consecutive paid orders",
          _measured("usually buys every {value}", "no purchase rhythm yet", _day_count)),
    Entry("purchase_gap_std_days", "spread of the days between paid orders",
          _measured("purchase rhythm varies by ±{value}", "no purchase rhythm yet", _day_count)),
    Entry("days_since_last_paid_order_vs_usual_gap", "days since last purchase over the usual gap", _overdue),
    # payment problems
    Entry("n_failed_payments", "failed payments ever",
          _counted("no failed payments", "1 failed payment", "{n} failed payments")),
    Entry(rf"n_failed_payments_{_W}d", "failed payments in the window",
          _counted("no failed payments" + _IN, "1 failed payment" + _IN, "{n} failed payments" + _IN)),
    Entry("n_refunds", "refunded orders ever", _counted("no refunds", "1 refund", "{n} refunds")),
    Entry(rf"n_refunds_{_W}d", "refunded orders in the window",
          _counted("no refunds" + _IN, "1 refund" + _IN, "{n} refunds" + _IN)),
    Entry("refund_amount_total", "amount refunded", _measured("refunds worth {value}", "no refunds")),
    Entry("failed_amount_unrecovered", "failed payments not followed by any paid order",
          _measured("{value} in failed payments not recovered", "no failed payments")),
    # interactions
    Entry(rf"n_(?P<type>{_TYPES})_{_W}d", "interactions of that type in the window", _per_type),
    Entry(rf"n_engagement_{_W}d", "own activity (visits, e-mails, forms, calls, meetings, messages, carts)",
          _counted("no activity" + _IN, "active once" + _IN, "active {n} times" + _IN)),
    Entry(r"engagement_trend_(?P<recent>\d+)d_vs_(?P<base>\d+)d",
          "daily activity rate recently over the rate before (1 = steady)", _trend("engagement")),
    Entry("days_since_last_engagement", "days since their last own activity",
          _measured("last active {value}", "never active", _days_ago)),
    Entry("nps_last_value", "latest NPS score", _measured("last NPS answer: {value}", "never answered NPS")),
    Entry("days_since_last_nps", "days since the latest NPS answer",
          _measured("last NPS answer {value}", "never answered NPS", _days_ago)),
    Entry("n_nps_detractor", "NPS answers at or below the detractor threshold",
          _counted("no low NPS answers", "1 low NPS answer", "{n} low NPS answers")),
    Entry("days_since_last_service_issue",
          "days since the last ticket, complaint, low NPS, failed payment or refund",
          _measured("last service problem {value}", "no service problems", _days_ago)),
    # deals
    Entry("n_open_deals", "deals open at the moment",
          _counted("no open deals", "1 open deal", "{n} open deals")),
    Entry("oldest_open_deal_age_days", "age of the oldest open deal",
          _measured("oldest open deal is {value} old", "no open deals", _day_count)),
    Entry("newest_open_deal_age_days", "age of the newest open deal",
          _measured("newest open deal is {value} old", "no open deals", _day_count)),
    Entry("open_deals_amount_total", "amount of all open deals",
          _measured("open deals worth {value}", "no open deals")),
    Entry("open_deal_stage", "stage of the leading open deal: 0 qualification … 3 negotiation",
          _ordinal(DEAL_STAGES, "leading open deal is at the {stage} stage", "no deal stage known")),
    Entry("open_deal_amount", "amount of the leading open deal (the one furthest along)",
          _measured("leading open deal worth {value}", "no open deal amount")),
    Entry("open_deal_age_days", "age of the leading open deal",
          _measured("leading open deal opened {value}", "no open deals", _days_ago)),
    Entry("open_deal_n_stage_changes", "stage moves of the leading open deal",
          _counted("leading open deal has not moved stage", "leading open deal moved stage once",
                   "leading open deal moved stage {n} times", "no open deals")),
    Entry("open_deal_days_since_stage_change", "days since the leading open deal last moved",
          _measured("leading open deal has not moved for {value}", "no deal stage known", _day_count)),
    # a deal row's own deal (time to close scores each open deal: features.pipeline.build_deal_features)
    Entry("deal_stage", "stage of this deal from its stage history: 0 qualification … 3 negotiation",
          _ordinal(DEAL_STAGES, "deal is at the {stage} stage", "no deal stage known")),
    Entry("deal_amount", "amount of this deal", _measured("deal worth {value}", "no deal amount")),
    Entry("deal_age_days", "age of this deal", _measured("deal opened {value}", "deal opening unknown", _days_ago)),
    Entry("deal_n_stage_changes", "stage moves of this deal",
          _counted("deal has not moved stage", "deal moved stage once", "deal moved stage {n} times")),
    Entry("deal_days_since_stage_change", "days since this deal last moved stage",
          _measured("deal has not moved for {value}", "no deal stage known", _day_count)),
    Entry("deal_owner", "salesperson who owns this deal", _text("owned by {value}", "deal owner unknown")),
    Entry("n_deals_won", "deals won before", _counted("no deals won", "won 1 deal", "won {n} deals")),
    Entry("n_deals_lost", "deals lost before", _counted("no deals lost", "lost 1 deal", "lost {n} deals")),
    Entry("won_deals_amount", "amount of deals won", _measured("won deals worth {value}", "no deals won")),
    # contact-data quality of the earliest lead that has it (features.contact)
    Entry("lead_email_kind", "kind of e-mail address: company domain, free webmail, disposable or invalid",
          _phrase_of(EMAIL_PHRASES, "gave no e-mail address", "e-mail")),
    Entry("lead_phone_kind", "kind of phone number: mobile, landline, either (plans that do not tell), "
          "other (toll-free, VoIP…) or invalid", _phrase_of(PHONE_PHRASES, "gave no phone number", "phone")),
    Entry("lead_has_name", "1 if the lead gave a name", _yes_no("gave their name", "gave no name")),
    # lead attributes: any other lead_ column (country, industry, company_size…)
    Entry(r"lead_(?P<attribute>.+)", "attribute of the earliest lead that has it", _attribute),
)


def describe_pattern(name: str) -> Entry | None:
    """The catalog entry that explains feature ``name`` (None if there is none)."""
    for entry in CATALOG:
        if entry.match(name):
            return entry
    return None


def describe_feature(name: str, value: object, row: Row = None) -> str:
    """A plain-English phrase for ``name = value``; ``row`` (the person's other features)
    lets a phrase add context, such as the usual purchase gap."""
    entry = describe_pattern(name)
    if entry is None:
        return f"{name.replace('_', ' ')}: {value}"
    match = entry.match(name)
    assert match is not None  # describe_pattern only returns matching entries
    return entry.render(value, match.groupdict(), row)
