"""Sales deals for businesses: stage history, time to close, won / lost / still open.

Time to close grows with company size and deal amount and shrinks with how often the
buyer meets and talks to sales: the meeting rate is visible in the interactions, so a
time-to-close model has something real to learn from.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.contract import DEAL_OUTCOMES, DEAL_STAGES
from radar.demo import vocab
from radar.demo.events import TYPE, Events, concat, make_events, poisson_in_windows
from radar.demo.people import People

#: When a won deal enters each stage, as a fraction of its time to close.
STAGE_AT = np.array([0.0, 0.2, 0.45, 0.7])
#: Meetings + calls per day for an average buyer while the deal is open.
CONTACT_RATE = 0.07
#: Share of businesses that never buy but still get as far as a deal (then lose it).
LOSING_DEAL_SHARE = 0.3
OPEN, WON, LOST = (DEAL_OUTCOMES.index(o) for o in ("open", "won", "lost"))


@dataclass
class Deals:
    person: np.ndarray
    created: np.ndarray
    closed: np.ndarray  # NaN while open at the horizon
    outcome: np.ndarray  # index into DEAL_OUTCOMES
    stage: np.ndarray  # latest stage entered before the horizon
    amount: np.ndarray
    owner: np.ndarray
    contact_rate: np.ndarray
    size: np.ndarray  # company size index, for truth

    def __len__(self) -> int:
        return len(self.person)


def sample_deals(rng: np.random.Generator, people: People, horizon: float) -> tuple[Deals, Events, np.ndarray]:
    """Deals, their stage and contact events, and each person's deal-driven conversion time."""
    n = people.n
    has_deal = people.b2b & (people.will_convert | (rng.random(n) < LOSING_DEAL_SHARE))
    who = np.flatnonzero(has_deal)
    m = len(who)
    created = people.created[who] + 1.0 + rng.exponential(12.0, m)
    size = people.company_size[who]
    rate = CONTACT_RATE * np.exp(0.4 * people.intent[who] + rng.normal(0.0, 0.5, m))
    amount = np.round(vocab.COMPANY_SIZE_DEAL_VALUE[size] * rng.lognormal(0.0, 0.5, m), -1)
    duration = (
        vocab.COMPANY_SIZE_CLOSE_DAYS[size]
        * (amount / vocab.COMPANY_SIZE_DEAL_VALUE[size]) ** 0.3
        * (rate / CONTACT_RATE) ** -0.6
        * rng.lognormal(0.0, 0.4, m)
    )
    won = people.will_convert[who]
    # Lost deals die somewhere along the way, after reaching 1-4 stages.
    reached = np.where(won, len(DEAL_STAGES), rng.integers(1, len(DEAL_STAGES) + 1, m))
    duration = np.where(won, duration, duration * rng.uniform(0.3, 1.2, m))
    lost_at = np.arange(len(DEAL_STAGES))[None, :] / reached[:, None]
    frac = np.where(won[:, None], STAGE_AT[None, :], lost_at)
    entered = np.where(np.arange(len(DEAL_STAGES))[None, :] < reached[:, None], created[:, None] + frac * duration[:, None], np.nan)
    close = created + duration

    exists = created < horizon
    is_open = close >= horizon
    outcome = np.where(is_open, OPEN, np.where(won, WON, LOST))
    seen = entered < horizon  # NaN compares False
    stage = seen.sum(axis=1) - 1

    converted = np.full(n, np.nan)
    first_order = close + rng.uniform(0.05, 5.0, m)
    buys = won & (first_order < horizon)
    converted[who[buys]] = first_order[buys]

    order = np.argsort(created[exists], kind="stable")
    keep = np.flatnonzero(exists)[order]
    deals = Deals(
        person=who[keep],
        created=created[keep],
        closed=np.where(is_open, np.nan, close)[keep],
        outcome=outcome[keep],
        stage=stage[keep],
        amount=amount[keep],
        owner=rng.integers(0, len(vocab.DEAL_OWNERS), m)[keep],
        contact_rate=rate[keep],
        size=size[keep],
    )
    events = deal_events(rng, deals, entered[keep], horizon)
    return deals, events, converted


def deal_events(rng: np.random.Generator, deals: Deals, entered: np.ndarray, horizon: float) -> Events:
    """deal_stage events each time a deal enters a stage, plus meetings and calls while open."""
    d_idx, s_idx = np.nonzero(entered < horizon)
    stages = make_events(
        deals.person[d_idx], entered[d_idx, s_idx], TYPE["deal_stage"], deal=d_idx, stage=s_idx
    )
    stop = np.minimum(np.where(np.isnan(deals.closed), horizon, deals.closed), horizon)
    idx = np.arange(len(deals))
    m_deal, m_t = poisson_in_windows(rng, idx, deals.created, stop, 0.45 * deals.contact_rate)
    c_deal, c_t = poisson_in_windows(rng, idx, deals.created, stop, 0.55 * deals.contact_rate)
    meetings = make_events(deals.person[m_deal], m_t, TYPE["meeting"])
    calls = make_events(deals.person[c_deal], c_t, TYPE["call"])
    return concat([stages, meetings, calls])
