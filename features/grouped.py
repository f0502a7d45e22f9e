"""Per-person reductions over event arrays, without per-person Python loops.

Every function takes ``codes`` (int64 person codes in ``[0, n)``, one per event), the number
of persons ``n`` and an optional boolean ``mask`` selecting events, and returns one value
per person (an array of length ``n``). They rely on ``np.bincount`` and ``ufunc.at``, which
run in C over the whole array.
"""

from __future__ import annotations

import numpy as np

from features.windows import NAT

_INT64_MAX = int(np.iinfo(np.int64).max)


def rows(mask: np.ndarray) -> np.ndarray | slice:
    """``mask`` for indexing, or a whole-array slice when it keeps every row: scoring "now"
    keeps every event, and a slice gives views instead of copies of the largest arrays."""
    return slice(None) if mask.all() else mask


def _select(mask: np.ndarray | None, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    if mask is None:
        return arrays
    return tuple(a[mask] for a in arrays)


def count(codes: np.ndarray, n: int, mask: np.ndarray | None = None) -> np.ndarray:
    """Number of selected events per person, as float64."""
    (selected,) = _select(mask, codes)
    return np.bincount(selected, minlength=n).astype(np.float64)


def total(
    codes: np.ndarray, values: np.ndarray, n: int, mask: np.ndarray | None = None
) -> np.ndarray:
    """Sum of ``values`` per person (missing values count as 0; no events → 0)."""
    selected, vals = _select(mask, codes, values)
    weights = np.nan_to_num(vals.astype(np.float64), nan=0.0)
    # bincount returns int64 for empty input: force float so dtypes never depend on the data.
    return np.bincount(selected, weights=weights, minlength=n).astype(np.float64)


def maximum(
    codes: np.ndarray, values: np.ndarray, n: int, mask: np.ndarray | None = None
) -> np.ndarray:
    """Largest non-missing value per person; NaN for persons without one."""
    selected, vals = _select(mask, codes, values)
    out = np.full(n, -np.inf)
    np.fmax.at(out, selected, vals.astype(np.float64))
    return np.where(out == -np.inf, np.nan, out)


def latest(codes: np.ndarray, times: np.ndarray, n: int, mask: np.ndarray | None = None) -> np.ndarray:
    """Latest int64 time per person; :data:`NAT` for persons without events."""
    selected, ts = _select(mask, codes, times)
    out = np.full(n, NAT, dtype=np.int64)
    np.maximum.at(out, selected, ts)
    return out


def earliest(codes: np.ndarray, times: np.ndarray, n: int, mask: np.ndarray | None = None) -> np.ndarray:
    """Earliest int64 time per person; :data:`NAT` for persons without events.

    Times must not contain NAT (it would win every minimum): callers drop untimed rows.
    """
    selected, ts = _select(mask, codes, times)
    out = np.full(n, _INT64_MAX, dtype=np.int64)
    np.minimum.at(out, selected, ts)
    return np.where(out == _INT64_MAX, NAT, out)


def any_event(codes: np.ndarray, n: int, mask: np.ndarray | None = None) -> np.ndarray:
    """Whether each person has at least one selected event."""
    (selected,) = _select(mask, codes)
    out = np.zeros(n, dtype=bool)
    out[selected] = True
    return out


def value_at_latest(
    codes: np.ndarray, times: np.ndarray, values: np.ndarray, n: int, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per person: the latest time and the value then (the smallest value on a tie).

    Taking the smallest of simultaneous values makes the result independent of row order;
    for NPS it is also the more cautious reading.
    """
    selected, ts, vals = _select(mask, codes, times, values)
    last = latest(selected, ts, n)
    at_last = ts == last[selected]
    out = np.full(n, np.inf)
    np.fmin.at(out, selected[at_last], vals[at_last].astype(np.float64))
    return last, np.where(out == np.inf, np.nan, out)


def last_per_group(sorted_codes: np.ndarray) -> np.ndarray:
    """Positions of the last row of each run of equal codes in an array sorted by code."""
    if len(sorted_codes) == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.flatnonzero(sorted_codes[1:] != sorted_codes[:-1])
    return np.append(ends, len(sorted_codes) - 1)
