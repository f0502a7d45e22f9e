"""The world's calendar: time runs in float days since the world's first midnight."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class Clock:
    """Three years of days ending with ``end`` (inclusive)."""

    start: date
    end: date

    @classmethod
    def ending(cls, end: date, years: int = 3) -> Clock:
        try:
            start = end.replace(year=end.year - years) + timedelta(days=1)
        except ValueError:  # 29 February in a year that has none
            start = end.replace(year=end.year - years, day=28) + timedelta(days=1)
        return cls(start=start, end=end)

    @property
    def n_days(self) -> int:
        return (self.end - self.start).days + 1

    def day_of_week(self) -> np.ndarray:
        """Monday = 0 for each day of the world."""
        return (np.arange(self.n_days) + self.start.weekday()) % 7

    def day_of_year(self) -> np.ndarray:
        first = self.start.timetuple().tm_yday
        return (np.arange(self.n_days) + first - 1) % 365

    def to_datetime64(self, days: np.ndarray) -> np.ndarray:
        """Float days since start to whole-second ``datetime64[s]``."""
        origin = np.datetime64(self.start.isoformat(), "s")
        return origin + np.floor(days * SECONDS_PER_DAY).astype("int64").astype("timedelta64[s]")

    def dates(self) -> np.ndarray:
        return np.datetime64(self.start.isoformat(), "D") + np.arange(self.n_days)


def business_hours(rng: np.random.Generator, n: int) -> np.ndarray:
    """Fraction of a day at which people act: mostly office hours, a tail in the evening."""
    hours = np.where(rng.random(n) < 0.8, rng.normal(13.0, 2.8, n), rng.normal(20.5, 1.5, n))
    return np.clip(hours, 0.0, 23.99) / 24.0
