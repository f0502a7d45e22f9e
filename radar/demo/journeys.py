"""Lead journeys: need -> search -> evaluation -> decision, and the marketing that nurtures them.

Intent shows in behaviour: people with more intent have more touchpoints and go deeper into
the journey, which is the (noisy) signal a lead-quality model can learn from.
"""

from __future__ import annotations

import numpy as np

from radar.demo import vocab
from radar.demo.events import EVENT_CHANNELS, TYPE, Events, concat, make_events, pick, poisson_in_windows, type_mix
from radar.demo.people import People

#: Journey touchpoints per day for an average-intent person.
JOURNEY_RATE = 0.12
#: How strongly intent shows in the touchpoint rate, and the person-to-person noise on it.
RATE_INTENT, RATE_NOISE_SD = 1.0, 0.5
#: Mean days a non-buyer keeps looking around after the lead.
LOOK_AROUND_DAYS = 40.0
#: A comeback (late buyer or returning browser) shows as a burst of touchpoints over the
#: days before it, at this multiple of the person's journey rate.
COMEBACK_DAYS = (1.0, 14.0)
COMEBACK_RATE = 0.7
#: Where each stage ends, as a fraction of the journey (need, search, evaluation, decision).
STAGE_BOUNDS = np.array([0.15, 0.40, 0.75])
#: Marketing e-mails/ads reach a lead about every five weeks until they unsubscribe.
NURTURE_RATE = 1.0 / 35.0
NURTURE_MEAN_DAYS = 240.0

_STAGE_MIX = [
    {"web_visit": 0.55, "campaign_touch": 0.25, "email_open": 0.2},
    {"web_visit": 0.45, "email_open": 0.2, "email_click": 0.15, "chat_message": 0.1, "form_submit": 0.1},
    {"web_visit": 0.3, "email_click": 0.15, "call": 0.15, "whatsapp_message": 0.15,
     "chat_message": 0.1, "form_submit": 0.05, "meeting": 0.1},
    {"cart_add": 0.3, "cart_abandon": 0.15, "meeting": 0.15, "call": 0.15, "web_visit": 0.15,
     "whatsapp_message": 0.1},
]


def _stage_mixes() -> np.ndarray:
    """Rows 0-3: consumers by stage (no sales meetings); rows 4-7: businesses by stage."""
    consumer = [type_mix({**m, "meeting": 0.0}) if "meeting" in m else type_mix(m) for m in _STAGE_MIX]
    business = [type_mix(m) for m in _STAGE_MIX]
    return np.vstack(consumer + business)


#: How a lead first shows up, by source channel.
_FIRST_TYPE = {
    "organic_search": "form_submit", "paid_search": "form_submit", "social_ads": "form_submit",
    "email": "email_click", "referral": "form_submit", "whatsapp": "whatsapp_message",
    "events": "meeting",
}


def journey_windows(rng: np.random.Generator, people: People, converted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """When each person's first journey ends (at conversion, or after a look around, and
    before any comeback), and whether it ends in a purchase."""
    look_around = people.created + 1.0 + rng.exponential(LOOK_AROUND_DAYS, people.n)
    buys_now = ~np.isnan(converted) & ~people.late
    back = people.created + np.nan_to_num(people.comeback, nan=np.inf)
    end = np.where(buys_now, converted, np.minimum(look_around, back - COMEBACK_DAYS[1]))
    return np.maximum(end, people.created), buys_now


def lead_journeys(rng: np.random.Generator, people: People, converted: np.ndarray, horizon: float) -> Events:
    """Creation event, journey touchpoints and nurture for every person (before the horizon)."""
    n = people.n
    first_type = np.array([TYPE[_FIRST_TYPE[c.name]] for c in vocab.CHANNELS])[people.source]
    # Every acquisition channel is also an interaction channel of the same name.
    first_channel = np.array([EVENT_CHANNELS.index(c.name) for c in vocab.CHANNELS])
    creation = make_events(np.arange(n), people.created, first_type, channel=first_channel[people.source])

    end, buys_now = journey_windows(rng, people, converted)
    # Intent shows as how often someone comes back, from the first week on (noisily).
    rate = JOURNEY_RATE * np.exp(RATE_INTENT * people.intent + rng.normal(0.0, RATE_NOISE_SD, n))
    who, t = poisson_in_windows(rng, np.arange(n), people.created, end, rate)
    # Buyers go all the way to a decision; others stop somewhere along the way.
    depth = np.where(buys_now, 1.0, rng.uniform(0.25, 1.0, n))
    u = (t - people.created[who]) / np.maximum(end - people.created, 1e-9)[who] * depth[who]
    journey = make_events(who, t, _stage_kind(rng, people, who, u))

    # Comebacks: months later, a burst of evaluation and decision touchpoints. Late buyers
    # then buy (or their deal opens); returning browsers leave again partway.
    back = np.flatnonzero(~np.isnan(people.comeback))
    at = people.created[back] + people.comeback[back]
    span = rng.uniform(*COMEBACK_DAYS, len(back))
    b_who, b_t = poisson_in_windows(rng, back, at - span, at, COMEBACK_RATE * rate[back])
    depth_back = np.where(people.will_convert, 1.0, rng.uniform(0.3, 1.0, n))
    span_of = np.ones(n)
    span_of[back] = span
    progress = 1.0 - ((people.created + people.comeback)[b_who] - b_t) / span_of[b_who]
    u_back = 0.4 + 0.6 * progress * depth_back[b_who]
    comeback = make_events(b_who, b_t, _stage_kind(rng, people, b_who, u_back))

    nurture = nurture_events(rng, people, first_channel)
    out = concat([creation, journey, comeback, nurture])
    return out.subset(out.t < horizon)


def _stage_kind(rng: np.random.Generator, people: People, who: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Touchpoint type for journey progress ``u`` in [0, 1]: early browsing to late decision."""
    stage = np.searchsorted(STAGE_BOUNDS, u)
    return pick(rng, _stage_mixes(), stage + 4 * people.b2b[who])


def nurture_events(rng: np.random.Generator, people: People, source_channel: np.ndarray) -> Events:
    """Campaign touches until the person unsubscribes; engaged people open and click them."""
    n = people.n
    stop = people.created + rng.exponential(NURTURE_MEAN_DAYS, n)
    who, t = poisson_in_windows(rng, np.arange(n), people.created, stop, np.full(n, NURTURE_RATE))
    paid_reach = np.isin(people.source[who], [vocab.CHANNEL_NAMES.index(c) for c in ("paid_search", "social_ads")])
    channel = np.where(paid_reach, source_channel[people.source[who]], EVENT_CHANNELS.index("email"))
    touches = make_events(who, t, TYPE["campaign_touch"], channel=channel)

    p_open = 1.0 / (1.0 + np.exp(-(-0.8 + 0.5 * people.intent[who])))
    opened = rng.random(len(who)) < p_open
    open_t = t[opened] + rng.exponential(0.4, opened.sum())
    opens = make_events(who[opened], open_t, TYPE["email_open"])
    clicked = rng.random(len(open_t)) < 0.22
    clicks = make_events(who[opened][clicked], open_t[clicked] + rng.exponential(0.01, clicked.sum()), TYPE["email_click"])
    return concat([touches, opens, clicks])
