"""Life after the first order: repeat buying, engagement, service, and two ways to churn.

* Repeat buying is a Poisson process whose rate is gamma-distributed across customers
  (the BG/NBD picture), with a per-customer mean order value and favourite category. On
  top of it, each customer's appetite drifts from one two-month block to the next (a
  "mood" that engagement reveals only partly), many customers go dormant for months and
  come back (their visits return a few weeks before their orders do), and a share buy
  once and drift away.
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
#: Share of customers (consumer, business) who buy once and then drift away within months.
ONE_OFF_SHARE = (0.45, 0.25)
#: Mood: a customer's buying rate is multiplied by a lognormal factor per block of days,
#: correlated from one block to the next; engagement follows it with this elasticity.
MOOD_BLOCK_DAYS, MOOD_SD, MOOD_RHO, MOOD_ENGAGEMENT = 60.0, 0.6, 0.4, 0.7
#: Share of customers with dormant spells, spells per such customer (at most), spell
#: length (lognormal median, log-sd), and how much activity is left while dormant.
DORMANT_SHARE, DORMANT_SPELLS = 0.65, 2
DORMANT_MEDIAN_DAYS, DORMANT_SD = 130.0, 0.5
DORMANT_ORDER_LEVEL, DORMANT_ENGAGEMENT_LEVEL = 0.02, 0.05
#: Engagement wakes up this many days (uniform) before orders do at the end of a spell.
WAKE_DAYS = (0.0, 7.0)
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
    one_off: np.ndarray  # bool: buys once and drifts away
    mood: np.ndarray  # (n, blocks) buying-rate factor per MOOD_BLOCK_DAYS since conversion
    dormant_from: np.ndarray  # (n, DORMANT_SPELLS) spell starts, NaN for none
    dormant_to: np.ndarray  # (n, DORMANT_SPELLS) spell ends (orders resume)
    wake: np.ndarray  # (n, DORMANT_SPELLS) when engagement resumes, before dormant_to

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

    def mood_at(self, c: np.ndarray, t: np.ndarray) -> np.ndarray:
        block = np.clip(((t - self.converted[c]) // MOOD_BLOCK_DAYS).astype(np.int64), 0, self.mood.shape[1] - 1)
        return self.mood[c, block]

    def dormancy(self, c: np.ndarray, t: np.ndarray, orders: bool) -> np.ndarray:
        """Activity left while dormant (1 outside spells); engagement wakes before orders."""
        end = self.dormant_to[c] if orders else self.wake[c]
        inside = ((t[:, None] >= self.dormant_from[c]) & (t[:, None] < end)).any(axis=1)
        return np.where(inside, DORMANT_ORDER_LEVEL if orders else DORMANT_ENGAGEMENT_LEVEL, 1.0)

    def engagement_level(self, c: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Share of engagement at ``t`` relative to the customer's top mood (at most 1)."""
        top = self.mood.max(axis=1)[c]
        mood = (self.mood_at(c, t) / top) ** MOOD_ENGAGEMENT
        return self.activity(c, t) * mood * self.dormancy(c, t, orders=False)


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


def sample_customers(rng: np.random.Generator, people: People, converted: np.ndarray, horizon: float) -> Customers:
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
    one_off = rng.random(m) < np.where(b2b, ONE_OFF_SHARE[1], ONE_OFF_SHARE[0])
    # One-off buyers drift away from their first order on, over a few months.
    churn_at = np.where(one_off, start + 15.0 + rng.exponential(60.0, m), start + 20.0 + rng.exponential(life))
    service = ~one_off & (rng.random(m) < 1.0 / (1.0 + np.exp(1.2 + 0.7 * satisfaction)))
    fade = np.where(one_off, churn_at - start, rng.uniform(45.0, 180.0, m))
    n_blocks = int(np.ceil(horizon / MOOD_BLOCK_DAYS)) + 1
    z = rng.standard_normal((m, n_blocks))
    for b in range(1, n_blocks):
        z[:, b] = MOOD_RHO * z[:, b - 1] + np.sqrt(1.0 - MOOD_RHO**2) * z[:, b]
    mood = np.exp(MOOD_SD * z - 0.5 * MOOD_SD**2)
    spells = (rng.random((m, DORMANT_SPELLS)) < DORMANT_SHARE) & (rng.random((m, DORMANT_SPELLS)) < np.array([1.0, 0.7]))
    spells[:, 1] &= spells[:, 0]
    d_from = start[:, None] + rng.uniform(30.0, 900.0, (m, DORMANT_SPELLS))
    d_to = d_from + rng.lognormal(np.log(DORMANT_MEDIAN_DAYS), DORMANT_SD, (m, DORMANT_SPELLS))
    wake = np.maximum(d_to - rng.uniform(*WAKE_DAYS, (m, DORMANT_SPELLS)), d_from)
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
        engagement_rate=0.05 * relative**0.5 * rng.lognormal(0.0, 0.5, m) * np.exp(0.2 * people.intent[person])
        * np.where(one_off, 0.6, 1.0),
        satisfaction=satisfaction,
        churn_at=churn_at,
        churn_kind=np.where(service, SERVICE, INDIFFERENCE),
        fade_days=fade,
        trigger_at=trigger_at,
        triggers=np.where(service[:, None], np.column_stack([first, second]), -1),
        one_off=one_off,
        mood=mood,
        dormant_from=np.where(spells, d_from, np.nan),
        dormant_to=np.where(spells, d_to, np.nan),
        wake=np.where(spells, wake, np.nan),
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
    top = cust.mood.max(axis=1)
    c, t = poisson_in_windows(rng, idx, cust.converted, stop, cust.buy_rate * top)
    level = cust.activity(c, t) * cust.mood_at(c, t) / top[c] * cust.dormancy(c, t, orders=True)
    keep = rng.random(len(c)) < level
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
    top = cust.mood.max(axis=1) ** MOOD_ENGAGEMENT
    c, t = poisson_in_windows(rng, idx, cust.converted, stop, cust.engagement_rate * top)
    keep = rng.random(len(c)) < cust.engagement_level(c, t)
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
    level = np.where(later & own, cust.activity(cc, events.t) * cust.dormancy(cc, events.t, orders=False), 1.0)
    return events.subset(rng.random(len(events)) < level)
