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
#: How closely a deal keeps to STAGE_AT (Dirichlet concentration; lower = more irregular).
STAGE_PACE_CONCENTRATION = 6.0
#: Meetings + calls per day for an average buyer while the deal is open.
CONTACT_RATE = 0.07
#: Share of businesses that never buy but still get as far as a deal (then lose it).
LOSING_DEAL_SHARE = 0.6
#: Contact intensity of a deal that will be won, from its start (floor) to its close (top).
RAMP_FLOOR, RAMP_TOP = 0.4, 2.2
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
    planned: np.ndarray  # when the deal closes (or would, past the horizon)
    will_win: np.ndarray  # bool: the deal ends won (or would, past the horizon)

    def __len__(self) -> int:
        return len(self.person)


def sample_deals(rng: np.random.Generator, people: People, horizon: float) -> tuple[Deals, Events, np.ndarray]:
    """Deals, their stage and contact events, and each person's deal-driven conversion time."""
    n = people.n
    has_deal = people.b2b & (people.will_convert | (rng.random(n) < LOSING_DEAL_SHARE))
    who = np.flatnonzero(has_deal)
    m = len(who)
    # A late buyer's deal opens when they come back, months after the lead.
    first_look = 1.0 + rng.exponential(12.0, m)
    comeback = people.comeback[who] + rng.exponential(4.0, m)
    # Half the businesses that come back without buying open a deal then (and lose it).
    browsing = ~people.will_convert[who] & ~np.isnan(people.comeback[who]) & (rng.random(m) < 0.5)
    created = people.created[who] + np.where(people.late[who] | browsing, comeback, first_look)
    size = people.company_size[who]
    rate = CONTACT_RATE * np.exp(0.4 * people.intent[who] + rng.normal(0.0, 0.5, m))
    amount = np.round(vocab.COMPANY_SIZE_DEAL_VALUE[size] * rng.lognormal(0.0, 0.9, m), -1)
    duration = (
        vocab.COMPANY_SIZE_CLOSE_DAYS[size]
        * (amount / vocab.COMPANY_SIZE_DEAL_VALUE[size]) ** 0.3
        * (rate / CONTACT_RATE) ** -0.6
        * vocab.JOB_TITLE_CLOSE_SPEED[people.job_title[who]]
        * vocab.INDUSTRY_CLOSE_SPEED[people.industry[who]]
        * rng.lognormal(0.0, 0.4, m)
    )
    won = people.will_convert[who]
    # Lost deals die somewhere along the way, after reaching 1-4 stages.
    reached = np.where(won, len(DEAL_STAGES), rng.integers(1, len(DEAL_STAGES) + 1, m))
    duration = np.where(won, duration, duration * rng.uniform(0.3, 1.2, m))
    lost_at = np.arange(len(DEAL_STAGES))[None, :] / reached[:, None]
    # Each deal moves at its own pace: stage entry times are jittered around STAGE_AT, so
    # the stage history hints at, but does not give away, the remaining time.
    share = np.diff(np.append(STAGE_AT, 1.0))  # time in each stage, as a share of the deal
    gaps = rng.gamma(STAGE_PACE_CONCENTRATION * share, 1.0, (m, len(DEAL_STAGES)))
    own_pace = np.cumsum(gaps, axis=1) / gaps.sum(axis=1, keepdims=True)
    own_pace = np.column_stack([np.zeros(m), own_pace[:, :-1]])
    frac = np.where(won[:, None], own_pace, lost_at)
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
        planned=close[keep],
        will_win=won[keep],
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
    parts = [stages]
    for kind, share in (("meeting", 0.45), ("call", 0.55)):
        d, t = poisson_in_windows(rng, idx, deals.created, stop, share * RAMP_TOP * deals.contact_rate)
        keep = rng.random(len(d)) < _ramp(deals, d, t) / RAMP_TOP
        parts.append(make_events(deals.person[d[keep]], t[keep], TYPE[kind]))
    return concat(parts)


def _ramp(deals: Deals, d: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Contact intensity over a deal's life: it builds up towards a win (negotiation
    meetings) and dies away before a loss; about 1 on average either way."""
    frac = np.clip((t - deals.created[d]) / np.maximum(deals.planned[d] - deals.created[d], 1.0), 0.0, 1.0)
    won = deals.will_win[d]
    return np.where(won, RAMP_FLOOR + (RAMP_TOP - RAMP_FLOOR) * frac**2, 1.6 * (1.0 - frac) + 0.1)
