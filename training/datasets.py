"""Training rows for each target: features as of a snapshot joined with its labels.

Features come from the one pipeline (``features.pipeline``); labels from
``training.labels``. Rows of several training snapshots are stacked; validation and test
are one snapshot each (see ``training.snapshots``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.contract import CRMData
from features.pipeline import AS_OF_COLUMN, build_deal_features, build_snapshots, concat_features, feature_columns
from radar.config import Settings
from training.labels import (
    label_churn,
    label_lead_quality,
    label_purchase_probability,
    label_time_to_close,
)
from training.snapshots import SnapshotPlan

TARGETS: tuple[str, ...] = ("lead_quality", "purchase_probability", "time_to_close", "churn_by_indifference")
SURVIVAL_TARGETS: tuple[str, ...] = ("time_to_close",)


@dataclass
class TargetRows:
    """One split of one target: features and labels, row-aligned."""

    X: pd.DataFrame
    #: Binary label (0/1); for survival targets, 1 when the deal was won in follow-up.
    y: np.ndarray
    #: Survival only: days of follow-up and how it ended (won / lost / censored).
    duration: np.ndarray | None = None
    event: np.ndarray | None = None
    #: Churn only: 1 when the customer went quiet after a service problem.
    y_service: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.X)

    @property
    def n_positive(self) -> int:
        return int(np.sum(self.y))

    def take(self, mask: np.ndarray) -> "TargetRows":
        """The rows where ``mask`` is True, every field kept aligned."""
        def part(values: np.ndarray | None) -> np.ndarray | None:
            return None if values is None else values[mask]

        return TargetRows(self.X[mask], self.y[mask], part(self.duration), part(self.event), part(self.y_service))


def data_span(data: CRMData) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First event and the exclusive end of the data (the day after the last event).

    A deal's close is an event too: an export taken after a deal closed must not score
    that deal as open. A lead's conversion date is not: exports that stitch a lead funnel
    to later sales carry conversions months after the last lead, and reading the end from
    them would leave the last months without a lead to learn from or to score."""
    stamps = []
    for name, column, outcome in (("leads", "created_at", None), ("orders", "timestamp", None),
                                  ("interactions", "timestamp", None), ("deals", "created_at", "closed_at")):
        table = getattr(data, name)
        if table is not None and len(table):
            last = table[column].max()
            if outcome in table.columns and table[outcome].notna().any():
                last = max(last, table[outcome].max())
            stamps.append((table[column].min(), last))
    if not stamps:
        raise ValueError("no dated events: give at least one of leads, orders, interactions or deals")
    start = min(s for s, _ in stamps)
    end = max(e for _, e in stamps)
    return start, end.normalize() + pd.Timedelta(days=1)


def snapshot_features(data: CRMData, plan: SnapshotPlan, settings: Settings) -> pd.DataFrame:
    """Features at every as-of of the plan, stacked (one encoding of the tables)."""
    return build_snapshots(data, plan.moments, settings.features)


def rows_at(
    target: str,
    data: CRMData,
    features: pd.DataFrame,
    as_of: pd.Timestamp,
    settings: Settings,
    data_end: pd.Timestamp,
) -> TargetRows:
    """The eligible people (or deals) of one target at one snapshot, with labels."""
    cfg = settings.training
    columns = feature_columns(features)
    if target == "purchase_probability":
        y = label_purchase_probability(data, features.index, as_of, cfg.horizon_days)
        return TargetRows(features[columns], y.to_numpy())
    if target == "lead_quality":
        labels = label_lead_quality(data, as_of, cfg.horizon_days)
        return _join(features, columns, labels)
    if target == "churn_by_indifference":
        labels = label_churn(
            data, as_of, cfg.horizon_days, cfg.active_customer_days, settings.features.nps_detractor_max
        )
        rows = _join(features, columns, labels)
        rows.y_service = labels.loc[rows.X.index, "service_churn"].to_numpy()
        return rows
    if target == "time_to_close":
        return _deal_rows(data, features, as_of, settings, data_end)
    raise ValueError(f"unknown target {target!r}; known: {', '.join(TARGETS)}")


def _join(features: pd.DataFrame, columns: list[str], labels: pd.DataFrame) -> TargetRows:
    eligible = labels.index.intersection(features.index)
    return TargetRows(features.loc[eligible, columns], labels.loc[eligible, "label"].to_numpy())


def _deal_rows(
    data: CRMData, features: pd.DataFrame, as_of: pd.Timestamp, settings: Settings, data_end: pd.Timestamp
) -> TargetRows:
    """Every deal open at as_of, one row each (a person with three open deals gives three
    rows): the deal's own features beside its person's, and how the deal ended."""
    deals = build_deal_features(data, as_of, settings.features, person_features=features)
    labels = label_time_to_close(data, as_of, settings.training.horizon_days, data_end)
    labelled = labels.reindex(pd.Index(deals["deal_id"].to_numpy(), name="deal_id"))
    keep = labelled["event"].notna().to_numpy()
    event = labelled["event"].to_numpy()[keep].astype(str)
    return TargetRows(
        deals.iloc[np.flatnonzero(keep)][feature_columns(deals)],
        (event == "won").astype(np.int8),
        duration=labelled["duration_days"].to_numpy(float)[keep],
        event=event,
    )


def stack(parts: list[TargetRows]) -> TargetRows:
    """Training rows of several snapshots as one set."""
    def cat(name: str) -> np.ndarray | None:
        values = [getattr(p, name) for p in parts]
        return None if any(v is None for v in values) else np.concatenate(values)

    return TargetRows(
        X=concat_features([p.X for p in parts]),
        y=np.concatenate([p.y for p in parts]),
        duration=cat("duration"),
        event=cat("event"),
        y_service=cat("y_service"),
    )


def split_rows(
    target: str, data: CRMData, snapshots: pd.DataFrame, plan: SnapshotPlan, settings: Settings
) -> dict[str, TargetRows]:
    """Train (stacked snapshots), validation and test rows of one target.

    In a by-person plan, validation is the held-out people's rows of the training
    snapshots: the same person never sits on both sides.
    """
    def at(moment: pd.Timestamp) -> TargetRows:
        frame = snapshots[snapshots[AS_OF_COLUMN] == moment]
        return rows_at(target, data, frame, moment, settings, plan.data_end)

    train = stack([at(m) for m in plan.train])
    if plan.validation is None:
        held = plan.held_out(train.X.index)
        return {"train": train.take(~held), "validation": train.take(held), "test": at(plan.test)}
    return {"train": train, "validation": at(plan.validation), "test": at(plan.test)}
