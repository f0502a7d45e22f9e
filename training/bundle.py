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

from features.rows import FeatureRows
from radar.config import ScoringConfig
from training.survival import median_from_cif, won_within

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
    #: The population the model was judged on, binned for drift monitoring (a plain dict,
    #: see ``training.drift``). None for bundles trained before Radar kept one: the class
    #: default is what an older pickle reads.
    profile: dict[str, Any] | None = None

    @property
    def contender(self) -> str:
        """The gate's name for what this bundle serves: ``model`` (LightGBM) or a baseline's."""
        return "model" if self.model_type == "lightgbm" else self.model_type

    def predict(self, features: pd.DataFrame) -> pd.DataFrame:
        """Model-level outputs for rows of features (index kept); see :meth:`outputs`."""
        return pd.DataFrame(self.outputs(FeatureRows.from_frame(features)), index=features.index)

    def outputs(self, rows: FeatureRows) -> dict[str, np.ndarray]:
        """Model-level outputs, one array per output, in the order of ``rows``.

        binary: ``probability`` (and ``service_probability`` for churn);
        survival: ``p_won_{d}d`` for each of WON_WITHIN_DAYS, ``median_days_to_win`` (NaN
        when beyond the horizon) and ``probability`` (= P(won within the horizon)).
        """
        rows = rows.covering(self.feature_names)
        X = rows if getattr(self.model, "reads_feature_rows", False) else self._frame(rows)
        if self.kind == "survival":
            return self._survival_outputs(X)
        out = {"probability": np.asarray(self.model.predict_proba(X), dtype=float)}
        if self.service_model is not None:
            service_X = rows if getattr(self.service_model, "reads_feature_rows", False) else self._frame(rows)
            out["service_probability"] = np.asarray(self.service_model.predict_proba(service_X), dtype=float)
        return out

    def _survival_outputs(self, X: FeatureRows | pd.DataFrame) -> dict[str, np.ndarray]:
        days = [d for d in WON_WITHIN_DAYS if d <= self.horizon_days] or [self.horizon_days]
        out: dict[str, np.ndarray] = {}
        if hasattr(self.model, "cumulative_incidence") and hasattr(self.model, "booster_"):
            # One pass over the trees for all three outputs.
            cif, times = self.model.cumulative_incidence(X)
            won = won_within(cif, times, days + [self.horizon_days])
            out.update({f"p_won_{d}d": won[:, i] for i, d in enumerate(days)})
            out["median_days_to_win"] = median_from_cif(cif, times)
            out["probability"] = won[:, -1]
            return out
        won = self.model.predict_won_within(X, days)
        out.update({f"p_won_{d}d": won[:, i] for i, d in enumerate(days)})
        out["median_days_to_win"] = np.asarray(self.model.predict_median_days(X), dtype=float)
        out["probability"] = np.asarray(self.model.predict_proba(X), dtype=float)
        return out

    def _frame(self, rows: FeatureRows) -> pd.DataFrame:
        return rows.to_frame().reindex(columns=self.feature_names)

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
