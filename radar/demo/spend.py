"""Daily marketing spend per channel and campaign: what the leads cost, and what runs anyway."""

from __future__ import annotations

import numpy as np

from radar.demo import columns as col
from radar.demo import vocab
from radar.demo.clock import Clock
from radar.demo.tables import Table


def spend_table(rng: np.random.Generator, clock: Clock, intensity: np.ndarray, n_people: int) -> Table:
    """One row per (day, campaign): a cost per lead x the leads expected that day, with
    day-to-day noise, plus a flat daily share of the channel's fixed costs.

    The fixed part is the same every day, so a channel's cost per lead is highest in its
    slow months (and early on, before lead volume grew), as with real retainers and tools.
    """
    variable = np.array([c.cost_per_lead for c in vocab.CHANNELS])
    fixed = np.array([c.fixed_cost_per_lead for c in vocab.CHANNELS])
    channel_of = np.repeat(np.arange(len(vocab.CHANNELS)), vocab.CAMPAIGN_COUNT)
    expected = intensity[channel_of] * n_people / vocab.CAMPAIGN_COUNT[channel_of][:, None]
    amount = variable[channel_of][:, None] * expected * rng.lognormal(0.0, 0.25, expected.shape)
    # The fixed cost of each campaign's leads over the whole world, spread evenly over its days.
    amount += (fixed[channel_of] * expected.sum(axis=1) / clock.n_days)[:, None]
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
