"""Observed-rate baselines: what a spreadsheet analyst would do before any model.

Both learn the positive rate of the training rows in a few cells and look the rate up
for new rows. The rates are probabilities already, so by default they are not
recalibrated; ``calibration="auto"`` applies the models' calibration step if wanted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.baselines._common import (
    apply_calibrator,
    as_float,
    as_labels,
    binary_labels,
    check_fitted,
    fit_calibrator,
    require_columns,
)


class RecencyFrequencyRule:
    """Positive rate per cell of recency × frequency of paid orders.

    Recency is ``days_since_last_paid_order`` cut at ``recency_edges_days`` plus a "never
    bought" bucket; frequency is ``n_paid_orders`` cut at ``frequency_edges``. A cell with
    fewer than ``min_cell_rows`` training rows is not trusted: it falls back to its recency
    bucket's rate (the coarser cell), and that to the global rate. This is the classic RFM
    segmentation (Hughes, *Strategic Database Marketing*) without the monetary axis.
    """

    name = "rf_rule"
    columns: tuple[str, ...] = ("days_since_last_paid_order", "n_paid_orders")

    def __init__(
        self,
        recency_edges_days: tuple[float, ...] = (30, 90, 180, 365),
        frequency_edges: tuple[float, ...] = (1, 2, 3, 5, 10),
        min_cell_rows: int = 20,
        calibration: str = "none",
        horizon_days: int = 90,
        seed: int = 42,
    ) -> None:
        self.recency_edges_days = recency_edges_days
        self.frequency_edges = frequency_edges
        self.min_cell_rows = min_cell_rows
        self.calibration = calibration
        self.horizon_days = horizon_days
        self.seed = seed

    @property
    def _n_recency(self) -> int:
        # Buckets between the edges, one past the last edge, and "never bought" at the end.
        return len(self.recency_edges_days) + 2

    @property
    def _n_frequency(self) -> int:
        return len(self.frequency_edges) + 1

    def cells(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Recency and frequency bucket of every row (``_n_recency - 1`` = never bought)."""
        require_columns(X, self.columns, type(self).__name__)
        recency = as_float(X, "days_since_last_paid_order")
        n_orders = np.nan_to_num(as_float(X, "n_paid_orders"), nan=0.0)
        never = (n_orders < self.frequency_edges[0]) | np.isnan(recency)
        r_bucket = np.searchsorted(np.asarray(self.recency_edges_days, float), np.nan_to_num(recency), side="right")
        r_bucket = np.where(never, self._n_recency - 1, r_bucket)
        f_bucket = np.where(never, 0, np.searchsorted(np.asarray(self.frequency_edges, float), n_orders, side="right"))
        return r_bucket, f_bucket

    def fit(
        self, X_train: pd.DataFrame, y_train: np.ndarray, X_val: pd.DataFrame, y_val: np.ndarray
    ) -> "RecencyFrequencyRule":
        y = binary_labels(y_train)
        r, f = self.cells(X_train)
        n_cells = self._n_recency * self._n_frequency
        cell = r * self._n_frequency + f
        cell_n = np.bincount(cell, minlength=n_cells).reshape(self._n_recency, self._n_frequency)
        cell_pos = np.bincount(cell, weights=y, minlength=n_cells).reshape(self._n_recency, self._n_frequency)
        self.global_rate_ = float(y.mean()) if len(y) else 0.0
        r_n, r_pos = cell_n.sum(axis=1), cell_pos.sum(axis=1)
        recency_rate = np.where(r_n >= self.min_cell_rows, r_pos / np.maximum(r_n, 1), self.global_rate_)
        cell_rate = np.where(cell_n >= self.min_cell_rows, cell_pos / np.maximum(cell_n, 1), recency_rate[:, None])
        self.cell_rows_ = cell_n
        self.rate_table_ = cell_rate
        self.calibrator_ = fit_calibrator(self.calibration, self.predict_raw(X_val), binary_labels(y_val), self.seed)
        return self

    def predict_raw(self, X: pd.DataFrame) -> np.ndarray:
        """The training positive rate of each row's cell (after fallbacks)."""
        check_fitted(self, "rate_table_")
        r, f = self.cells(X)
        return self.rate_table_[r, f]

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        check_fitted(self, "calibrator_")
        return apply_calibrator(self.calibrator_, self.predict_raw(X))


class ChannelRateBaseline:
    """Training conversion rate per ``lead_source``, shrunk toward the global rate.

    Additive smoothing with ``prior_rows`` pseudo-rows at the global rate p:
    ``rate(s) = (positives(s) + prior_rows * p) / (rows(s) + prior_rows)``, the posterior
    mean of a Beta prior with mean p and strength ``prior_rows``. A small channel thus
    stays near p until it has the rows to say otherwise; an unseen channel gets p. A
    missing source is a channel of its own ("unknown" leads convert differently).
    """

    name = "channel_rate"
    column = "lead_source"

    def __init__(
        self, prior_rows: float = 20.0, calibration: str = "none", horizon_days: int = 90, seed: int = 42
    ) -> None:
        self.prior_rows = prior_rows
        self.calibration = calibration
        self.horizon_days = horizon_days
        self.seed = seed

    def _sources(self, X: pd.DataFrame) -> np.ndarray:
        require_columns(X, [self.column], type(self).__name__)
        return as_labels(X, self.column)

    def fit(
        self, X_train: pd.DataFrame, y_train: np.ndarray, X_val: pd.DataFrame, y_val: np.ndarray
    ) -> "ChannelRateBaseline":
        y = binary_labels(y_train)
        stats = pd.DataFrame({"source": self._sources(X_train), "y": y}).groupby("source")["y"].agg(["sum", "count"])
        self.global_rate_ = float(y.mean()) if len(y) else 0.0
        smoothed = (stats["sum"] + self.prior_rows * self.global_rate_) / (stats["count"] + self.prior_rows)
        self.rates_: dict[str, float] = {str(k): float(v) for k, v in smoothed.items()}
        self.calibrator_ = fit_calibrator(self.calibration, self.predict_raw(X_val), binary_labels(y_val), self.seed)
        return self

    def predict_raw(self, X: pd.DataFrame) -> np.ndarray:
        """Each row's smoothed channel rate (the global rate for unseen channels)."""
        check_fitted(self, "rates_")
        rates = pd.Series(self._sources(X)).map(self.rates_)
        return rates.fillna(self.global_rate_).to_numpy(dtype=np.float64)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        check_fitted(self, "calibrator_")
        return apply_calibrator(self.calibrator_, self.predict_raw(X))
