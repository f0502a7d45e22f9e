"""Top reasons behind a score, in sentences a salesperson reads.

``explain_top_reasons(bundle, features)`` gives, for every row, the few groups of
features that moved the score most, signed and ordered by the size of their effect:
"opened 6 e-mails in the last 30 days (↑)", "no purchase for 140 days; usually buys every
35 (↓)".

Where the numbers come from
  LightGBM models: TreeSHAP values, exactly those of ``Booster.predict(pred_contrib=True)``
  (the same values the shap package computes), from :mod:`training.treeshap`: per-leaf
  tables checked against pred_contrib for each model, pred_contrib itself where they are
  not equal. The input is a float matrix built the way
  the model's own ``_prepare`` + LightGBM's pandas conversion build it (numeric columns as
  floats, categories as their code in the training category list, unseen or missing as
  NaN), which skips pandas' per-call overhead: explanation cost is the batch cost centre.
  Units are the model's raw score, i.e. log-odds before calibration, and for every row the
  group impacts plus the expected value add up exactly to that raw score.

  time_to_close (HazardModel, multiclass per-period hazards): we explain the *won* class's
  raw score on the row for the first period (``hazard_period = 0``). P(won by the
  horizon) is a product over periods, with no additive decomposition; the first-period
  win hazard is the term every deal has, it moves with the same features in the same
  direction, and its contributions are exact. The period column's own contribution is
  the same kind of constant for every deal, so it is folded into the expected value.

  churn_by_indifference: the bundle's ``model`` is the indifference model (the service
  model only names the dominant risk), so that is what is explained.

  Baselines standing in for a model (no booster) are never given fake SHAP values; see
  :data:`BASELINE_EXPLAINERS`: the observed-rate rules are explained by what they read
  (the cell's rate against the base rate, in log-odds), the others give no reasons and
  :func:`why_no_reasons` says why.

Groups
  Related columns read as one reason (:data:`GROUPS`, data not code): all windows of one
  interaction type are one reason showing the window that moved this row most; last
  purchase, usual gap and overdue ratio are one "purchase rhythm" reason showing "no
  purchase for 140 days; usually buys every 35"; every ``open_deal_*`` column is one deal
  reason; each lead attribute is its own. Sentences come from :mod:`features.catalog`.
"""

from __future__ import annotations

import gc
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import numpy as np
import pandas as pd

from features.catalog import TYPE_PHRASES, describe_pattern, distinct_phrases
from features.rows import FeatureRows
from radar.config import ExplainConfig
from training import treeshap
from training.bundle import TargetBundle
from training.models import as_rows, input_layout
from training.survival import PERIOD_COLUMN

Direction = Literal["up", "down"]
ARROWS: dict[str, str] = {"up": "↑", "down": "↓"}
#: An impact smaller than this is a feature the trees never split on for the row: no reason.
MIN_IMPACT = 1e-9
#: Class of the hazard model whose raw score is explained (training.survival.EVENT_CODES).
WON_CLASS = 1
EPS = 1e-6


@dataclass(frozen=True)
class Reason:
    """One reason behind a score."""

    #: Group name (e.g. "email_open", "purchase_rhythm", "lead_source").
    feature: str
    #: The raw value of the column shown (JSON-friendly: float, int, str or None).
    value: float | int | str | None
    #: Signed contribution to the model's raw score (log-odds), summed over the group.
    impact: float
    #: "up": this raises the score; "down": it lowers it.
    direction: Direction
    #: A plain sentence with the direction arrow.
    text: str

    def to_dict(self) -> dict[str, Any]:
        # By hand: dataclasses.asdict deep-copies every field, a cost paid per reason.
        return {"feature": self.feature, "value": self.value, "impact": self.impact,
                "direction": self.direction, "text": self.text}


# ---------------------------------------------------------------- the groups (data)


@dataclass(frozen=True)
class Group:
    """Columns that read as one reason.

    ``patterns`` are regular expressions matched in full against column names; ``name``
    may use their named groups (``"{type}"`` → "email_open"). ``shown`` names the column
    whose value and phrase the reason shows; without it (or when the model lacks it) the
    column that moved the row's score most is shown, e.g. the most telling window.
    """

    name: str
    patterns: tuple[str, ...]
    shown: str | None = None


_TYPES = "|".join(TYPE_PHRASES)

#: The first group whose pattern matches a column takes it; a column no group matches is
#: a group of its own (tenure_days, is_customer, journey_stage, n_leads…).
GROUPS: tuple[Group, ...] = (
    Group(
        "purchase_rhythm",
        ("days_since_last_paid_order", "days_since_last_paid_order_vs_usual_gap",
         "purchase_gap_mean_days", "purchase_gap_std_days"),
        shown="days_since_last_paid_order",
    ),
    Group("purchase_frequency", ("n_paid_orders", r"n_paid_orders_\d+d", r"paid_order_trend_\d+d_vs_\d+d",
                                 "days_since_first_paid_order")),
    Group("spend", (r"paid_amount_(total|mean|max|\d+d)",)),
    Group("failed_payments", (r"n_failed_payments(_\d+d)?", "failed_amount_unrecovered")),
    Group("refunds", (r"n_refunds(_\d+d)?", "refund_amount_total")),
    # NPS before the per-type family, which would otherwise take n_nps_<d>d.
    Group("nps", (r"n_nps_\d+d", "nps_last_value", "days_since_last_nps", "n_nps_detractor")),
    Group("{type}", (rf"n_(?P<type>{_TYPES})_\d+d",)),
    Group("engagement", (r"n_engagement_\d+d", r"engagement_trend_\d+d_vs_\d+d", "days_since_last_engagement")),
    Group("open_deal", (r"open_deal_.+", "n_open_deals", r"(oldest|newest)_open_deal_age_days",
                        "open_deals_amount_total")),
    Group("deal_history", ("n_deals_won", "n_deals_lost", "won_deals_amount")),
    Group("{column}", (r"(?P<column>lead_.+)",)),
)


def group_of(column: str) -> str:
    """The reason group a feature column belongs to."""
    for group in GROUPS:
        for pattern in group.patterns:
            match = re.fullmatch(pattern, column)
            if match:
                return group.name.format(**match.groupdict())
    return column


def _shown_column(column: str) -> str | None:
    for group in GROUPS:
        if any(re.fullmatch(p, column) for p in group.patterns):
            return group.shown
    return None


@dataclass(frozen=True)
class GroupPlan:
    """Columns → groups for one list of columns, computed once per list."""

    columns: tuple[str, ...]
    names: tuple[str, ...]
    #: Group index of every column.
    of_column: np.ndarray
    #: (columns, groups) 0/1 matrix: which column belongs to which group.
    onehot: np.ndarray
    #: Per group, the column index always shown, or -1 for "the one that moved the row most".
    fixed_shown: np.ndarray
    #: Per group, the indices of its columns.
    members: tuple[np.ndarray, ...]


@lru_cache(maxsize=64)
def group_plan(columns: tuple[str, ...]) -> GroupPlan:
    """How ``columns`` fall into groups (cached: models reuse one column list)."""
    names: list[str] = []
    of_column = np.empty(len(columns), dtype=np.int64)
    for j, column in enumerate(columns):
        name = group_of(column)
        if name not in names:
            names.append(name)
        of_column[j] = names.index(name)
    onehot = np.zeros((len(columns), len(names)))
    onehot[np.arange(len(columns)), of_column] = 1.0
    fixed = np.full(len(names), -1, dtype=np.int64)
    for j, column in enumerate(columns):
        shown = _shown_column(column)
        if shown is not None and shown == column:
            fixed[of_column[j]] = j
    members = tuple(np.flatnonzero(of_column == g) for g in range(len(names)))
    return GroupPlan(tuple(columns), tuple(names), of_column, onehot, fixed, members)


def group_impacts(values: np.ndarray, plan: GroupPlan) -> np.ndarray:
    """Each row's contributions summed per group, (rows, groups).

    Row by row in a fixed order, so a row's impacts do not depend on which rows it is
    explained with: a matrix product's blocking would change the last digit with the batch
    size, and an answer precomputed in a batch must equal the one computed alone."""
    out = np.empty((len(values), len(plan.members)))
    for g, members in enumerate(plan.members):
        out[:, g] = values[:, members].sum(axis=1)
    return out


# ---------------------------------------------------------------- contributions


@dataclass(frozen=True)
class Contributions:
    """Per-column contributions (rows, columns) and the expected value per row."""

    columns: tuple[str, ...]
    values: np.ndarray
    expected: np.ndarray
    #: The model's input matrix and where each numeric column sits in it, so the values a
    #: reason shows are read from it rather than from the frame again (LightGBM only).
    inputs: np.ndarray | None = None
    input_at: Mapping[str, int] | None = None


def booster_matrix(model: Any, features: pd.DataFrame | FeatureRows) -> np.ndarray:
    """The float matrix LightGBM sees when ``model`` predicts on ``features``
    (``training.models.InputLayout``: the one input preparation of prediction and reasons)."""
    return input_layout(model).matrix(as_rows(features))


def explainer_of(model: Any, config: ExplainConfig) -> treeshap.Explainer | None:
    """The TreeSHAP explainer of a LightGBM model's explained output (the won class of a
    hazard model), made once per model; None without a booster."""
    booster = getattr(model, "booster_", None)
    if booster is None:
        return None
    return treeshap.explainer(booster, WON_CLASS if hasattr(model, "n_periods") else 0, method=config.method,
                              tolerance=config.tolerance, check_rows=config.check_rows)


def _lightgbm_contributions(model: Any, rows: FeatureRows, num_threads: int, config: ExplainConfig) -> Contributions:
    columns = tuple(model.feature_names_)
    matrix = booster_matrix(model, rows)
    booster = model.booster_
    hazard = hasattr(model, "n_periods")
    if hazard:
        # Hazard model: the first-period row of every deal; the period is the last column.
        if booster.feature_name()[-1] != PERIOD_COLUMN:
            raise ValueError(f"hazard booster's last column is not {PERIOD_COLUMN!r}")
        matrix = np.hstack([matrix, np.zeros((len(matrix), 1))])
    explainer = explainer_of(model, config)
    assert explainer is not None
    raw = explainer.contributions(matrix, num_threads)
    if hazard:
        values, expected = raw[:, : len(columns)], raw[:, -1] + raw[:, -2]
    else:
        values, expected = raw[:, :-1], raw[:, -1]
    return Contributions(columns, values, expected, matrix, input_layout(model).numeric_index)


# ---------------------------------------------------------------- baselines


def _logit(p: np.ndarray | float) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), EPS, 1 - EPS)
    return np.log(p / (1 - p))


def _rf_rule_contributions(model: Any, features: pd.DataFrame) -> Contributions:
    """Recency × frequency cell rate vs the base rate, split in two log-odds steps: the
    recency bucket's rate vs the base rate (recency), then the cell's rate vs its recency
    bucket's (frequency). The two add up to logit(cell rate) - logit(base rate)."""
    r, f = model.cells(features)
    rows = model.cell_rows_
    totals = rows.sum(axis=1)
    bucket_rate = np.where(
        totals > 0, (model.rate_table_ * rows).sum(axis=1) / np.maximum(totals, 1), model.global_rate_
    )
    base = _logit(model.global_rate_)
    recency = _logit(bucket_rate[r]) - base
    frequency = _logit(model.rate_table_[r, f]) - _logit(bucket_rate[r])
    values = np.column_stack([recency, frequency])
    return Contributions(("days_since_last_paid_order", "n_paid_orders"), values, np.full(len(features), float(base)))


def _channel_rate_contributions(model: Any, features: pd.DataFrame) -> Contributions:
    """The source channel's smoothed rate vs the base rate, in log-odds."""
    base = _logit(model.global_rate_)
    values = (_logit(model.predict_raw(features)) - base).reshape(-1, 1)
    return Contributions((model.column,), values, np.full(len(features), float(base)))


def _stage_cif_contributions(model: Any, features: pd.DataFrame) -> Contributions:
    """The stage's P(won by the horizon) vs all deals pooled, in log-odds."""
    from training.baselines.survival import step_at

    horizon = np.array([float(model.horizon_days)])
    pooled = _logit(step_at(*model.pooled_curve_, horizon)[0])
    values = (_logit(model.won_by(features, horizon)[:, 0]) - pooled).reshape(-1, 1)
    return Contributions(("open_deal_stage",), values, np.full(len(features), float(pooled)))


#: Baselines that can say which of their inputs moved a row, by their ``name``.
BASELINE_EXPLAINERS: dict[str, Callable[[Any, pd.DataFrame], Contributions]] = {
    "rf_rule": _rf_rule_contributions,
    "channel_rate": _channel_rate_contributions,
    "stage_cif": _stage_cif_contributions,
}

#: Why the other baselines give no reasons (rather than invented ones).
NO_REASONS: dict[str, str] = {
    "bgnbd": "BG/NBD reads recency, frequency and age through a nonlinear likelihood; "
             "it has no per-feature decomposition, and none is invented",
    "bgnbd_churn": "BG/NBD reads recency, frequency and age through a nonlinear likelihood; "
                   "it has no per-feature decomposition, and none is invented",
    "logistic": "the logistic baseline's one-hot and scaled inputs are not explained feature "
                "by feature yet; no reasons rather than approximate ones",
    "cox": "the Cox baseline's cumulative incidence mixes two hazard models; no exact "
           "per-feature split, so no reasons",
}


def why_no_reasons(bundle: TargetBundle) -> str | None:
    """Why ``bundle`` gives no reasons, or None when it does."""
    if getattr(bundle.model, "booster_", None) is not None:
        return None
    name = getattr(bundle.model, "name", bundle.model_type)
    if name in BASELINE_EXPLAINERS:
        return None
    return NO_REASONS.get(name, f"{name} has no way to attribute a score to features")


def contributions(
    bundle: TargetBundle, features: pd.DataFrame | FeatureRows, num_threads: int = 1,
    config: ExplainConfig | None = None,
) -> Contributions | None:
    """Per-column contributions of every row, or None (see :func:`why_no_reasons`).
    LightGBM models: ``training.treeshap`` (its checked tables or pred_contrib, ``config``)."""
    model = bundle.model
    rows = as_rows(features)
    if getattr(model, "booster_", None) is not None:
        return _lightgbm_contributions(model, rows, num_threads, config or ExplainConfig())
    explain = BASELINE_EXPLAINERS.get(getattr(model, "name", bundle.model_type))
    return None if explain is None else explain(model, rows.to_frame())


def grouped_impacts(bundle: TargetBundle, features: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray] | None:
    """Impact of every group on every row (rows × groups) and the expected value per row:
    the two add up to the model's raw score. None when the bundle has no reasons."""
    contrib = contributions(bundle, features)
    if contrib is None:
        return None
    plan = group_plan(contrib.columns)
    return pd.DataFrame(group_impacts(contrib.values, plan), index=features.index, columns=list(plan.names)), contrib.expected


# ---------------------------------------------------------------- sentences, by column


@dataclass(frozen=True)
class ReasonTable:
    """The top reasons of a batch, column by column: row i has ``counts[i]`` reasons, in
    the first cells of row i of every (rows, top_k) array, largest |impact| first."""

    counts: np.ndarray
    #: Group names, JSON-ready values, summed impacts, and the sentences with their arrow.
    features: np.ndarray
    values: np.ndarray
    impacts: np.ndarray
    texts: np.ndarray

    @classmethod
    def empty(cls, n: int, top_k: int = 0) -> "ReasonTable":
        nothing = np.empty((n, top_k), dtype=object)
        return cls(np.zeros(n, dtype=np.int64), nothing, nothing, np.zeros((n, top_k)), nothing)

    def __len__(self) -> int:
        return len(self.counts)

    def _cells(self) -> tuple[np.ndarray, list[int]]:
        """Row-major positions of the filled cells, and where each row's run ends."""
        top_k = self.texts.shape[1]
        filled = np.arange(top_k) < self.counts[:, None]
        return np.flatnonzero(filled), np.cumsum(self.counts).tolist()

    def reasons(self) -> list[list[Reason]]:
        cells, ends = self._cells()
        with _no_gc():
            flat = [Reason(f, v, i, "up" if i > 0 else "down", t) for f, v, i, t in zip(
                self.features.ravel()[cells].tolist(), self.values.ravel()[cells].tolist(),
                self.impacts.ravel()[cells].tolist(), self.texts.ravel()[cells].tolist())]
            return _split(flat, ends)

    def records(self) -> list[list[dict[str, Any]]]:
        """Each row's reasons as the dicts of the API and score tables (``Reason.to_dict``)."""
        cells, ends = self._cells()
        impacts = self.impacts.ravel()[cells]
        with _no_gc():
            flat = [{"feature": f, "value": v, "impact": i, "direction": d, "text": t} for f, v, i, d, t in zip(
                self.features.ravel()[cells].tolist(), self.values.ravel()[cells].tolist(), impacts.tolist(),
                np.where(impacts > 0, "up", "down").tolist(), self.texts.ravel()[cells].tolist())]
            return _split(flat, ends)

    def text(self) -> np.ndarray:
        """One cell per row for a CSV: the sentences joined with "; " (:func:`reasons_text`)."""
        out = np.full(len(self), "", dtype=object)
        for j in range(self.texts.shape[1]):
            has = self.counts > j
            if not has.any():
                break
            joined = self.texts[has, j] if j == 0 else out[has] + "; " + self.texts[has, j]
            out[has] = joined
        return out


@contextmanager
def _no_gc() -> Iterator[None]:
    """The cycle collector paused while a batch's answers are packed: hundreds of thousands
    of new dicts and lists would set it off again and again (each pass walking all of them,
    several times the packing's own cost), and none of them can form a cycle."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def _split(flat: list[Any], ends: list[int]) -> list[list[Any]]:
    out, start = [], 0
    for end in ends:
        out.append(flat[start:end])
        start = end
    return out


def _json_values(values: np.ndarray) -> np.ndarray:
    """:func:`_json_value` of every value of a column (an object array), by column: whole
    numbers as ints, missing as None, text as text."""
    out = np.empty(len(values), dtype=object)
    if values.dtype.kind in "fiub":
        x = values.astype(np.float64, copy=False)
        missing = np.isnan(x)
        with np.errstate(invalid="ignore"):
            whole = ~missing & (x == np.floor(x)) & (np.abs(x) < 2**53)
        out[whole] = x[whole].astype(np.int64).tolist()
        rest = ~missing & ~whole
        out[rest] = x[rest].tolist()
        out[missing] = None
        return out
    # Objects: one conversion per distinct value (missing values are one of them).
    codes, uniques = pd.factorize(pd.Series(values, dtype=object))
    converted = np.array([_json_value(u) for u in uniques] + [None], dtype=object)
    out[:] = converted[codes]
    return out


def _column_values(name: str, rows: FeatureRows, contrib: Contributions) -> np.ndarray | None:
    """A column of the batch: numeric model inputs straight from the input matrix, anything
    else (category values, columns the model does not read) from the rows; None if absent."""
    if contrib.inputs is not None and contrib.input_at and name in contrib.input_at:
        return contrib.inputs[:, contrib.input_at[name]]
    return rows.column(name) if name in rows else None


def reason_table(contrib: Contributions, rows: FeatureRows, top_k: int) -> ReasonTable:
    """The ``top_k`` reasons of every row from its contributions, with no Python per row.

    Per row, groups are ranked by |impact|, and the first 2 × ``top_k`` that moved the score
    (|impact| ≥ MIN_IMPACT) are candidates; each shows its fixed column or the member that
    moved the row most. Two candidates that read the very same sentence ("has never bought"
    from both the purchase rhythm and the purchase count) state one fact: they become one
    reason named after the first, with the impacts added. The ``top_k`` largest remain.
    Sentences are written per shown column for all its rows at once (``distinct_phrases``),
    so Python runs per column and distinct sentence, never per row.
    """
    n = len(contrib.values)
    plan = group_plan(contrib.columns)
    impacts = group_impacts(contrib.values, plan)
    n_groups = impacts.shape[1]
    if n == 0 or n_groups == 0:
        return ReasonTable.empty(n, top_k)
    # A few spare candidates: two groups can say the same thing and be merged (below).
    n_candidates = min(2 * top_k, n_groups)
    order = np.argsort(-np.abs(impacts), axis=1, kind="stable")[:, :n_candidates]
    candidate = np.take_along_axis(impacts, order, axis=1)
    # Sorted by size: once one did not move the score, neither did the rest.
    alive = np.abs(candidate) >= MIN_IMPACT
    # The candidates, one cell each (row-major), and the column each one shows: its group's
    # fixed column, or the member that moved the row most (the first of equals).
    at_rows, at_slots = np.nonzero(alive)
    shown = np.empty(len(at_rows), dtype=np.int64)
    for g, cells in _runs(order[at_rows, at_slots], n_groups):
        members, fixed = plan.members[g], plan.fixed_shown[g]
        if fixed >= 0 or len(members) == 1:
            shown[cells] = fixed if fixed >= 0 else members[0]
        else:
            moved = np.abs(contrib.values[at_rows[cells][:, None], members])
            shown[cells] = members[np.argmax(moved, axis=1)]
    # Each shown column's sentences for all its cells at once; every distinct sentence gets a
    # number, so equal sentences are found by comparing numbers.
    sentence = np.empty(len(at_rows), dtype=np.int64)
    value = np.empty(len(at_rows), dtype=object)
    vocabulary: dict[str, int] = {}
    for column, cells in _runs(shown, len(plan.columns)):
        name = plan.columns[column]
        r = at_rows[cells]
        column_values = _column_values(name, rows, contrib)
        assert column_values is not None  # a model's own column is always in its rows
        entry = describe_pattern(name)
        context = {}
        for other in entry.render.context if entry is not None else ():
            other_values = _column_values(other, rows, contrib)
            if other_values is not None:
                context[other] = other_values[r]
        said, codes = distinct_phrases(name, column_values[r], context)
        numbers = np.array([vocabulary.setdefault(text, len(vocabulary)) for text in said.tolist()], dtype=np.int64)
        sentence[cells] = numbers[codes]
        value[cells] = _json_values(column_values[r])
    cell = np.full(order.shape, -1, dtype=np.int64)
    cell[at_rows, at_slots] = np.arange(len(at_rows))
    said_as = np.where(alive, 0, -1)
    said_as[at_rows, at_slots] = sentence
    # Candidates that read the same sentence on a row: the first takes the others' impacts.
    total = np.where(alive, candidate, 0.0)
    for c in range(1, n_candidates):
        for first in range(c):
            same = alive[:, c] & alive[:, first] & (said_as[:, c] == said_as[:, first])
            if same.any():
                total[same, first] += candidate[same, c]
                alive[same, c] = False
    rank = np.argsort(np.where(alive, -np.abs(total), np.inf), axis=1, kind="stable")[:, :top_k]
    counts = np.minimum(alive.sum(axis=1), top_k).astype(np.int64)
    filled = np.arange(rank.shape[1]) < counts[:, None]
    kept = np.where(filled, np.take_along_axis(total, rank, axis=1), 0.0)
    picked = np.take_along_axis(cell, rank, axis=1)[filled]
    # The sentence with its arrow, shared by every reason that reads it.
    words = list(vocabulary)
    with_arrow = np.array([f"{w} ({ARROWS['down']})" for w in words] + [f"{w} ({ARROWS['up']})" for w in words]
                          + [""], dtype=object)
    texts = np.full(rank.shape, len(with_arrow) - 1, dtype=np.int64)
    texts[filled] = sentence[picked] + np.where(kept[filled] > 0, len(words), 0)
    features = np.full(rank.shape, None, dtype=object)
    features[filled] = np.asarray(plan.names, dtype=object)[np.take_along_axis(order, rank, axis=1)[filled]]
    values = np.full(rank.shape, None, dtype=object)
    values[filled] = value[picked]
    return ReasonTable(counts=counts, features=features, values=values, impacts=kept, texts=with_arrow[texts])


def _runs(keys: np.ndarray, size: int) -> Iterator[tuple[int, np.ndarray]]:
    """For each key in ``range(size)`` that occurs, the positions holding it."""
    by_key = np.argsort(keys, kind="stable")
    bounds = np.searchsorted(keys[by_key], np.arange(size + 1))
    for key in np.flatnonzero(np.diff(bounds)).tolist():
        yield key, by_key[bounds[key] : bounds[key + 1]]


def _json_value(value: object) -> float | int | str | None:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        number = float(value)
        if math.isnan(number):
            return None
        return int(number) if number.is_integer() and abs(number) < 2**53 else number
    return str(value)


# ---------------------------------------------------------------- the API


def top_reasons(
    bundle: TargetBundle, features: pd.DataFrame | FeatureRows, top_k: int = 5, *, num_threads: int = 1,
    config: ExplainConfig | None = None,
) -> ReasonTable:
    """The ``top_k`` reasons of every row of ``features``, column by column (see
    :func:`reason_table`); none when the bundle cannot explain itself (:func:`why_no_reasons`)."""
    if top_k < 1 or len(features) == 0:
        return ReasonTable.empty(len(features))
    rows = as_rows(features)
    contrib = contributions(bundle, rows, num_threads, config)
    if contrib is None:
        return ReasonTable.empty(len(features), top_k)
    return reason_table(contrib, rows, top_k)


def explain_top_reasons(
    bundle: TargetBundle, features: pd.DataFrame | FeatureRows, top_k: int = 5, *, num_threads: int = 1,
    config: ExplainConfig | None = None,
) -> list[list[Reason]]:
    """The ``top_k`` reasons of every row of ``features``, largest |impact| first.

    One contribution call for all rows; a row gets fewer than ``top_k`` reasons when fewer
    groups moved its score, and none when the bundle cannot explain itself
    (:func:`why_no_reasons`). ``num_threads=1`` suits a serving worker (one thread for the
    contributions); batch jobs may raise it (0: every core).
    """
    return top_reasons(bundle, features, top_k, num_threads=num_threads, config=config).reasons()


def reasons_text(reasons: Sequence[Reason]) -> str:
    """One cell for a CSV: the sentences joined with "; "."""
    return "; ".join(reason.text for reason in reasons)


def reasons_columns(bundle: TargetBundle, features: pd.DataFrame, top_k: int) -> pd.DataFrame:
    """``reasons`` (list of dicts per row) and ``reasons_text`` columns for a score table."""
    table = top_reasons(bundle, features, top_k)
    return pd.DataFrame({"reasons": table.records(), "reasons_text": table.text()}, index=features.index)
