"""Life after the first order: repeat buying, engagement, service, and two ways to churn.

* Repeat buying is a Poisson process whose rate is gamma-distributed across customers
  (the BG/NBD picture), with a per-customer mean order value and favourite category.
* Indifference churn: activity (orders, visits, opens) fades over the months before the
  customer stops, with no trigger.
* Service churn: a complaint, ticket, failed payment or low NPS comes first; activity drops
  and the customer stops soon after. Service problems also happen to customers who stay.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from radar.demo import vocab
from radar.demo.deals import WON, Deals
from radar.demo.events import TYPE, Events, concat, make_events, pick, poisson_in_windows, type_mix
from radar.demo.people import People

NO_CHURN, INDIFFERENCE, SERVICE = 0, 1, 2
CHURN_KINDS: tuple[str, ...] = ("none", "indifference", "service")
TRIGGERS: tuple[str, ...] = ("complaint", "support ticket", "failed payment", "low NPS")
TRIGGER_SHARE = np.array([0.35, 0.2, 0.25, 0.2])
#: Mean days between orders for an average consumer / business.
MEAN_GAP_DAYS = (70.0, 55.0)
#: Gamma shape of buying rates across customers: lower means more unequal customers.
BUY_RATE_SHAPE = 1.5
#: Mean customer lifetime in days (consumer, business) before heterogeneity.
MEAN_LIFE_DAYS = (650.0, 1000.0)
ORDER_FAILED, ORDER_REFUNDED = 0.04, 0.025
RETRY_SHARE = 0.6
ENGAGEMENT_MIX = type_mix(
    {"web_visit": 0.38, "email_open": 0.25, "email_click": 0.1, "chat_message": 0.06,
     "cart_add": 0.1, "cart_abandon": 0.05, "whatsapp_message": 0.04, "call": 0.02}
)[None, :]
#: Interaction types that count as the customer's own engagement (they fade before churn).
ENGAGEMENT_TYPES = np.array([TYPE[k] for k in ("web_visit", "email_open", "email_click", "chat_message", "cart_add", "cart_abandon", "whatsapp_message")])


@dataclass
class Customers:
    person: np.ndarray  # customer index -> person, in order of conversion
    converted: np.ndarray
    buy_rate: np.ndarray  # orders per day
    order_value: np.ndarray
    favourite: np.ndarray  # category index
    order_channel: np.ndarray
    engagement_rate: np.ndarray  # engagement events per day
    satisfaction: np.ndarray
    churn_at: np.ndarray  # planned stop; churned in the world only if before the horizon
    churn_kind: np.ndarray
    fade_days: np.ndarray
    trigger_at: np.ndarray  # first service trigger (service churners), else NaN
    triggers: np.ndarray  # (n, 2) trigger kinds, -1 for none

    def __len__(self) -> int:
        return len(self.person)

    def activity(self, c: np.ndarray, t: np.ndarray) -> np.ndarray:
        """How active customer ``c`` still is at time ``t`` (1 = normal, 0 = gone)."""
        stop = self.churn_at[c]
        fade = np.clip((stop - t) / self.fade_days[c], 0.0, 1.0) ** 1.3
        level = np.where(self.churn_kind[c] == INDIFFERENCE, fade, 1.0)
        after_trigger = (self.churn_kind[c] == SERVICE) & (t >= self.trigger_at[c])
        level = np.where(after_trigger, 0.4, level)
        return np.where(t >= stop, 0.0, level)


@dataclass
class Orders:
    person: np.ndarray
    customer: np.ndarray
    t: np.ndarray
    amount: np.ndarray
    status: np.ndarray  # index into ORDER_STATUSES (paid, failed, refunded)
    category: np.ndarray
    product: np.ndarray
    channel: np.ndarray
    first: np.ndarray  # bool: the customer's first order

    def __len__(self) -> int:
        return len(self.person)


def sample_customers(rng: np.random.Generator, people: People, converted: np.ndarray) -> Customers:
    person = np.flatnonzero(~np.isnan(converted))
    person = person[np.argsort(converted[person], kind="stable")]
    m = len(person)
    b2b = people.b2b[person]
    mean_rate = 1.0 / np.where(b2b, MEAN_GAP_DAYS[1], MEAN_GAP_DAYS[0])
    buy_rate = rng.gamma(BUY_RATE_SHAPE, mean_rate / BUY_RATE_SHAPE)
    relative = buy_rate / mean_rate
    satisfaction = rng.standard_normal(m)
    life = np.where(b2b, MEAN_LIFE_DAYS[1], MEAN_LIFE_DAYS[0]) * relative**0.25 * np.exp(0.25 * satisfaction)
    start = converted[person]
    churn_at = start + 20.0 + rng.exponential(life)
    service = rng.random(m) < 1.0 / (1.0 + np.exp(1.2 + 0.7 * satisfaction))
    fade = rng.uniform(45.0, 180.0, m)
    lead = rng.uniform(3.0, 40.0, m)
    trigger_at = np.where(service, np.maximum(churn_at - lead, start + 0.5), np.nan)
    first = pick(rng, TRIGGER_SHARE[None, :], np.zeros(m, dtype=np.int64))
    second = np.where(rng.random(m) < 0.3, (first + rng.integers(1, 4, m)) % 4, -1)
    channel_share = np.vstack([vocab.ORDER_CHANNEL_SHARE_B2C, vocab.ORDER_CHANNEL_SHARE_B2B])
    return Customers(
        person=person,
        converted=start,
        buy_rate=buy_rate,
        order_value=np.where(b2b, 450.0, 65.0) * rng.lognormal(0.0, 0.6, m),
        favourite=pick(rng, vocab.CATEGORY_SHARE[None, :], np.zeros(m, dtype=np.int64)),
        order_channel=pick(rng, channel_share, b2b.astype(np.int64)),
        engagement_rate=0.05 * relative**0.5 * rng.lognormal(0.0, 0.5, m) * np.exp(0.2 * people.intent[person]),
        satisfaction=satisfaction,
        churn_at=churn_at,
        churn_kind=np.where(service, SERVICE, INDIFFERENCE),
        fade_days=fade,
        trigger_at=trigger_at,
        triggers=np.where(service[:, None], np.column_stack([first, second]), -1),
    )


def _order_rows(rng: np.random.Generator, cust: Customers, people: People, c: np.ndarray, t: np.ndarray) -> Orders:
    """Orders for customers ``c`` at times ``t``: category, product, channel and amount."""
    n = len(c)
    own = rng.random(n) < 0.6
    category = np.where(own, cust.favourite[c], pick(rng, vocab.CATEGORY_SHARE[None, :], np.zeros(n, dtype=np.int64)))
    tier = pick(rng, np.array([[0.5, 0.3, 0.2]]), np.zeros(n, dtype=np.int64))
    price = vocab.CATEGORY_PRICE / (vocab.CATEGORY_PRICE * vocab.CATEGORY_SHARE).sum()
    amount = cust.order_value[c] * price[category] * np.array([0.7, 1.0, 1.6])[tier] * rng.lognormal(0.0, 0.3, n)
    b2b = people.b2b[cust.person[c]].astype(np.int64)
    channel_share = np.vstack([vocab.ORDER_CHANNEL_SHARE_B2C, vocab.ORDER_CHANNEL_SHARE_B2B])
    channel = np.where(rng.random(n) < 0.75, cust.order_channel[c], pick(rng, channel_share, b2b))
    u = rng.random(n)
    status = np.where(u < ORDER_FAILED, 1, np.where(u < ORDER_FAILED + ORDER_REFUNDED, 2, 0))
    return Orders(
        person=cust.person[c],
        customer=c,
        t=t,
        amount=np.round(amount, 2),
        status=status,
        category=category,
        product=category * vocab.PRODUCTS_PER_CATEGORY + tier,
        channel=channel,
        first=np.zeros(n, dtype=bool),
    )


def _concat_orders(parts: list[Orders]) -> Orders:
    return Orders(*(np.concatenate([getattr(p, f) for p in parts]) for f in Orders.__dataclass_fields__))


def sample_orders(rng: np.random.Generator, cust: Customers, people: People, deals: Deals, horizon: float) -> Orders:
    m = len(cust)
    idx = np.arange(m)
    first = _order_rows(rng, cust, people, idx, cust.converted)
    first.status[:] = 0
    first.first[:] = True
    # A business's first order is the invoice of the deal it won.
    won = deals.outcome == WON
    deal_amount = np.full(people.n, np.nan)
    deal_amount[deals.person[won]] = deals.amount[won]
    first.amount = np.where(np.isnan(deal_amount[cust.person]), first.amount, deal_amount[cust.person])

    stop = np.minimum(cust.churn_at, horizon)
    c, t = poisson_in_windows(rng, idx, cust.converted, stop, cust.buy_rate)
    keep = rng.random(len(c)) < cust.activity(c, t)
    repeat = _order_rows(rng, cust, people, c[keep], t[keep])

    # Failed payments: most are retried and paid a little later.
    failed = np.flatnonzero(repeat.status == 1)
    retried = failed[rng.random(len(failed)) < RETRY_SHARE]
    retry = _order_rows(rng, cust, people, repeat.customer[retried], repeat.t[retried] + rng.uniform(0.02, 3.0, len(retried)))
    retry.status[:] = 0
    retry.amount = repeat.amount[retried]
    retry.category, retry.product = repeat.category[retried], repeat.product[retried]

    # Service churners whose trigger is a failed payment: the payment fails and is not retried.
    parts = [first, repeat, retry]
    for slot in (0, 1):
        hit = np.flatnonzero(cust.triggers[:, slot] == TRIGGERS.index("failed payment"))
        when = _trigger_time(cust, hit, slot)
        bad = _order_rows(rng, cust, people, hit, when)
        bad.status[:] = 1
        parts.append(bad)
    out = _concat_orders(parts)
    keep = out.t < horizon
    return Orders(*(getattr(out, f)[keep] for f in Orders.__dataclass_fields__))


def _trigger_time(cust: Customers, c: np.ndarray, slot: int) -> np.ndarray:
    """First trigger at trigger_at; a second one halfway between it and the stop."""
    t0 = cust.trigger_at[c]
    return t0 if slot == 0 else t0 + 0.5 * (cust.churn_at[c] - t0)


def customer_events(rng: np.random.Generator, cust: Customers, people: People, horizon: float) -> Events:
    """Engagement that fades with activity, service contacts, and the churn triggers."""
    m = len(cust)
    idx = np.arange(m)
    stop = np.minimum(cust.churn_at, horizon)
    c, t = poisson_in_windows(rng, idx, cust.converted, stop, cust.engagement_rate)
    keep = rng.random(len(c)) < cust.activity(c, t)
    c, t = c[keep], t[keep]
    engagement = make_events(cust.person[c], t, pick(rng, ENGAGEMENT_MIX, np.zeros(len(c), dtype=np.int64)))

    parts = [engagement]
    s = cust.satisfaction
    for kind, per_year in (("support_ticket", 0.35 * np.exp(-0.4 * s)), ("complaint", 0.06 * np.exp(-0.6 * s)), ("nps", np.full(m, 0.8))):
        c, t = poisson_in_windows(rng, idx, cust.converted, stop, per_year / 365.0)
        value = None
        if kind == "nps":
            value = np.clip(np.round(7.2 + 1.5 * s[c] + rng.normal(0.0, 1.5, len(c))), 0, 10)
        parts.append(make_events(cust.person[c], t, TYPE[kind], value=value))

    for slot in (0, 1):
        for k, kind in ((0, "complaint"), (1, "support_ticket"), (3, "nps")):
            hit = np.flatnonzero(cust.triggers[:, slot] == k)
            value = rng.integers(0, 5, len(hit)).astype(float) if kind == "nps" else None
            parts.append(make_events(cust.person[hit], _trigger_time(cust, hit, slot), TYPE[kind], value=value))
    out = concat(parts)
    return out.subset(out.t < horizon)


def thin_after_conversion(rng: np.random.Generator, events: Events, cust: Customers, people_n: int) -> Events:
    """Drop a customer's own engagement (e.g. opening nurture e-mails) as their activity fades."""
    cust_of = np.full(people_n, -1, dtype=np.int64)
    cust_of[cust.person] = np.arange(len(cust))
    c = cust_of[events.person]
    is_customer = c >= 0
    cc = np.maximum(c, 0)
    later = is_customer & (events.t >= np.where(is_customer, cust.converted[cc], np.inf))
    own = np.isin(events.kind, ENGAGEMENT_TYPES)
    level = np.where(later & own, cust.activity(cc, events.t), 1.0)
    return events.subset(rng.random(len(events)) < level)
