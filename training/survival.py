"""Time-to-close as a discrete-time competing-risks hazard model with LightGBM.

Each open deal is followed from its as-of for up to H days, cut into periods of
``hazard_period_days``. For every period a deal is still open at its start, one training
row asks: does it close *won* in this period, close *lost*, or stay open? A multiclass
LightGBM learns those per-period hazards with the period number as a feature. Censored
deals contribute only the periods they were fully seen open, and a lost deal stops being
at risk of winning, which is how the competing outcome is handled: the probability of
winning by day t is the cumulative incidence

    CIF_won(t_k) = sum_{j<=k} h_won(j) * prod_{i<j} (1 - h_won(i) - h_lost(i)).
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
from sksurv.metrics import concordance_index_censored
from sksurv.nonparametric import kaplan_meier_estimator

from radar.config import ModelConfig
from features.rows import FeatureRows
from training.models import NotFittedError, align_categories, as_rows, input_layout, learn_categories, lightgbm_params

EVENT_CODES = {"censored": 0, "won": 1, "lost": 2}
PERIOD_COLUMN = "hazard_period"


def expand_periods(
    X: pd.DataFrame, duration_days: np.ndarray, event: np.ndarray, period_days: int, n_periods: int
) -> tuple[pd.DataFrame, np.ndarray]:
    """One row per deal per period it was at risk, with outcome 0 open, 1 won, 2 lost."""
    duration_days = np.asarray(duration_days, dtype=float)
    code = np.array([EVENT_CODES[e] for e in event], dtype=np.int8)
    event_period = np.floor(duration_days / period_days).astype(int)
    closed = code > 0
    # A close in period k means periods 0..k are at risk; a censored deal counts only the
    # periods it was seen open from start to end.
    n_rows = np.where(closed, np.minimum(event_period + 1, n_periods), np.minimum(event_period, n_periods))
    rows = np.repeat(np.arange(len(X)), n_rows)
    period = np.concatenate([np.arange(n) for n in n_rows]) if len(n_rows) else np.zeros(0, int)
    last = period == (n_rows[rows] - 1)
    target = np.where(last & closed[rows] & (event_period[rows] < n_periods), code[rows], 0)
    expanded = X.iloc[rows].reset_index(drop=True)
    expanded[PERIOD_COLUMN] = period.astype(float)
    return expanded, target.astype(int)


class HazardModel:
    """P(won within t days) and median days to win for open deals."""

    #: Predicts from FeatureRows as well as frames (see training.models.InputLayout).
    reads_feature_rows = True

    def __init__(self, config: ModelConfig | None = None, horizon_days: int = 90, seed: int = 42) -> None:
        self.config = config or ModelConfig()
        self.horizon_days = horizon_days
        self.seed = seed

    @property
    def period_days(self) -> int:
        return self.config.hazard_period_days

    @property
    def n_periods(self) -> int:
        return int(np.ceil(self.horizon_days / self.period_days))

    def fit(
        self,
        X_train: pd.DataFrame,
        duration_train: np.ndarray,
        event_train: np.ndarray,
        X_val: pd.DataFrame,
        duration_val: np.ndarray,
        event_val: np.ndarray,
    ) -> "HazardModel":
        """Train per-period hazards with early stopping on the validation deals."""
        self.feature_names_ = list(X_train.columns)
        self.categories_ = learn_categories(X_train)
        rows_tr, y_tr = expand_periods(self._prepare(X_train), duration_train, event_train, self.period_days, self.n_periods)
        rows_va, y_va = expand_periods(self._prepare(X_val), duration_val, event_val, self.period_days, self.n_periods)
        train = lgb.Dataset(rows_tr, label=y_tr, free_raw_data=False)
        valid = lgb.Dataset(rows_va, label=y_va, reference=train)
        self.booster_ = lgb.train(
            lightgbm_params(self.config, "multiclass", self.seed, num_class=3),
            train,
            num_boost_round=self.config.max_trees,
            valid_sets=[valid],
            callbacks=[lgb.early_stopping(self.config.early_stopping_rounds, verbose=False)],
        )
        return self

    def _prepare(self, X: pd.DataFrame) -> pd.DataFrame:
        return align_categories(X[self.feature_names_], self.categories_)

    def matrix(self, X: pd.DataFrame | FeatureRows) -> np.ndarray:
        """The booster's input for the features of each deal, without the period column."""
        if not hasattr(self, "booster_"):
            raise NotFittedError("call fit() before predicting")
        return input_layout(self).matrix(as_rows(X))

    def _period_matrix(self, X: pd.DataFrame | FeatureRows) -> np.ndarray:
        """One row per deal and period: the deal's features, then the period (last column)."""
        deals = self.matrix(X)
        rows = np.repeat(deals, self.n_periods, axis=0)
        period = np.tile(np.arange(self.n_periods, dtype=float), len(deals))
        return np.column_stack([rows, period])

    def hazards(self, X: pd.DataFrame | FeatureRows) -> tuple[np.ndarray, np.ndarray]:
        """Per-period hazards of winning and losing, each of shape (deals, periods)."""
        rows = self._period_matrix(X)  # first: says clearly when the model is not fitted
        probs = self.booster_.predict(rows, num_iteration=self.booster_.best_iteration or None)
        probs = probs.reshape(-1, self.n_periods, 3)
        return probs[:, :, 1], probs[:, :, 2]

    def cumulative_incidence(self, X: pd.DataFrame | FeatureRows) -> tuple[np.ndarray, np.ndarray]:
        """CIF of winning at the end of each period, and the period end times in days."""
        h_won, h_lost = self.hazards(X)
        still_open = np.cumprod(1.0 - h_won - h_lost, axis=1)
        open_at_start = np.hstack([np.ones((len(h_won), 1)), still_open[:, :-1]])
        cif = np.cumsum(open_at_start * h_won, axis=1)
        times = self.period_days * np.arange(1, self.n_periods + 1, dtype=float)
        return cif, times

    def predict_won_within(self, X: pd.DataFrame | FeatureRows, days: list[int]) -> np.ndarray:
        """P(won within each of ``days``), shape (deals, len(days)), read off the CIF."""
        return won_within(*self.cumulative_incidence(X), days)

    def predict_median_days(self, X: pd.DataFrame | FeatureRows) -> np.ndarray:
        """Days until the chance of having won reaches 50 %; NaN if not within the horizon."""
        return median_from_cif(*self.cumulative_incidence(X))

    def predict_proba(self, X: pd.DataFrame | FeatureRows) -> np.ndarray:
        """P(won within the horizon): the single probability evaluation compares."""
        return self.predict_won_within(X, [self.horizon_days])[:, 0]


def won_within(cif: np.ndarray, times: np.ndarray, days: list[int]) -> np.ndarray:
    """P(won within each of ``days``) read off a CIF, shape (deals, len(days))."""
    return np.column_stack([_interpolate(cif, times, d) for d in days])


def _interpolate(cif: np.ndarray, times: np.ndarray, day: float) -> np.ndarray:
    grid = np.concatenate([[0.0], times])
    padded = np.hstack([np.zeros((cif.shape[0], 1)), cif])
    day = min(day, grid[-1])
    k = int(np.searchsorted(grid, day, side="right") - 1)
    if k >= len(grid) - 1:
        return padded[:, -1]
    share = (day - grid[k]) / (grid[k + 1] - grid[k])
    return padded[:, k] + share * (padded[:, k + 1] - padded[:, k])


def median_from_cif(cif: np.ndarray, times: np.ndarray) -> np.ndarray:
    """First time the CIF reaches 0.5, linearly interpolated within its period."""
    grid = np.concatenate([[0.0], times])
    padded = np.hstack([np.zeros((cif.shape[0], 1)), cif])
    reached = padded >= 0.5
    first = np.where(reached.any(axis=1), reached.argmax(axis=1), -1)
    out = np.full(cif.shape[0], np.nan)
    ok = first > 0
    k = first[ok]
    rows = np.flatnonzero(ok)
    lo, hi = padded[rows, k - 1], padded[rows, k]
    share = np.where(hi > lo, (0.5 - lo) / np.where(hi > lo, hi - lo, 1.0), 1.0)
    out[ok] = grid[k - 1] + share * (grid[k] - grid[k - 1])
    return out


def concordance(duration: np.ndarray, event: np.ndarray, won_score: np.ndarray) -> float:
    """Harrell's C for winning: deals that win sooner should score higher.

    Lost deals count as censored for the win (cause-specific concordance)."""
    won = np.asarray(event) == "won"
    if won.sum() == 0:
        return float("nan")
    return float(concordance_index_censored(won, np.asarray(duration, float), np.asarray(won_score, float))[0])


def competing_risk_brier(
    duration: np.ndarray, event: np.ndarray, cif_at: dict[float, np.ndarray]
) -> dict[float, float]:
    """IPCW Brier score of P(won by t), for each t in ``cif_at``.

    Status at t: won by t is 1; lost by t or still open after t is 0; censored before t
    is unknown and carries no weight, while the others are weighted by the inverse chance
    of staying uncensored (Kaplan-Meier of the censoring times) so the score stays unbiased.
    """
    duration = np.asarray(duration, float)
    event = np.asarray(event)
    censored = event == "censored"
    km_times, km_surv = kaplan_meier_estimator(censored, duration)

    def g(t: np.ndarray) -> np.ndarray:
        idx = np.searchsorted(km_times, t, side="right") - 1
        return np.where(idx >= 0, km_surv[np.clip(idx, 0, None)], 1.0)

    scores = {}
    for t, cif in cif_at.items():
        closed_by_t = (duration <= t) & ~censored
        known_after = duration > t
        status = (closed_by_t & (event == "won")).astype(float)
        weight = np.zeros_like(duration)
        weight[closed_by_t] = 1.0 / np.maximum(g(np.maximum(duration[closed_by_t] - 1e-9, 0)), 1e-6)
        weight[known_after] = 1.0 / max(float(g(np.array([t]))[0]), 1e-6)
        scores[t] = float(np.sum(weight * (status - np.asarray(cif)) ** 2) / len(duration))
    return scores


def integrated_brier(duration: np.ndarray, event: np.ndarray, cif_at: dict[float, np.ndarray]) -> float:
    """Mean of the IPCW Brier scores over the evaluation times (equally spaced)."""
    return float(np.mean(list(competing_risk_brier(duration, event, cif_at).values())))
