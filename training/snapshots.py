"""Choosing the as-of dates that training, validation and test are cut at.

The test snapshot is the latest as-of whose label window has fully passed; validation sits
one horizon before it and the training snapshots end one horizon before validation. So
every label window of a training row closes before the validation as-of, and every
validation label window closes before the test as-of: nothing a later split is judged on
was visible, as a label, to an earlier one.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class SnapshotPlan:
    """The as-of dates of one training run."""

    train: tuple[pd.Timestamp, ...]
    validation: pd.Timestamp
    test: pd.Timestamp
    horizon_days: int
    data_end: pd.Timestamp

    def to_dict(self) -> dict[str, object]:
        return {
            "train": [d.date().isoformat() for d in self.train],
            "validation": self.validation.date().isoformat(),
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
    min_history_days: int = 90,
) -> SnapshotPlan:
    """Cut points for ``n_train_snapshots`` training snapshots, one validation and one test.

    ``data_end`` is the moment the data stops (exclusive); a label window
    ``[as_of, as_of + H)`` has fully passed when ``as_of + H <= data_end``. Snapshots fall
    on the calendar grid of ``frequency`` (month starts by default) so that runs on the
    same data agree. Training snapshots need ``min_history_days`` of data before them.
    """
    horizon = pd.Timedelta(days=horizon_days)
    grid = pd.date_range(data_start.normalize(), data_end, freq=frequency)
    passed = grid[grid + horizon <= data_end]
    if len(passed) == 0:
        raise NotEnoughHistory(f"no as-of date has a fully passed {horizon_days}-day label window")
    test = passed[-1]
    too_short = NotEnoughHistory(
        f"data from {data_start.date()} to {data_end.date()} is too short for a "
        f"{horizon_days}-day horizon: it needs about {3 * horizon_days + min_history_days} days"
    )
    validation = _latest_on_grid(grid, test - horizon)
    if validation is None:
        raise too_short
    last_train = _latest_on_grid(grid, validation - horizon)
    earliest = data_start + pd.Timedelta(days=min_history_days)
    train = grid[(grid >= earliest) & (grid <= last_train)][-n_train_snapshots:] if last_train else grid[:0]
    if len(train) == 0:
        raise too_short
    return SnapshotPlan(tuple(train), validation, test, horizon_days, data_end)


def _latest_on_grid(grid: pd.DatetimeIndex, at_most: pd.Timestamp) -> pd.Timestamp | None:
    earlier = grid[grid <= at_most]
    return earlier[-1] if len(earlier) else None
