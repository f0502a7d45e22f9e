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

Phrases for many rows at once: every way of saying a value is a :class:`Phrase`, which
renders one value and also gives, for a whole column of values, a *key*: numbers that are
equal for two values exactly when the two read the same (6.0 and 6 are "opened 6
e-mails"; 140.2 and 139.9 days are both "140 days"; a ratio of 1.04 and of 0.97 are both
"steady"). :func:`describe_many` then renders one value per distinct key and hands the
sentence to every row with that key, so explaining a batch costs a few numpy passes and a
Python call per distinct phrase, not per row, with the very sentences ``describe_feature``
writes. A key may split values more finely than their phrases (that only renders a phrase
twice), never more coarsely.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
from pandas.api.types import infer_dtype

from features.contract import DEAL_STAGES, JOURNEY_STAGES
from radar.text import count_text, plural

Row = Mapping[str, object] | pd.Series | None
Render = Callable[[object, dict[str, str], Row], str]
#: A column of values (and the context columns a phrase reads) → key columns, shape (rows, k).
KeyOf = Callable[[np.ndarray, Mapping[str, np.ndarray]], np.ndarray]


@dataclass(frozen=True)
class Phrase:
    """One way of saying a value: ``render`` for one value, ``key`` for a column of them
    (see the module doc), and the other columns of the row it reads (``context``)."""

    render: Render
    key: KeyOf
    context: tuple[str, ...] = ()

    def __call__(self, value: object, groups: dict[str, str], row: Row) -> str:
        return self.render(value, groups, row)


@dataclass(frozen=True)
class Entry:
    """One feature (or family): the name pattern, what it measures, how to say a value."""

    pattern: str
    meaning: str
    render: Phrase

    def match(self, name: str) -> re.Match[str] | None:
        return re.fullmatch(self.pattern, name)


# ---------------------------------------------------------------- keys of columns of values


def _numbers(values: np.ndarray) -> np.ndarray | None:
    """A column as float64, or None when it holds anything but numbers and missing values
    (then every row is its own key: exact, if not fast)."""
    if values.dtype.kind in "fiub":
        return values.astype(np.float64, copy=False)
    kind = infer_dtype(values, skipna=True)
    if kind in ("floating", "integer", "mixed-integer-float", "empty"):
        return pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(np.float64)
    return None


def _each_row(values: np.ndarray) -> np.ndarray:
    return np.arange(len(values), dtype=np.float64).reshape(-1, 1)


def _tenths(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keys of ``f"{v:.1f}"``: the nearest tenth, except where ten times the value sits so
    close to a half that floating point could round it either way (there the value itself)."""
    with np.errstate(invalid="ignore", over="ignore"):
        t = v * 10.0
        half = np.abs(t - np.floor(t) - 0.5) < 1e-6
        unsure = half | ~(np.abs(v) < 1e11)
    return np.where(unsure, 1.0, 0.0), np.where(unsure, v, np.rint(t))


def _num_key(v: np.ndarray) -> np.ndarray:
    """Keys of :func:`_num` (count_text): whole numbers by value, others by their tenth."""
    missing = np.isnan(v)
    with np.errstate(invalid="ignore"):
        whole = v == np.round(v)
    unsure, tenth = _tenths(v)
    kind = np.where(missing, 0.0, np.where(whole, 1.0, 2.0 + unsure))
    return np.column_stack([kind, np.where(missing, 0.0, np.where(whole, v, tenth))])


def _rounded_key(v: np.ndarray) -> np.ndarray:
    """Keys of whole-day phrases (``round`` and ``:.0f``): missing, and the rounded value
    (its sign too: ``f"{-0.2:.0f}"`` is "-0")."""
    missing = np.isnan(v)
    return np.column_stack([missing, np.where(missing, 0.0, np.round(v))])


def _category_key(values: np.ndarray) -> np.ndarray:
    """Keys of category values shown as they are: one per distinct value (text), missing
    values together."""
    numbers = values.astype(np.float64, copy=False) if values.dtype.kind in "fiub" else None
    if numbers is not None:
        return np.column_stack([np.isnan(numbers), np.where(np.isnan(numbers), 0.0, numbers)])
    if infer_dtype(values, skipna=True) not in ("string", "empty"):
        return _each_row(values)  # 1 and 1.0 and True are equal, but read differently
    codes, _ = pd.factorize(pd.Series(values, dtype=object))
    return codes.astype(np.float64).reshape(-1, 1)


def _numeric_key(key: Callable[[np.ndarray], np.ndarray]) -> KeyOf:
    def of(values: np.ndarray, context: Mapping[str, np.ndarray]) -> np.ndarray:
        v = _numbers(values)
        return _each_row(values) if v is None else key(v)

    return of


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


def _counted(zero: str, one: str, many: str, missing: str | None = None) -> Phrase:
    """A count: ``many`` takes ``{n}``; every template may use the pattern's groups."""

    def render(value: object, groups: dict[str, str], row: Row) -> str:
        groups = _with_window(groups)
        if _missing(value):
            return (missing or zero).format(**groups)
        number = float(value)  # type: ignore[arg-type]
        template = zero if number == 0 else one if number == 1 else many
        return template.format(n=_num(number), **groups)

    return Phrase(render, _numeric_key(_num_key))


def _measured(template: str, missing: str, fmt: Callable[[float], str] = _num) -> Phrase:
    """A measurement: ``template`` takes ``{value}`` (formatted) and the pattern's groups."""

    def render(value: object, groups: dict[str, str], row: Row) -> str:
        groups = _with_window(groups)
        if _missing(value):
            return missing.format(**groups)
        return template.format(value=fmt(float(value)), **groups)  # type: ignore[arg-type]

    return Phrase(render, _numeric_key(_num_key if fmt is _num else _rounded_key))


def _text(template: str, missing: str) -> Phrase:
    """A category value, shown as it is."""

    def render(value: object, groups: dict[str, str], row: Row) -> str:
        return missing if _missing(value) else template.format(value=value, **groups)

    return Phrase(render, lambda values, context: _category_key(values))


def _trend_key(v: np.ndarray) -> np.ndarray:
    """Keys of :func:`_trend`: missing, up, down or steady, and the ratio's tenth."""
    with np.errstate(invalid="ignore"):
        kind = np.where(np.isnan(v), 0.0, np.where(v > 1.05, 1.0, np.where(v < 0.95, 2.0, 3.0)))
    unsure, tenth = _tenths(v)
    shown = (kind == 1.0) | (kind == 2.0)
    return np.column_stack([kind, np.where(shown, unsure, 0.0), np.where(shown, tenth, 0.0)])


def _trend(subject: str) -> Phrase:
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

    return Phrase(render, _numeric_key(_trend_key))


def _last_purchase_text(value: object, groups: dict[str, str], row: Row) -> str:
    if _missing(value):
        return "has never bought"
    text = f"no purchase for {_day_count(value)}"  # type: ignore[arg-type]
    gap = None if row is None else row.get("purchase_gap_mean_days")
    if not _missing(gap):
        text += f"; usually buys every {_days(gap)}"  # type: ignore[arg-type]
    return text


#: The row's usual purchase gap is part of the last-purchase phrase.
_GAP = "purchase_gap_mean_days"


def _last_purchase_key(values: np.ndarray, context: Mapping[str, np.ndarray]) -> np.ndarray:
    v = _numbers(values)
    gap = _numbers(context[_GAP]) if _GAP in context else np.full(len(values), np.nan)
    if v is None or gap is None:
        return _each_row(values)
    days = _rounded_key(v)
    # The gap only shows when there was a last purchase.
    return np.column_stack([days, np.where(days[:, :1] == 1, 0.0, _rounded_key(gap))])


_last_purchase = Phrase(_last_purchase_text, _last_purchase_key, (_GAP,))


def _overdue_text(value: object, groups: dict[str, str], row: Row) -> str:
    if _missing(value):
        return "no purchase rhythm yet"
    ratio = float(value)  # type: ignore[arg-type]
    if ratio > 1:
        return f"{ratio:.1f}× longer than usual since the last purchase"
    return "last purchase within the usual gap"


def _overdue_key(v: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        kind = np.where(np.isnan(v), 0.0, np.where(v > 1, 1.0, 2.0))
    unsure, tenth = _tenths(v)
    return np.column_stack([kind, np.where(kind == 1.0, unsure, 0.0), np.where(kind == 1.0, tenth, 0.0)])


_overdue = Phrase(_overdue_text, _numeric_key(_overdue_key))


def _yes_no(yes: str, no: str) -> Phrase:
    def render(value: object, groups: dict[str, str], row: Row) -> str:
        return yes if not _missing(value) and float(value) > 0 else no  # type: ignore[arg-type]

    def key(v: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return (v > 0).astype(np.float64).reshape(-1, 1)

    return Phrase(render, _numeric_key(key))


def _ordinal(names: tuple[str, ...], template: str, missing: str) -> Phrase:
    def render(value: object, groups: dict[str, str], row: Row) -> str:
        if _missing(value) or not 0 <= float(value) < len(names):  # type: ignore[arg-type]
            return missing
        return template.format(stage=names[int(float(value))])  # type: ignore[arg-type]

    def key(v: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            known = (v >= 0) & (v < len(names))
        return np.where(known, np.floor(np.where(known, v, 0.0)), -1.0).reshape(-1, 1)

    return Phrase(render, _numeric_key(key))


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


def _phrase_of(phrases: dict[str, str], missing: str, label: str) -> Phrase:
    """A category with a sentence per value (``label: value`` for a value it does not know)."""

    def render(value: object, groups: dict[str, str], row: Row) -> str:
        if _missing(value):
            return missing
        return phrases.get(str(value), f"{label}: {value}")

    return Phrase(render, lambda values, context: _category_key(values))


def _attribute_text(value: object, groups: dict[str, str], row: Row) -> str:
    label = groups["attribute"].replace("_", " ")
    if _missing(value):
        return f"{label}: unknown"
    shown = _num(value) if isinstance(value, numbers.Real) else str(value)  # type: ignore[arg-type]
    return f"{label}: {shown}"


def _attribute_key(values: np.ndarray, context: Mapping[str, np.ndarray]) -> np.ndarray:
    # Numbers read as counts (float columns), anything else as the text it is.
    return _num_key(values.astype(np.float64)) if values.dtype.kind in "fiub" else _category_key(values)


_attribute = Phrase(_attribute_text, _attribute_key)


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


def _per_type_text(value: object, groups: dict[str, str], row: Row) -> str:
    zero, one, many = TYPE_PHRASES[groups["type"]]
    return _counted(zero + _IN, one + _IN, many + _IN)(value, groups, row)


_per_type = Phrase(_per_type_text, _numeric_key(_num_key))


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


@lru_cache(maxsize=4096)
def describe_pattern(name: str) -> Entry | None:
    """The catalog entry that explains feature ``name`` (None if there is none; cached:
    batches ask for the same few columns again and again)."""
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


def _unknown_text(value: object, groups: dict[str, str], row: Row) -> str:
    return f"{groups['column'].replace('_', ' ')}: {value}"


#: How a column no entry knows is said (as :func:`describe_feature` says it).
_UNKNOWN = Phrase(_unknown_text, lambda values, context: _each_row(values))


def _distinct_rows(keys: np.ndarray) -> tuple[np.ndarray, int]:
    """A code per row of ``keys`` (rows, k), equal for rows with the same bytes (so -0.0 is
    not 0.0), and how many codes: hashed one column at a time."""
    bits = keys.view(np.int64)
    codes = np.zeros(len(keys), dtype=np.int64)
    count = 1
    for j in range(bits.shape[1]):
        column, uniques = pd.factorize(bits[:, j])
        codes, found = pd.factorize(codes * len(uniques) + column)
        count = len(found)
    return codes.astype(np.int64), count


def describe_many(name: str, values: np.ndarray, context: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
    """``describe_feature(name, value, row)`` for a whole column of values at once (an
    object array of phrases): one phrase rendered per distinct key (see the module doc).
    ``context`` holds the other columns of the same rows that the phrase reads."""
    said, codes = distinct_phrases(name, values, context)
    return said[codes]


def distinct_phrases(
    name: str, values: np.ndarray, context: Mapping[str, np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`describe_many` as the phrases rendered (an object array, one per distinct
    key) and, per value, which of them it reads (``said[codes]`` is describe_many's answer)."""
    context = context or {}
    entry = describe_pattern(name)
    if entry is None:
        phrase, groups = _UNKNOWN, {"column": name}
    else:
        match = entry.match(name)
        assert match is not None
        phrase, groups = entry.render, match.groupdict()
    if len(values) == 0:
        return np.empty(0, dtype=object), np.zeros(0, dtype=np.int64)
    keys = np.ascontiguousarray(phrase.key(values, context), dtype=np.float64)
    codes, count = _distinct_rows(keys)
    first = np.empty(count, dtype=np.int64)
    first[codes] = np.arange(len(codes))  # any row of a key stands for all of them
    said = np.empty(len(first), dtype=object)
    for u, i in enumerate(first.tolist()):
        row = {c: context[c][i] for c in phrase.context if c in context}
        said[u] = phrase(values[i], groups, row)
    return said, codes
