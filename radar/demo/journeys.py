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


def journey_windows(rng: np.random.Generator, people: People, converted: np.ndarray) -> np.ndarray:
    """When each person's journey ends: at conversion, or after a short look around."""
    look_around = 1.0 + rng.exponential(30.0, people.n)
    return np.where(np.isnan(converted), people.created + look_around, converted)


def lead_journeys(rng: np.random.Generator, people: People, converted: np.ndarray, horizon: float) -> Events:
    """Creation event, journey touchpoints and nurture for every person (before the horizon)."""
    n = people.n
    first_type = np.array([TYPE[_FIRST_TYPE[c.name]] for c in vocab.CHANNELS])[people.source]
    # Every acquisition channel is also an interaction channel of the same name.
    first_channel = np.array([EVENT_CHANNELS.index(c.name) for c in vocab.CHANNELS])
    creation = make_events(np.arange(n), people.created, first_type, channel=first_channel[people.source])

    end = journey_windows(rng, people, converted)
    # Intent shows as how often someone comes back, from the first week on.
    rate = JOURNEY_RATE * np.exp(1.0 * people.intent + rng.normal(0.0, 0.4, n))
    who, t = poisson_in_windows(rng, np.arange(n), people.created, end, rate)
    # Converters go all the way to a decision; others stop somewhere along the way.
    depth = np.where(np.isnan(converted), rng.uniform(0.25, 1.0, n), 1.0)
    u = (t - people.created[who]) / (end - people.created)[who] * depth[who]
    stage = np.searchsorted(STAGE_BOUNDS, u)
    kind = pick(rng, _stage_mixes(), stage + 4 * people.b2b[who])
    journey = make_events(who, t, kind)

    nurture = nurture_events(rng, people, first_channel)
    out = concat([creation, journey, nurture])
    return out.subset(out.t < horizon)


def nurture_events(rng: np.random.Generator, people: People, source_channel: np.ndarray) -> Events:
    """Campaign touches until the person unsubscribes; engaged people open and click them."""
    n = people.n
    stop = people.created + rng.exponential(NURTURE_MEAN_DAYS, n)
    who, t = poisson_in_windows(rng, np.arange(n), people.created, stop, np.full(n, NURTURE_RATE))
    paid_reach = np.isin(people.source[who], [vocab.CHANNEL_NAMES.index(c) for c in ("paid_search", "social_ads")])
    channel = np.where(paid_reach, source_channel[people.source[who]], EVENT_CHANNELS.index("email"))
    touches = make_events(who, t, TYPE["campaign_touch"], channel=channel)

    p_open = 1.0 / (1.0 + np.exp(-(-0.8 + 0.6 * people.intent[who])))
    opened = rng.random(len(who)) < p_open
    open_t = t[opened] + rng.exponential(0.4, opened.sum())
    opens = make_events(who[opened], open_t, TYPE["email_open"])
    clicked = rng.random(len(open_t)) < 0.22
    clicks = make_events(who[opened][clicked], open_t[clicked] + rng.exponential(0.01, clicked.sum()), TYPE["email_click"])
    return concat([touches, opens, clicks])
