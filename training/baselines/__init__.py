"""The baselines every Radar model is compared with on the same test snapshot.

Binary baselines follow :class:`training.models.ProbabilityModel`'s interface:
``fit(X_train, y_train, X_val, y_val) -> self`` and ``predict_proba(X)``; survival
baselines follow :class:`training.survival.HazardModel`'s: ``fit(X_train, duration_train,
event_train, X_val, duration_val, event_val)``, ``predict_won_within(X, days)``,
``predict_median_days(X)`` and ``predict_proba(X)``. Every class has a short ``name``,
takes its settings as keywords (all accept ``horizon_days`` and ``seed``, so
``cls(horizon_days=H, seed=s)`` builds any of them), keeps fitted state in attributes
ending with ``_`` and raises :class:`training.models.NotFittedError` before ``fit``. Each
reads only the feature columns it needs and raises :class:`MissingColumnsError` (a
``KeyError``) naming the ones a frame lacks.
"""

from __future__ import annotations

from training.baselines._common import MissingColumnsError
from training.baselines.bgnbd import CHURN_SCORES, BGNBDBaseline, BGNBDChurnBaseline
from training.baselines.logistic import LogisticBaseline
from training.baselines.rates import ChannelRateBaseline, RecencyFrequencyRule
from training.baselines.survival import CoxBaseline, StageCumulativeIncidence

#: Which baselines a model of each target must beat.
BASELINES: dict[str, list[type]] = {
    "purchase_probability": [RecencyFrequencyRule, BGNBDBaseline],
    "churn_by_indifference": [RecencyFrequencyRule, BGNBDChurnBaseline],
    "lead_quality": [ChannelRateBaseline, LogisticBaseline],
    "time_to_close": [StageCumulativeIncidence, CoxBaseline],
}

#: Targets whose baselines are survival models (the others are binary).
SURVIVAL_TARGETS: frozenset[str] = frozenset({"time_to_close"})


def make_baselines(target: str, horizon_days: int, seed: int) -> list[object]:
    """Unfitted instances of the baselines for ``target``, with the run's horizon and seed."""
    if target not in BASELINES:
        raise KeyError(f"no baselines for target {target!r}; known: {sorted(BASELINES)}")
    return [cls(horizon_days=horizon_days, seed=seed) for cls in BASELINES[target]]


__all__ = [
    "BASELINES",
    "CHURN_SCORES",
    "SURVIVAL_TARGETS",
    "BGNBDBaseline",
    "BGNBDChurnBaseline",
    "ChannelRateBaseline",
    "CoxBaseline",
    "LogisticBaseline",
    "MissingColumnsError",
    "RecencyFrequencyRule",
    "StageCumulativeIncidence",
    "make_baselines",
]
