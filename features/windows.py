"""Time inside the feature pipeline: integer nanoseconds and the window convention.

Every timestamp is turned into ``int64`` nanoseconds once (missing → :data:`NAT`), so that
point-in-time filters and windows are plain integer comparisons over whole arrays.

Window convention: a window of ``d`` days at ``as_of`` covers ``[as_of - d days, as_of)``.
An event exactly at ``as_of`` is in the future (not yet known); an event exactly
``d`` days before ``as_of`` is inside the ``d``-day window.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

DAY_NS: int = 86_400 * 1_000_000_000
#: Missing time. It is the smallest int64, which is how numpy stores ``NaT``.
NAT: int = int(np.iinfo(np.int64).min)


def timestamp_ns(moment: pd.Timestamp | str) -> int:
    """A moment as tz-naive UTC nanoseconds (tz-aware moments are converted to UTC)."""
    ts = pd.Timestamp(moment)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return int(ts.value)


def column_ns(frame: pd.DataFrame, name: str) -> np.ndarray:
    """A datetime column as int64 nanoseconds; an absent column is all :data:`NAT`."""
    if name not in frame.columns:
        return np.full(len(frame), NAT, dtype=np.int64)
    values = frame[name]
    if not pd.api.types.is_datetime64_any_dtype(values):
        values = pd.to_datetime(values, errors="coerce")
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    # pandas 3 may hold datetimes in µs or s: normalise the unit before reading integers.
    # No copy: the result may be a read-only view of the table (the pipeline never writes
    # into its inputs), which saves a copy of the largest column at 20 M events.
    as_ns = values.astype("datetime64[ns]").to_numpy()
    return as_ns.view(np.int64)


def days_between(earlier: np.ndarray, as_of: int) -> np.ndarray:
    """Days from each time in ``earlier`` to ``as_of`` (NaN where the time is missing)."""
    missing = earlier == NAT
    # Subtract in integers first: float64 cannot hold nanosecond epochs exactly.
    age_ns = as_of - np.where(missing, as_of, earlier)
    return np.where(missing, np.nan, age_ns / DAY_NS)


def in_window(age_ns: np.ndarray, days: float) -> np.ndarray:
    """Which events of age ``age_ns`` (> 0, time before as_of) fall in the ``days`` window."""
    return age_ns <= int(days * DAY_NS)


def in_band(age_ns: np.ndarray, after_days: float, until_days: float) -> np.ndarray:
    """Events in ``[as_of - until_days, as_of - after_days)``: the window before a window."""
    return (age_ns > int(after_days * DAY_NS)) & (age_ns <= int(until_days * DAY_NS))


def in_window_at(t: np.ndarray, as_of: int, days: float) -> np.ndarray:
    """:func:`in_window` from the times themselves: ``as_of - t <= d days`` is, in integers,
    ``t >= as_of - d days``. The same events, with no array of ages (160 MB at 20 M events)."""
    return t >= as_of - int(days * DAY_NS)


def in_band_at(t: np.ndarray, as_of: int, after_days: float, until_days: float) -> np.ndarray:
    """:func:`in_band` from the times themselves (see :func:`in_window_at`)."""
    return (t < as_of - int(after_days * DAY_NS)) & (t >= as_of - int(until_days * DAY_NS))
