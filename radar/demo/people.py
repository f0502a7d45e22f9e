"""Who the people are: acquisition channel, creation time, attributes and latent intent."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from radar.demo import vocab
from radar.demo.clock import Clock, business_hours

NONE = -1

#: Baseline conversion logit, chosen so that about one lead in five buys within the world.
BASE_LOGIT = -1.9
#: How strongly the engagement latent (which shows in behaviour) drives conversion.
INTENT_WEIGHT = 1.0
#: Unobservable luck (budget, timing, a competitor's offer): what no feature can see.
LUCK_SD = 1.3
#: Share of eventual buyers who do not buy on their first visit but come back months later.
LATE_BUYER_SHARE = 0.3
#: Logit of a later need among people who do not buy on their lead (about 20 %).
LATER_NEED_LOGIT = -1.0
#: Share of non-buyers who come back months later, look around again and still do not buy.
RETURNING_BROWSER_SHARE = 0.25
#: Days from the lead to the comeback: at least COMEBACK_MIN_DAYS, then exponential (a
#: need that can arise any time, so a lead's age says little about when it comes back).
COMEBACK_MIN_DAYS, COMEBACK_MEAN_DAYS = 30.0, 400.0


@dataclass
class People:
    """One entry per person; index ``i`` is the person, in order of lead creation."""

    created: np.ndarray  # float days since world start
    source: np.ndarray  # index into vocab.CHANNELS
    campaign: np.ndarray  # index into vocab.CAMPAIGNS
    country: np.ndarray  # index into vocab.COUNTRIES
    b2b: np.ndarray  # bool
    industry: np.ndarray  # index or NONE
    company_size: np.ndarray  # index or NONE
    job_title: np.ndarray  # index or NONE
    #: Standard-normal intent: drives both conversion and how much the person engages.
    intent: np.ndarray
    #: Conversion logit: channel + attributes + intent + luck (set by score_people).
    logit: np.ndarray = field(default_factory=lambda: np.empty(0))
    #: Parts of the logit, kept for truth/drivers.csv.
    channel_effect: np.ndarray = field(default_factory=lambda: np.empty(0))
    attribute_effect: np.ndarray = field(default_factory=lambda: np.empty(0))
    #: Whether the person would ever buy (if the world ran long enough).
    will_convert: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=bool))
    #: Days from the lead to a later comeback (late buyers and returning browsers), else NaN.
    comeback: np.ndarray = field(default_factory=lambda: np.empty(0))

    @property
    def late(self) -> np.ndarray:
        """Buyers who only buy when they come back, months after the lead."""
        return self.will_convert & ~np.isnan(self.comeback)

    @property
    def n(self) -> int:
        return len(self.created)


def daily_channel_intensity(clock: Clock, seed_rng: np.random.Generator) -> np.ndarray:
    """Expected share of leads per (channel, day): growth, weekly and yearly rhythm, flights.

    Rows sum to each channel's share of all leads, so the matrix sums to one.
    """
    days = np.arange(clock.n_days)
    growth = np.exp(np.log(2.2) * days / clock.n_days)  # last year ~2x the first
    weekly = np.array([1.0, 1.05, 1.05, 1.0, 0.9, 0.55, 0.45])[clock.day_of_week()]
    yearly = 1.0 + 0.15 * np.sin(2 * np.pi * (clock.day_of_year() - 30) / 365.0)
    base = growth * weekly * yearly
    n_ch = len(vocab.CHANNELS)
    # Each channel runs its own campaign flights: a slow wave with its own period and phase.
    period = seed_rng.uniform(60.0, 240.0, n_ch)[:, None]
    phase = seed_rng.uniform(0.0, 2 * np.pi, n_ch)[:, None]
    flights = 1.0 + 0.35 * np.sin(2 * np.pi * days[None, :] / period + phase)
    shares = np.array([c.share for c in vocab.CHANNELS])[:, None]
    intensity = base[None, :] * flights
    return shares * intensity / intensity.sum(axis=1, keepdims=True)


def sample_people(rng: np.random.Generator, n: int, clock: Clock, intensity: np.ndarray) -> People:
    """Draw ``n`` people, sorted by lead creation time."""
    shares = intensity.sum(axis=1)
    per_channel = rng.multinomial(n, shares / shares.sum())
    source = np.repeat(np.arange(len(vocab.CHANNELS)), per_channel)
    day = np.concatenate(
        [
            rng.choice(clock.n_days, size=k, p=intensity[c] / intensity[c].sum())
            for c, k in enumerate(per_channel)
        ]
    ).astype(np.float64)
    created = day + business_hours(rng, n)
    order = np.argsort(created, kind="stable")
    created, source = created[order], source[order]

    campaign = vocab.CAMPAIGN_OFFSET[source] + np.floor(
        rng.random(n) * vocab.CAMPAIGN_COUNT[source]
    ).astype(np.int64)
    country = rng.choice(len(vocab.COUNTRIES), size=n, p=[c.share for c in vocab.COUNTRIES])
    # Events and referrals bring businesses more often than social ads do.
    business_channels = [vocab.CHANNEL_NAMES.index("referral"), vocab.CHANNEL_NAMES.index("events")]
    b2b_share = np.where(np.isin(source, business_channels), 0.6, vocab.B2B_SHARE)
    b2b = rng.random(n) < b2b_share
    industry = np.where(b2b, rng.integers(0, len(vocab.INDUSTRIES), n), NONE)
    size = np.where(b2b, rng.choice(len(vocab.COMPANY_SIZES), n, p=vocab.COMPANY_SIZE_SHARE), NONE)
    title = np.where(b2b, rng.choice(len(vocab.JOB_TITLES), n, p=vocab.JOB_TITLE_SHARE), NONE)

    return People(
        created=created,
        source=source,
        campaign=campaign,
        country=country,
        b2b=b2b,
        industry=industry,
        company_size=size,
        job_title=title,
        intent=rng.standard_normal(n),
    )


def score_people(rng: np.random.Generator, people: People) -> None:
    """Set each person's conversion logit and whether they will ever convert."""
    b2b, n = people.b2b, people.n
    people.channel_effect = (
        np.array([c.quality for c in vocab.CHANNELS])[people.source]
        + vocab.CAMPAIGN_QUALITY[people.campaign]
    )
    people.attribute_effect = vocab.COUNTRY_QUALITY[people.country] + np.where(
        b2b,
        vocab.INDUSTRY_QUALITY[np.maximum(people.industry, 0)]
        + vocab.COMPANY_SIZE_QUALITY[np.maximum(people.company_size, 0)]
        + vocab.JOB_TITLE_QUALITY[np.maximum(people.job_title, 0)],
        0.0,
    )
    people.logit = (
        BASE_LOGIT
        + people.channel_effect
        + people.attribute_effect
        + INTENT_WEIGHT * people.intent
        + LUCK_SD * rng.standard_normal(n)
    )
    buys = rng.random(n) < 1.0 / (1.0 + np.exp(-people.logit))
    # A need that arises later, for reasons the CRM never sees (a new job, a broken
    # machine, a budget freed up): only loosely tied to the lead's intent and channel.
    later_need = ~buys & (rng.random(n) < 1.0 / (1.0 + np.exp(-(LATER_NEED_LOGIT + 0.3 * people.intent
                                                               + 0.3 * people.channel_effect))))
    people.will_convert = buys | later_need
    share = np.where(buys, LATE_BUYER_SHARE, RETURNING_BROWSER_SHARE)
    comes_back = later_need | (rng.random(n) < share)
    delay = COMEBACK_MIN_DAYS + rng.exponential(COMEBACK_MEAN_DAYS, n)
    people.comeback = np.where(comes_back, delay, np.nan)
