"""Daily marketing spend per channel and campaign, tied to the lead volume it buys."""

from __future__ import annotations

import numpy as np

from radar.demo import columns as col
from radar.demo import vocab
from radar.demo.clock import Clock
from radar.demo.tables import Table


def spend_table(rng: np.random.Generator, clock: Clock, intensity: np.ndarray, n_people: int) -> Table:
    """One row per (day, campaign): cost per lead x expected leads, with day-to-day noise."""
    cost = np.array([c.cost_per_lead for c in vocab.CHANNELS])
    channel_of = np.repeat(np.arange(len(vocab.CHANNELS)), vocab.CAMPAIGN_COUNT)
    expected = intensity[channel_of] * n_people / vocab.CAMPAIGN_COUNT[channel_of][:, None]
    amount = cost[channel_of][:, None] * expected * rng.lognormal(0.0, 0.25, expected.shape)
    # Rows ordered by date, then campaign, as an ad platform export would be.
    day, campaign = np.meshgrid(np.arange(clock.n_days), np.arange(len(vocab.CAMPAIGNS)), indexing="ij")
    day, campaign = day.ravel(), campaign.ravel()
    columns = {
        "date": col.dates(clock, day),
        "channel": col.labels(vocab.CHANNEL_NAMES, channel_of[campaign]),
        "amount": col.numbers(np.round(amount[campaign, day], 2)),
        "campaign": col.labels(vocab.CAMPAIGNS, campaign),
    }
    return Table("spend", columns, np.full(len(day), -1, dtype=np.int64))
