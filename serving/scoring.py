"""Scoring people with the champions: the plain library behind `radar score` and the API.

Features come from the one pipeline; each target's champion turns them into model outputs
(``TargetBundle.predict``), and this module adds what a salesperson reads: the 0-100 score,
percentile, grade and expected value. It knows nothing of HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from features.contract import CRMData
from features.pipeline import DEAL_COLUMN, OPEN_DEAL_ID, build_deal_features, build_features
from radar.config import Settings
from features.rows import FeatureRows
from serving.explain import predict_and_explain
from training.bundle import TargetBundle, grade
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


def target_rows(
    target: str, data: CRMData, features: pd.DataFrame, as_of: pd.Timestamp, settings: Settings
) -> pd.DataFrame:
    """The rows a target scores at ``as_of``: its eligible people's features, and for
    time to close one row per open deal (``features.pipeline.build_deal_features``)."""
    people = eligible(target, data, features, as_of, settings)
    if target == "time_to_close":
        return build_deal_features(data, as_of, settings.features, person_features=features.loc[people])
    return features.loc[people]


@dataclass(frozen=True)
class ValueBasis:
    """What expected values read from the whole scored population rather than one row:
    the mean order of buyers (for people without one of their own) and what a customer
    spends in a year. Computed once over everyone's features, so a batch scored in parts
    (the Spark engine) values each row exactly as a single pass would."""

    typical_order: float
    customer_year_value: float

    @classmethod
    def of(cls, features: pd.DataFrame) -> ValueBasis:
        customers = features[features["n_paid_orders"] > 0]
        worth = customers["paid_amount_365d"].mean() if len(customers) else 0.0
        return cls(
            typical_order=float(features["paid_amount_mean"].mean(skipna=True)),
            customer_year_value=float(worth) if np.isfinite(worth) else 0.0,
        )

    @classmethod
    def stored(cls, population: dict[str, float]) -> ValueBasis:
        """From the population figures the feature store keeps with each day."""
        return cls(typical_order=population["typical_order"], customer_year_value=population["customer_worth"])

    def stored_figures(self) -> dict[str, float]:
        """What the feature store keeps (no buyers yet: a typical order of 0, not NaN)."""
        typical = self.typical_order if np.isfinite(self.typical_order) else 0.0
        return {"typical_order": typical, "customer_worth": self.customer_year_value}


def expected_value(target: str, probability: np.ndarray, rows: FeatureRows, basis: ValueBasis) -> np.ndarray:
    """Money at stake behind a probability, from the person's own history where it exists.

    purchase: P × their mean order (else the mean order of all buyers); churn: P × what
    they spent in the last year (the revenue at risk); time to close: P(won by the horizon)
    × the deal's amount; lead: P × the mean first-year spend of customers (what a converted
    lead is worth). The population figures come from ``basis``.
    """
    if target == "purchase_probability":
        own = rows.numbers("paid_amount_mean")
        return probability * np.where(np.isnan(own), basis.typical_order, own)
    if target == "churn_by_indifference":
        return probability * np.nan_to_num(rows.numbers("paid_amount_365d"), nan=0.0)
    if target == "time_to_close":
        return probability * np.nan_to_num(rows.numbers("deal_amount"), nan=0.0)
    return probability * basis.customer_year_value


def score_columns(top_k: int | None = None) -> list[str]:
    """Columns of a score table, with the reason columns when reasons are asked for."""
    return list(SCORE_COLUMNS) + (list(REASON_COLUMNS) if top_k is not None else [])


def score_target(
    target: str,
    champion: Champion,
    rows: pd.DataFrame,
    as_of: pd.Timestamp,
    settings: Settings,
    top_k: int | None = None,
    basis: ValueBasis | None = None,
) -> pd.DataFrame:
    """One target's answers for ``rows`` (from :func:`target_rows`) as a score table; with
    ``top_k``, also each row's top reasons (``reasons``, ``reasons_text``; see
    :mod:`serving.reasons`). Expected values read against ``basis`` (default: ``rows``)."""
    columns = target_answers(target, champion, FeatureRows.from_frame(rows), as_of, settings,
                             basis or ValueBasis.of(rows), top_k)
    return pd.DataFrame(columns).reindex(columns=score_columns(top_k))


def target_answers(
    target: str,
    champion: Champion,
    rows: FeatureRows,
    as_of: pd.Timestamp,
    settings: Settings,
    basis: ValueBasis,
    top_k: int | None = None,
    outputs: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """One target's answers for ``rows``, one array (or list) per score-table column.

    The one scoring path: ``radar score`` (whole frames), the API (a few stored rows, no
    frame) and the Spark engine (``outputs`` computed by the registered model) all end
    here. ``top_k`` adds the reasons; 0 or None skips explaining.
    """
    bundle = champion.bundle
    # One act: the outputs and, with top_k, the reasons (serving.explain).
    explained = predict_and_explain(bundle, rows, top_k, num_threads=0, config=settings.explain, outputs=outputs)
    rows, outputs = explained.rows, explained.outputs
    probability = np.asarray(outputs["probability"], dtype=float)
    percentile = np.round(bundle.percentile(probability), 1)
    columns: dict[str, Any] = {
        "person_id": rows.ids,
        "target": np.full(len(rows), target, dtype=object),
        **{k: np.asarray(v) for k, v in outputs.items() if k != "service_probability"},
        "score": np.round(100 * probability).astype(int),
        "percentile": percentile,
        "grade": grade(percentile, settings.scoring),
        "expected_value": np.round(expected_value(target, probability, rows, basis), 2),
        "model_version": np.full(len(rows), champion.version, dtype=object),
        "as_of": np.full(len(rows), as_of, dtype=object),
    }
    if target == "time_to_close":
        columns["deal_id"] = rows.column(DEAL_COLUMN)
    if "service_probability" in outputs:
        columns["dominant_risk"] = np.where(
            np.asarray(outputs["service_probability"]) > probability, "service", "indifference"
        ).astype(object)
    if explained.reasons is not None:
        columns["reasons"] = explained.reasons.records()
        columns["reasons_text"] = explained.reasons.text()
    elif top_k is not None:
        columns["reasons"] = [[] for _ in range(len(rows))]
        columns["reasons_text"] = ["" for _ in range(len(rows))]
    return columns


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
    basis = ValueBasis.of(features)
    parts = []
    for target, champion in champions.items():
        rows = target_rows(target, data, features, as_of, settings)
        if len(rows):
            parts.append(score_target(target, champion, rows, as_of, settings, top_k, basis))
    if not parts:
        return pd.DataFrame(columns=score_columns(top_k))
    return pd.concat(parts, ignore_index=True)
