"""A trained target: the model, the features it reads and how it was judged.

A bundle is what gets logged to MLflow, registered, promoted and loaded for scoring. It
holds model-level outputs only (probabilities, survival curves); product outputs such as
the 0-100 score, grade, percentile and reasons are derived from it in ``serving``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from radar.config import ScoringConfig

#: Days at which time_to_close reports the chance of having won.
WON_WITHIN_DAYS: tuple[int, ...] = (30, 60, 90)

TargetKind = Literal["binary", "survival"]


@dataclass
class TargetBundle:
    """Everything needed to score one target."""

    target: str
    kind: TargetKind
    #: A ProbabilityModel, HazardModel, or a baseline with the same interface when the
    #: target had too little data to learn from.
    model: Any
    feature_names: list[str]
    #: "lightgbm", or the baseline's name when Radar fell back to it.
    model_type: str
    #: Test-snapshot metrics by contender: {"model": {...}, "<baseline>": {...}}.
    metrics: dict[str, dict[str, float]]
    #: Test-snapshot probabilities, sorted: the population a percentile is read against.
    reference_probabilities: np.ndarray
    horizon_days: int
    snapshot_plan: dict[str, Any]
    trained_at: str
    #: Churn only: a second model for service-driven churn, so the dominant risk is known.
    service_model: Any | None = None
    #: Plain-language notes about the run (fallbacks, flagged columns, small data).
    notes: list[str] = field(default_factory=list)
    #: Size and explanation cost of the model: trees, leaves, ms per SHAP explanation.
    cost: dict[str, float] = field(default_factory=dict)

    def predict(self, features: pd.DataFrame) -> pd.DataFrame:
        """Model-level outputs for rows of features (index kept).

        binary: ``probability`` (and ``service_probability`` for churn);
        survival: ``probability`` (= P(won within the horizon)), ``p_won_{d}d`` for each
        of WON_WITHIN_DAYS and ``median_days_to_win`` (NaN when beyond the horizon).
        """
        X = features.reindex(columns=self.feature_names)
        out = pd.DataFrame(index=features.index)
        if self.kind == "survival":
            days = [d for d in WON_WITHIN_DAYS if d <= self.horizon_days] or [self.horizon_days]
            won = self.model.predict_won_within(X, days)
            for i, d in enumerate(days):
                out[f"p_won_{d}d"] = won[:, i]
            out["median_days_to_win"] = self.model.predict_median_days(X)
            out["probability"] = self.model.predict_proba(X)
            return out
        out["probability"] = self.model.predict_proba(X)
        if self.service_model is not None:
            out["service_probability"] = self.service_model.predict_proba(X)
        return out

    def percentile(self, probabilities: np.ndarray) -> np.ndarray:
        """Share (0-100) of the reference population scoring at or below each probability."""
        ref = self.reference_probabilities
        if len(ref) == 0:
            return np.full(len(probabilities), np.nan)
        return 100.0 * np.searchsorted(ref, probabilities, side="right") / len(ref)


def grade(percentile: np.ndarray, config: ScoringConfig | None = None) -> np.ndarray:
    """Letter grade A-D from a percentile (NaN percentile: D)."""
    config = config or ScoringConfig()
    p = np.nan_to_num(np.asarray(percentile, dtype=float), nan=-1.0)
    cuts = [config.grade_a_min_percentile, config.grade_b_min_percentile, config.grade_c_min_percentile]
    return np.select([p >= c for c in cuts], ["A", "B", "C"], "D")


def with_grades(bundle: TargetBundle, outputs: pd.DataFrame, config: ScoringConfig | None = None) -> pd.DataFrame:
    """Add the 0-100 score, the percentile in the reference population and the grade."""
    probability = outputs["probability"].to_numpy(dtype=float)
    out = outputs.copy()
    out["score"] = np.round(100 * probability).astype(int)
    out["percentile"] = np.round(bundle.percentile(probability), 1)
    out["grade"] = grade(out["percentile"].to_numpy(), config)
    return out
