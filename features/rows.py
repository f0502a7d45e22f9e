"""Feature rows as plain arrays: what models and reasons read when scoring.

A pandas operation costs tens of microseconds whatever its size, and scoring one person
by id is a few dozen of them; the server's latency budget is a few milliseconds. So
scoring reads features through :class:`FeatureRows`, one numpy array per column, built
either from a feature frame (batch: one conversion, then vectorised work) or straight from
stored records (the online store: no frame at all). The numbers are the frame's: floats
stay floats, text and categories become object arrays of their values.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd


class FeatureRows:
    """Features of some people: ``ids`` and one array per column, all of one length."""

    def __init__(self, ids: np.ndarray, columns: Mapping[str, np.ndarray]) -> None:
        self.ids = ids
        self._columns = dict(columns)
        self._frame: pd.DataFrame | None = None
        self._memo: dict[Hashable, Any] = {}

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> FeatureRows:
        """Rows of a feature frame (index = person_id); columns are converted when first read."""
        rows = cls(frame.index.to_numpy(dtype=object), {})
        rows._frame = frame
        return rows

    @property
    def names(self) -> list[str]:
        return list(self._frame.columns) if self._frame is not None else list(self._columns)

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, name: object) -> bool:
        return name in self._columns or (self._frame is not None and name in self._frame.columns)

    def column(self, name: str) -> np.ndarray:
        """Values of one column: float64 for numbers (NaN when missing), objects otherwise."""
        values = self._columns.get(name)
        if values is None:
            if self._frame is None or name not in self._frame.columns:
                raise KeyError(name)
            values = _as_array(self._frame[name])
            self._columns[name] = values
        return values

    def numbers(self, name: str) -> np.ndarray:
        """One column as floats (missing → NaN)."""
        values = self.column(name)
        return values if values.dtype == np.float64 else pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(float)

    def block(self, names: Iterable[str]) -> np.ndarray:
        """Several numeric columns side by side, shape (rows, columns)."""
        names = list(names)
        if self._frame is not None and not any(n in self._columns for n in names):
            return self._frame[names].to_numpy(dtype=np.float64, na_value=np.nan)
        out = np.empty((len(self), len(names)), dtype=np.float64)
        for j, name in enumerate(names):
            out[:, j] = self.numbers(name)
        return out

    def memo(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per key for these rows: a model's input matrix is read by its
        prediction and by its explanation."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def covering(self, names: Iterable[str]) -> FeatureRows:
        """These rows with every column of ``names``, absent ones all missing (NaN): a model
        asked about data it was never given reads it as unknown, as a reindexed frame would."""
        absent = [n for n in names if n not in self]
        if not absent:
            return self
        nan = np.full(len(self), np.nan)
        if self._frame is not None:
            columns = {n: self.column(n) for n in self.names}
        else:
            columns = dict(self._columns)
        return FeatureRows(self.ids, columns | {n: nan for n in absent})

    def take(self, positions: np.ndarray) -> FeatureRows:
        """The rows at ``positions`` (in that order)."""
        if self._frame is not None:
            return FeatureRows.from_frame(self._frame.iloc[positions])
        return FeatureRows(self.ids[positions], {n: v[positions] for n, v in self._columns.items()})

    def to_frame(self) -> pd.DataFrame:
        """A feature frame again, for models that only read frames (the baselines)."""
        if self._frame is not None:
            return self._frame
        index = pd.Index(self.ids, dtype=object, name="person_id")
        return pd.DataFrame({n: self.column(n) for n in self._columns}, index=index)


def _as_array(series: pd.Series) -> np.ndarray:
    if pd.api.types.is_bool_dtype(series.dtype) or pd.api.types.is_numeric_dtype(series.dtype):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    return series.astype(object).to_numpy()
