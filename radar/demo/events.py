"""Interaction events as parallel numpy arrays, and the vectorised tools to draw them."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from features.contract import DEAL_STAGES, INTERACTION_TYPES

TYPE = {name: i for i, name in enumerate(INTERACTION_TYPES)}
STAGE = {name: i for i, name in enumerate(DEAL_STAGES)}
EVENT_CHANNELS: tuple[str, ...] = (
    "web", "email", "whatsapp", "phone", "video", "in_person", "web_chat", "helpdesk", "survey",
    "crm", "organic_search", "paid_search", "social_ads", "referral", "events",
)
#: Default channel of each interaction type (campaign touches use the lead's source instead).
TYPE_CHANNEL = np.array(
    [
        EVENT_CHANNELS.index(c)
        for c in (
            "web", "web", "email", "email", "phone", "video", "whatsapp", "web_chat", "web",
            "web", "email", "helpdesk", "phone", "survey", "crm",
        )
    ]
)

# Who a row is keyed by: a bit set of the person keys it carries.
LEAD, CUST, EMAIL, PHONE = 1, 2, 4, 8


@dataclass
class Events:
    person: np.ndarray  # int64
    t: np.ndarray  # float days since world start
    kind: np.ndarray  # index into INTERACTION_TYPES
    channel: np.ndarray  # index into EVENT_CHANNELS
    value: np.ndarray  # float, NaN when the type has none
    deal: np.ndarray  # deal index or -1
    stage: np.ndarray  # index into DEAL_STAGES or -1
    #: Forced key bits (bridge rows), or 0 to let the key policy decide.
    keys: np.ndarray

    def __len__(self) -> int:
        return len(self.person)

    def subset(self, mask: np.ndarray) -> Events:
        return Events(*(getattr(self, f.name)[mask] for f in fields(self)))


def make_events(
    person: np.ndarray,
    t: np.ndarray,
    kind: np.ndarray,
    *,
    channel: np.ndarray | None = None,
    value: np.ndarray | None = None,
    deal: np.ndarray | None = None,
    stage: np.ndarray | None = None,
    keys: np.ndarray | None = None,
) -> Events:
    n = len(person)
    kind = np.broadcast_to(np.asarray(kind, dtype=np.int16), (n,)).copy()
    return Events(
        person=np.asarray(person, dtype=np.int64),
        t=np.asarray(t, dtype=np.float64),
        kind=kind,
        channel=TYPE_CHANNEL[kind].astype(np.int16) if channel is None else np.asarray(channel, dtype=np.int16),
        value=np.full(n, np.nan) if value is None else np.asarray(value, dtype=np.float64),
        deal=np.full(n, -1, dtype=np.int64) if deal is None else np.asarray(deal, dtype=np.int64),
        stage=np.full(n, -1, dtype=np.int8) if stage is None else np.asarray(stage, dtype=np.int8),
        keys=np.zeros(n, dtype=np.int8) if keys is None else np.asarray(keys, dtype=np.int8),
    )


def concat(parts: list[Events]) -> Events:
    return Events(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Events)))


def poisson_in_windows(
    rng: np.random.Generator, owner: np.ndarray, start: np.ndarray, stop: np.ndarray, rate: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A Poisson process of ``rate`` per day in [start, stop) for each owner, all at once.

    Returns (owner per event, time per event). Empty windows give no events.
    """
    length = np.maximum(stop - start, 0.0)
    counts = rng.poisson(rate * length)
    who = np.repeat(owner, counts)
    t = np.repeat(start, counts) + rng.random(counts.sum()) * np.repeat(length, counts)
    return who, t


def pick(rng: np.random.Generator, probs: np.ndarray, group: np.ndarray) -> np.ndarray:
    """For each row, a category drawn from ``probs[group]`` (one distribution per group).

    One searchsorted over all groups' cumulative probabilities laid end to end (group g's
    live in [g, g + 1]), so there is neither a loop over rows nor a rows x categories matrix.
    """
    n_groups, k = probs.shape
    cum = np.cumsum(probs, axis=1)
    cum /= cum[:, -1:]
    flat = (cum + np.arange(n_groups)[:, None]).ravel()
    group = np.asarray(group, dtype=np.int64)
    u = rng.random(len(group)) * (1.0 - 1e-12)
    hit = np.searchsorted(flat, group + u, side="right") - group * k
    return np.clip(hit, 0, k - 1)


def type_mix(mix: dict[str, float]) -> np.ndarray:
    """A probability vector over INTERACTION_TYPES from a {type: weight} dict."""
    out = np.zeros(len(INTERACTION_TYPES))
    for name, w in mix.items():
        out[TYPE[name]] = w
    return out / out.sum()
