"""Choosing the as-of dates that training, validation and test are cut at.

The test snapshot is the latest as-of whose label window has fully passed. Two plans fit
the data's length:

* **By time** (enough history): validation sits one horizon before test and the training
  snapshots end one horizon before validation, so every label window of a training row
  closes before the validation as-of, and every validation window before the test as-of.
  The model is early-stopped and calibrated on the most recent fully labelled snapshot.
* **By person** (short histories, fewer than ``MIN_TIME_PLAN_SNAPSHOTS`` training
  snapshots by time): training snapshots run up to one horizon before test, and a fixed
  share of the people (by a hash of their key, the same in every snapshot) is held out as
  validation. Test stays out of time. Twelve months of leads then train a 90-day horizon.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

#: A time plan needs at least this many training snapshots; fewer, and people are held out.
MIN_TIME_PLAN_SNAPSHOTS = 3
#: Share of the people held out as validation in a by-person plan.
VALIDATION_SHARE = 0.2
#: Horizons suggested when the asked one does not fit the data.
SUGGESTED_HORIZONS = (60, 45, 30, 14, 7)


@dataclass(frozen=True)
class SnapshotPlan:
    """The as-of dates of one training run; ``validation`` is None in a by-person plan."""

    train: tuple[pd.Timestamp, ...]
    validation: pd.Timestamp | None
    test: pd.Timestamp
    horizon_days: int
    data_end: pd.Timestamp

    @property
    def by_person(self) -> bool:
        return self.validation is None

    @property
    def moments(self) -> list[pd.Timestamp]:
        """Every as-of the plan needs features at, oldest first."""
        return [*self.train, *([] if self.validation is None else [self.validation]), self.test]

    def held_out(self, keys: pd.Index) -> np.ndarray:
        """By-person plan: True for the people held out as validation (stable per key)."""
        cut = VALIDATION_SHARE * 2**32
        return np.fromiter((zlib.crc32(str(k).encode()) < cut for k in keys), dtype=bool, count=len(keys))

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": "by_person" if self.by_person else "by_time",
            "train": [d.date().isoformat() for d in self.train],
            "validation": None if self.validation is None else self.validation.date().isoformat(),
            "validation_share": VALIDATION_SHARE if self.by_person else None,
            "test": self.test.date().isoformat(),
            "horizon_days": self.horizon_days,
            "data_end": self.data_end.isoformat(),
        }


class NotEnoughHistory(ValueError):
    """The data does not span enough time for the requested snapshots."""


def plan_snapshots(
    data_start: pd.Timestamp,
    data_end: pd.Timestamp,
    horizon_days: int,
    n_train_snapshots: int,
    frequency: str = "MS",
    min_history_days: int = 30,
) -> SnapshotPlan:
    """Cut points for up to ``n_train_snapshots`` training snapshots, validation and test.

    ``data_end`` is the moment the data stops (exclusive); a label window
    ``[as_of, as_of + H)`` has fully passed when ``as_of + H <= data_end``. Snapshots fall
    on the calendar grid of ``frequency`` (month starts by default) so that runs on the
    same data agree. Training snapshots need ``min_history_days`` of data before them.
    """
    plan = _plan(data_start, data_end, horizon_days, n_train_snapshots, frequency, min_history_days)
    if plan is not None:
        return plan
    fits = [
        h for h in SUGGESTED_HORIZONS
        if h < horizon_days and _plan(data_start, data_end, h, n_train_snapshots, frequency, min_history_days)
    ]
    hint = f"; try `radar train --horizon {fits[0]}`" if fits else "; it needs a longer history"
    raise NotEnoughHistory(
        f"data from {data_start.date()} to {data_end.date()} is too short for a {horizon_days}-day "
        f"horizon: it needs about {2 * horizon_days + min_history_days + 31} days{hint}"
    )


def _plan(
    data_start: pd.Timestamp, data_end: pd.Timestamp, horizon_days: int, n_train: int, frequency: str, min_history_days: int
) -> SnapshotPlan | None:
    horizon = pd.Timedelta(days=horizon_days)
    grid = pd.date_range(data_start.normalize(), data_end, freq=frequency)
    passed = grid[grid + horizon <= data_end]
    if len(passed) == 0:
        return None
    test = passed[-1]
    usable = grid[grid >= data_start + pd.Timedelta(days=min_history_days)]
    validation = _latest_on_grid(grid, test - horizon)
    if validation is not None:
        by_time = usable[usable <= validation - horizon][-n_train:]
        if len(by_time) >= MIN_TIME_PLAN_SNAPSHOTS:
            return SnapshotPlan(tuple(by_time), validation, test, horizon_days, data_end)
    by_person = usable[usable <= test - horizon][-n_train:]
    if len(by_person) == 0:
        return None
    return SnapshotPlan(tuple(by_person), None, test, horizon_days, data_end)


def _latest_on_grid(grid: pd.DatetimeIndex, at_most: pd.Timestamp) -> pd.Timestamp | None:
    earlier = grid[grid <= at_most]
    return earlier[-1] if len(earlier) else None
