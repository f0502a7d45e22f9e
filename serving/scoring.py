"""Scoring people with the champions: the plain library behind `radar score` and the API.

Features come from the one pipeline; each target's champion turns them into model outputs
(``TargetBundle.predict``), and this module adds what a salesperson reads: the 0-100 score,
percentile, grade and expected value. It knows nothing of HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.contract import CRMData
from features.pipeline import OPEN_DEAL_ID, build_features
from radar.config import Settings
from serving.reasons import reasons_columns
from training.bundle import TargetBundle, with_grades
from training.datasets import TARGETS
from training.labels import active_customers, open_leads

#: Columns of a score table, in order (survival and churn columns are empty elsewhere).
SCORE_COLUMNS: tuple[str, ...] = (
    "person_id",
    "target",
    "probability",
    "score",
    "percentile",
    "grade",
    "expected_value",
    "p_won_30d",
    "p_won_60d",
    "p_won_90d",
    "median_days_to_win",
    "deal_id",
    "dominant_risk",
    "model_version",
    "as_of",
)
#: Columns added when reasons are asked for (``top_k``): a list of dicts and one sentence cell.
REASON_COLUMNS: tuple[str, ...] = ("reasons", "reasons_text")


@dataclass
class Champion:
    """A loaded champion and the registry facts the answers carry."""

    bundle: TargetBundle
    version: str


def load_champions(settings: Settings, targets: tuple[str, ...] = TARGETS) -> dict[str, Champion]:
    """The champion of each target that has one (targets without are left out)."""
    from training.registry import load_bundle_with_info

    champions = {}
    for target in targets:
        try:
            bundle, info = load_bundle_with_info(target, "champion", tracking_uri=settings.tracking_uri)
        except LookupError:
            continue
        champions[target] = Champion(bundle, str(info.version))
    return champions


def eligible(target: str, data: CRMData, features: pd.DataFrame, as_of: pd.Timestamp, settings: Settings) -> pd.Index:
    """Who a target scores at ``as_of``: the same populations training learnt on."""
    cfg = settings.training
    if target == "lead_quality":
        people = open_leads(data, as_of, cfg.horizon_days).index
    elif target == "churn_by_indifference":
        people = active_customers(data, as_of, cfg.horizon_days, cfg.active_customer_days)
    elif target == "time_to_close":
        people = features.index[features[OPEN_DEAL_ID].notna()]
    else:
        people = features.index
    return features.index.intersection(people)


def expected_value(target: str, outputs: pd.DataFrame, features: pd.DataFrame) -> np.ndarray:
    """Money at stake behind a probability, from the person's own history where it exists.

    purchase: P × their mean order (else the mean order of all buyers); churn: P × what
    they spent in the last year (the revenue at risk); time to close: P(won by the horizon)
    × the deal's amount; lead: P × the mean first-year spend of customers (what a converted
    lead is worth).
    """
    p = outputs["probability"].to_numpy(dtype=float)
    rows = features.loc[outputs.index]
    if target == "purchase_probability":
        typical = features["paid_amount_mean"].mean(skipna=True)
        return p * rows["paid_amount_mean"].fillna(typical).to_numpy()
    if target == "churn_by_indifference":
        return p * rows["paid_amount_365d"].fillna(0).to_numpy()
    if target == "time_to_close":
        return p * rows["open_deal_amount"].fillna(0).to_numpy()
    customers = features[features["n_paid_orders"] > 0]
    worth = customers["paid_amount_365d"].mean() if len(customers) else 0.0
    return p * (worth if np.isfinite(worth) else 0.0)


def score_columns(top_k: int | None = None) -> list[str]:
    """Columns of a score table, with the reason columns when reasons are asked for."""
    return list(SCORE_COLUMNS) + (list(REASON_COLUMNS) if top_k is not None else [])


def score_target(
    target: str,
    champion: Champion,
    features: pd.DataFrame,
    people: pd.Index,
    as_of: pd.Timestamp,
    settings: Settings,
    top_k: int | None = None,
) -> pd.DataFrame:
    """One target's answers for ``people`` (rows of ``features``); with ``top_k``, also
    each row's top reasons (``reasons``, ``reasons_text``; see :mod:`serving.reasons`)."""
    bundle = champion.bundle
    rows = features.loc[people]
    outputs = with_grades(bundle, bundle.predict(rows), settings.scoring)
    outputs["expected_value"] = np.round(expected_value(target, outputs, features), 2)
    if target == "time_to_close":
        outputs["deal_id"] = rows[OPEN_DEAL_ID].astype(object)
    if "service_probability" in outputs.columns:
        outputs["dominant_risk"] = np.where(
            outputs["service_probability"] > outputs["probability"], "service", "indifference"
        )
    outputs["target"] = target
    outputs["model_version"] = champion.version
    outputs["as_of"] = as_of
    if top_k is not None:
        reasons = reasons_columns(bundle, rows, top_k)  # rows and outputs share one order
        outputs["reasons"] = reasons["reasons"].to_numpy()
        outputs["reasons_text"] = reasons["reasons_text"].to_numpy()
    outputs.index.name = "person_id"
    return outputs.reset_index().reindex(columns=score_columns(top_k))


def score_people(
    data: CRMData,
    as_of: pd.Timestamp,
    champions: dict[str, Champion],
    settings: Settings,
    persons: list[str] | None = None,
    top_k: int | None = None,
) -> pd.DataFrame:
    """Every eligible person (or the given ``persons``) scored for every champion, long
    format; ``top_k`` adds each row's top reasons (None, the default, skips explaining)."""
    features = build_features(data, as_of, settings.features, persons=persons)
    parts = []
    for target, champion in champions.items():
        people = eligible(target, data, features, as_of, settings)
        if len(people):
            parts.append(score_target(target, champion, features, people, as_of, settings, top_k))
    if not parts:
        return pd.DataFrame(columns=score_columns(top_k))
    return pd.concat(parts, ignore_index=True)
