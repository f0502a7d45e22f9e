"""Train and score from any flat table: one row per lead or customer and a label column.

This is the path for a user who arrives with a spreadsheet rather than a CRM export in the
data contract: ``radar train --table FILE --label COL`` and ``radar score --table FILE``.
Nothing needs code: numbers are read as numbers, text as categories, identifiers are
dropped, and the leakage guard (:mod:`training.leakage`) keeps out columns that give the
answer away. Every decision is reported in plain words.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from features.errors import RadarInputError
from features.io import read_table
from features.mapping import DEFAULT_MISSING_MARKERS
from radar.config import ScoringConfig, Settings
from training.bundle import TargetBundle, with_grades
from training.gate import MODEL, GateDecision, Outcomes, decide
from training.leakage import LeakageReport, LeakageSettings, check_leakage
from training.models import ProbabilityModel
from training.pipeline import comparison_table

log = logging.getLogger(__name__)

#: Text levels rarer than this share of rows are pooled into OTHER_LEVEL: a level seen a
#: handful of times teaches nothing and only lets the trees memorise rows.
RARE_LEVEL_SHARE = 0.005
OTHER_LEVEL = "other"
#: Share of filled cells that must parse as numbers for a text column to be read as numeric.
NUMERIC_PARSE_SHARE = 0.98
#: Share of distinct values (among filled cells) from which a column is unique per row.
ID_UNIQUE_SHARE = 0.95
#: Share of UUID- or hash-looking values from which a text column is an identifier.
ID_PATTERN_SHARE = 0.90
_ID_PATTERN = re.compile(
    r"^(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{16,}|[A-Za-z0-9+/]{22,}={0,2})$",
    re.IGNORECASE,
)

_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,3})?"

_POSITIVE_LABELS = frozenset({"1", "1.0", "yes", "y", "true", "t"})
_NEGATIVE_LABELS = frozenset({"0", "0.0", "no", "n", "false", "f"})


# --- The table -------------------------------------------------------------------------------


@dataclass
class FlatSchema:
    """How raw cells become model features; learned once, applied at training and scoring."""

    label: str
    id_column: str | None
    missing_markers: tuple[str, ...]
    numeric: list[str]
    #: Categorical column → its levels (rare ones pooled into OTHER_LEVEL).
    categories: dict[str, list[str]]
    #: Column → why it is not a feature (identifier, empty, constant).
    dropped: dict[str, str]

    @property
    def features(self) -> list[str]:
        return [*self.numeric, *self.categories]

    def restricted(self, columns: Sequence[str]) -> "FlatSchema":
        """The same schema keeping only ``columns`` as features."""
        keep = set(columns)
        return replace(
            self,
            numeric=[c for c in self.numeric if c in keep],
            categories={c: v for c, v in self.categories.items() if c in keep},
        )

    def prepare(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Typed features from raw cells (text or native); absent columns become missing."""
        markers = _marker_set(self.missing_markers)
        out = {}
        for column in self.numeric:
            series = frame[column] if column in frame.columns else pd.Series(np.nan, index=frame.index)
            out[column] = _to_number(_clean(series, markers))
        for column, levels in self.categories.items():
            series = frame[column] if column in frame.columns else pd.Series(np.nan, index=frame.index)
            out[column] = _to_levels(_clean(series, markers), levels)
        return pd.DataFrame(out, index=frame.index)


@dataclass
class FlatTable:
    """A flat table as read: typed features of accepted rows, their labels, and the rejects."""

    path: Path
    schema: FlatSchema
    #: Typed features of accepted rows (index 0..n-1).
    X: pd.DataFrame
    y: np.ndarray
    #: 1-based data row number of each accepted row in the file (header not counted).
    row_numbers: np.ndarray
    ids: pd.Series | None
    #: One line per rejected row: row_number, label value, reason.
    rejects: pd.DataFrame
    n_read: int
    messages: list[str] = field(default_factory=list)

    @property
    def n_accepted(self) -> int:
        return len(self.y)

    @property
    def n_rejected(self) -> int:
        return len(self.rejects)

    @property
    def positive_rate(self) -> float:
        return float(self.y.mean()) if len(self.y) else float("nan")


def _marker_set(markers: Iterable[str]) -> frozenset[str]:
    return frozenset(str(m).strip().casefold() for m in markers)


def _clean(series: pd.Series, markers: frozenset[str]) -> pd.Series:
    """Trimmed text (or the native numbers) with missing markers turned into NaN."""
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return series.astype(float)
    text = series.astype("string").str.strip()
    return text.mask(text.isna() | text.str.casefold().isin(markers)).astype(object)


def _to_number(series: pd.Series) -> pd.Series:
    """Numbers from cells; anything that is not plainly a number becomes NaN."""
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return series.astype(float)
    text = series.astype("string").str.strip()
    # Only well-formed numbers reach pandas: its parser crashes (segfault, pandas 2.3) on
    # hash-like cells such as "0000000033236324e609744", read as a vast exponent.
    plain = text.str.fullmatch(_NUMBER).fillna(False).to_numpy(dtype=bool)
    return pd.to_numeric(text.astype(object).where(plain, None), errors="coerce").astype(float)


def _to_levels(series: pd.Series, levels: list[str]) -> pd.Series:
    """Categorical with exactly the training levels; unseen values pool into "other" if it exists."""
    text = series.astype("string").astype(object).where(series.notna(), None)
    if OTHER_LEVEL in levels:
        text = text.where(text.isin(levels) | text.isna(), OTHER_LEVEL)
    return text.astype(pd.CategoricalDtype(levels))


# --- Reading -------------------------------------------------------------------------------


def parse_labels(values: pd.Series, markers: frozenset[str]) -> tuple[pd.Series, pd.Series]:
    """Labels as 1/0 (NaN where unusable) and, per row, why a label is unusable (NaN if fine)."""
    text = values.astype("string").str.strip().str.casefold()
    label = pd.Series(np.nan, index=values.index, dtype=float)
    label[text.isin(_POSITIVE_LABELS).fillna(False).to_numpy(dtype=bool)] = 1.0
    label[text.isin(_NEGATIVE_LABELS).fillna(False).to_numpy(dtype=bool)] = 0.0
    missing = (text.isna() | text.isin(markers)).fillna(True).to_numpy(dtype=bool)
    reason = pd.Series(np.nan, index=values.index, dtype=object)
    bad = label.isna().to_numpy() & ~missing
    reason[missing] = "label is missing"
    reason[bad] = "label " + values[bad].astype(str).str.slice(0, 40).map(repr) + (
        " is not binary (expected Yes/No, 1/0 or True/False)"
    )
    return label, reason


def _id_reason(series: pd.Series, is_numeric: bool) -> str | None:
    """Why a column looks like an identifier, or None."""
    filled = series.dropna()
    if len(filled) < 20:
        return None
    distinct = filled.nunique() / len(filled)
    if is_numeric:
        values = filled.astype(float)
        if not np.allclose(values, np.round(values)):
            # Measurements with decimals are naturally unique; they are not identifiers.
            return None
        steps = np.diff(values.to_numpy())
        if distinct >= 0.9 and max((steps > 0).mean(), (steps < 0).mean()) >= 0.99:
            return "a running integer sequence (identifier)"
        if distinct >= ID_UNIQUE_SHARE:
            return f"a unique integer per row ({filled.nunique()} distinct in {len(filled)} rows)"
        return None
    text = filled.astype(str)
    if text.str.match(_ID_PATTERN).mean() >= ID_PATTERN_SHARE:
        return "values look like UUIDs or hashes (identifier)"
    if distinct >= ID_UNIQUE_SHARE:
        return f"unique per row ({filled.nunique()} distinct in {len(filled)} rows)"
    return None


def _infer_column(series: pd.Series, n_rows: int, rare_share: float) -> tuple[str, Any]:
    """("numeric", None), ("category", levels) or ("drop", reason) for one cleaned column."""
    filled = series.dropna()
    if filled.empty:
        return "drop", "always empty"
    numbers = _to_number(filled)
    is_numeric = numbers.notna().mean() >= NUMERIC_PARSE_SHARE
    reason = _id_reason(numbers if is_numeric else filled, is_numeric)
    if reason:
        return "drop", reason
    if (numbers if is_numeric else filled).nunique() < 2:
        return "drop", "a single value only"
    if is_numeric:
        return "numeric", None
    counts = filled.astype(str).value_counts()
    common = sorted(counts.index[counts >= rare_share * n_rows])
    rare = counts.index.difference(common)
    levels = common + ([OTHER_LEVEL] if len(rare) and OTHER_LEVEL not in common else [])
    if len(levels) < 2:
        return "drop", "a single common value only"
    return "category", levels


def infer_schema(
    frame: pd.DataFrame,
    label: str,
    id_column: str | None,
    missing_markers: Sequence[str],
    rare_share: float = RARE_LEVEL_SHARE,
) -> FlatSchema:
    """Decide, per column, number / category / dropped. Uses no labels, so it cannot leak."""
    markers = _marker_set(missing_markers)
    numeric: list[str] = []
    categories: dict[str, list[str]] = {}
    dropped: dict[str, str] = {}
    for column in frame.columns:
        if column == label:
            continue
        if column == id_column:
            dropped[column] = "the id column"
            continue
        kind, detail = _infer_column(_clean(frame[column], markers), len(frame), rare_share)
        if kind == "numeric":
            numeric.append(column)
        elif kind == "category":
            categories[column] = detail
        else:
            dropped[column] = detail
    return FlatSchema(label, id_column, tuple(missing_markers), numeric, categories, dropped)


def _find_column(frame: pd.DataFrame, name: str, what: str, path: Path) -> str:
    """The frame's column called ``name`` (exactly, else ignoring case and spaces)."""
    if name in frame.columns:
        return name
    key = name.strip().casefold()
    matches = [c for c in frame.columns if str(c).strip().casefold() == key]
    if len(matches) == 1:
        return matches[0]
    shown = ", ".join(repr(str(c)) for c in list(frame.columns)[:30])
    raise RadarInputError(f"no {what} column {name!r}; the columns are: {shown}", path)


def load_flat_table(
    path: Path | str,
    label: str,
    id_column: str | None = None,
    missing_markers: Sequence[str] = DEFAULT_MISSING_MARKERS,
    rare_share: float = RARE_LEVEL_SHARE,
) -> FlatTable:
    """Read a flat table with a binary label; rows with an unusable label are rejected with a reason.

    Raises :class:`RadarInputError` when the file cannot be read, a named column is absent,
    or the accepted rows do not hold both classes.
    """
    path = Path(path)
    raw = read_table(path)
    frame = raw.frame.reset_index(drop=True)
    label = _find_column(frame, label, "label", path)
    if id_column is not None:
        id_column = _find_column(frame, id_column, "id", path)
    markers = _marker_set(missing_markers)
    y, reasons = parse_labels(frame[label], markers)
    parse_errors = raw.parse_errors.reset_index(drop=True)
    # A row that could not be split into the header's fields has shifted cells: its label
    # cannot be trusted even when it looks binary.
    broken = parse_errors.notna().to_numpy()
    reasons[broken] = parse_errors[broken]
    rejected = reasons.notna().to_numpy()
    rejects = pd.DataFrame(
        {
            "row_number": np.flatnonzero(rejected) + 1,
            "label_value": frame.loc[rejected, label].astype(str).str.slice(0, 40).to_numpy(),
            "reason": reasons[rejected].to_numpy(),
        }
    )
    accepted = frame.loc[~rejected].reset_index(drop=True)
    labels = y[~rejected].to_numpy(dtype=int)
    if len(labels) == 0 or labels.min() == labels.max():
        raise RadarInputError(
            f"the label column {label!r} needs both classes among usable rows "
            f"({int(labels.sum())} positive, {int(len(labels) - labels.sum())} negative, {len(rejects)} rejected)",
            path,
        )
    schema = infer_schema(accepted, label, id_column, missing_markers, rare_share)
    ids = accepted[id_column].reset_index(drop=True) if id_column else None
    table = FlatTable(
        path=path,
        schema=schema,
        X=schema.prepare(accepted),
        y=labels,
        row_numbers=np.flatnonzero(~rejected) + 1,
        ids=ids,
        rejects=rejects,
        n_read=len(frame),
    )
    table.messages = _load_messages(table)
    return table


def _load_messages(table: FlatTable) -> list[str]:
    schema = table.schema
    lines = [
        f"Read {table.n_read} rows: {table.n_accepted} accepted, {table.n_rejected} rejected "
        f"({table.positive_rate:.1%} positive among accepted)."
    ]
    if table.n_rejected:
        counts = table.rejects["reason"].str.replace(r"^label '.*' is", "label value is", regex=True).value_counts()
        lines.append("Rejected rows: " + "; ".join(f"{n} × {r}" for r, n in counts.items()) + ".")
    for column, reason in schema.dropped.items():
        lines.append(f"Not used: {column!r}: {reason}.")
    pooled = [c for c, levels in schema.categories.items() if OTHER_LEVEL in levels]
    if pooled:
        lines.append(
            f"Rare values (under {RARE_LEVEL_SHARE:.1%} of rows) pooled into {OTHER_LEVEL!r} in: "
            + ", ".join(repr(c) for c in pooled) + "."
        )
    lines.append(f"Features: {len(schema.numeric)} numeric, {len(schema.categories)} categorical.")
    return lines


# --- Models ----------------------------------------------------------------------------------


class FlatModel:
    """A fitted estimator plus the schema that turns raw cells into its features.

    The bundle's model: ``predict_proba`` takes raw rows (text as read from a file) so
    scoring a new spreadsheet needs nothing but the bundle.
    """

    def __init__(self, schema: FlatSchema, estimator: Any) -> None:
        self.schema = schema
        self.estimator = estimator

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.estimator.predict_proba(self.schema.prepare(frame)), dtype=float)

    def contributions(self, frame: pd.DataFrame) -> np.ndarray:
        """TreeSHAP contributions when the estimator is LightGBM (see ProbabilityModel)."""
        if not hasattr(self.estimator, "contributions"):
            raise NotImplementedError(f"{type(self.estimator).__name__} gives no contributions")
        return self.estimator.contributions(self.schema.prepare(frame))


def _signed_log(values: np.ndarray) -> np.ndarray:
    # Counts and durations have long tails; on a log scale one coefficient fits them better.
    return np.sign(values) * np.log1p(np.abs(values))


class LogisticBaseline:
    """Logistic regression on the same columns: one-hot levels, log-scaled numbers.

    The strength of the L2 penalty is picked on validation when it is given.
    """

    C_GRID: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0)

    def __init__(self, seed: int = 42) -> None:
        self.seed = seed

    def _inputs(self, X: pd.DataFrame) -> pd.DataFrame:
        out = {}
        for column in self.numeric_:
            out[column] = _signed_log(X[column].astype(float).to_numpy())
        for column in self.categorical_:
            out[column] = X[column].astype(object).where(X[column].notna(), "(missing)").astype(str)
        return pd.DataFrame(out, index=X.index)

    def _pipeline(self, C: float) -> Pipeline:
        # An all-missing column (no stage history in this export) stays, as zeros, unwarned.
        imputer = SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)
        numeric = make_pipeline(imputer, StandardScaler())
        encoder = ColumnTransformer(
            [
                ("num", numeric, self.numeric_),
                ("cat", OneHotEncoder(handle_unknown="ignore"), self.categorical_),
            ]
        )
        return make_pipeline(encoder, LogisticRegression(C=C, max_iter=2000, random_state=self.seed))

    def fit(
        self,
        X_train: pd.DataFrame,
        y_train: np.ndarray,
        X_val: pd.DataFrame | None = None,
        y_val: np.ndarray | None = None,
    ) -> "LogisticBaseline":
        self.feature_names_ = list(X_train.columns)
        self.numeric_ = [c for c in X_train.columns if pd.api.types.is_numeric_dtype(X_train[c])]
        self.categorical_ = [c for c in X_train.columns if c not in self.numeric_]
        inputs = self._inputs(X_train)
        self.C_ = 1.0
        if X_val is not None and y_val is not None and 0 < np.sum(y_val) < len(y_val):
            val_inputs = self._inputs(X_val)
            scores = {
                C: roc_auc_score(y_val, self._pipeline(C).fit(inputs, y_train).predict_proba(val_inputs)[:, 1])
                for C in self.C_GRID
            }
            self.C_ = max(scores, key=lambda c: scores[c])
        self.pipeline_ = self._pipeline(self.C_).fit(inputs, y_train)
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self.pipeline_.predict_proba(self._inputs(X[self.feature_names_]))[:, 1]


class SingleColumnBaseline:
    """The training target rate of one column's level (or number bin): "just look at X"."""

    def __init__(self, column: str, bins: int = 20, smoothing: float = 10.0) -> None:
        self.column = column
        self.bins = bins
        self.smoothing = smoothing

    def _keys(self, series: pd.Series) -> pd.Series:
        if self.edges_ is not None:
            codes = np.digitize(series.astype(float).to_numpy(), self.edges_)
            return pd.Series(np.where(series.isna(), -1, codes), index=series.index)
        return series.astype(object).where(series.notna(), "(missing)").astype(str)

    def fit(self, X: pd.DataFrame, y: np.ndarray, *_: object) -> "SingleColumnBaseline":
        series = X[self.column]
        self.edges_ = None
        if pd.api.types.is_numeric_dtype(series):
            quantiles = np.nanquantile(series.astype(float), np.linspace(0, 1, self.bins + 1)[1:-1])
            self.edges_ = np.unique(quantiles)
        self.prior_ = float(np.mean(y))
        rows = pd.DataFrame({"key": self._keys(series).to_numpy(), "y": np.asarray(y)})
        stats = rows.groupby("key")["y"].agg(["sum", "count"])
        self.rates_ = ((stats["sum"] + self.smoothing * self.prior_) / (stats["count"] + self.smoothing)).to_dict()
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        keys = self._keys(X[self.column])
        return keys.map(self.rates_).fillna(self.prior_).to_numpy(dtype=float)


class BaseRate:
    """Everyone gets the training positive rate: the floor any model must beat."""

    def fit(self, X: pd.DataFrame, y: np.ndarray, *_: object) -> "BaseRate":
        self.rate_ = float(np.mean(y))
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return np.full(len(X), self.rate_)


# --- Training --------------------------------------------------------------------------------


@dataclass
class FlatTrainReport:
    """What happened in one flat-table training run, for people."""

    name: str
    n_train: int
    n_validation: int
    n_test: int
    positives_train: int
    features: list[str]
    dropped: dict[str, str]
    leakage: LeakageReport
    model_type: str
    #: Test-split metrics by contender (model and baselines).
    metrics: dict[str, dict[str, float]]
    #: Test AUC of LightGBM trained with the excluded columns too (None when nothing excluded).
    auc_with_excluded: float | None
    notes: list[str]
    #: The gate's pick within this run and what the registry needs to re-judge it.
    decision: GateDecision
    test_rows: Outcomes
    test_predictions: dict[str, np.ndarray]
    test_features: pd.DataFrame

    @property
    def served(self) -> str:
        return self.decision.served

    @property
    def auc(self) -> float:
        """Test AUC of the contender that serves."""
        return self.metrics[self.served]["auc"]

    def to_text(self) -> str:
        lines = [
            f"Target {self.name!r}: {self.model_type} model on {len(self.features)} columns; "
            f"split {self.n_train}/{self.n_validation}/{self.n_test} (train/validation/test), "
            f"{self.positives_train} positives in training.",
            "Test split:",
        ]
        for contender, m in self.metrics.items():
            lines.append(
                f"  {contender:<20} AUC {m['auc']:.3f}  PR-AUC {m['pr_auc']:.3f}  "
                f"Brier {m['brier']:.3f}  lift@10% {m['lift_at_10pct']:.2f}"
            )
        if self.auc_with_excluded is not None:
            lines.append(f"  with excluded columns AUC {self.auc_with_excluded:.3f} (not used: see leakage)")
        lines.append("Leakage guard:")
        lines.append(self.leakage.to_text(only_flagged=True) if self.leakage.flagged else "  nothing flagged")
        lines.extend(self.notes)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()

    def __rich__(self) -> object:
        from rich.console import Group
        from rich.table import Table

        table = Table(title=f"{self.name}: test split ({self.n_test} rows)")
        for name in ("contender", "AUC", "PR-AUC", "Brier", "lift@10%"):
            table.add_column(name, justify="left" if name == "contender" else "right")
        for contender, m in self.metrics.items():
            values = (m["auc"], m["pr_auc"], m["brier"])
            table.add_row(contender, *(f"{v:.3f}" for v in values), f"{m['lift_at_10pct']:.2f}")
        if self.auc_with_excluded is not None:
            table.add_row("(with excluded columns)", f"{self.auc_with_excluded:.3f}", "", "", "", style="dim")
        return Group(table, self.leakage, *self.notes)


@dataclass
class _Split:
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray


def split_rows(y: np.ndarray, test_size: float, seed: int) -> _Split:
    """Stratified train / validation / test; validation is as large as test."""
    if not 0 < test_size < 0.5:
        raise ValueError("test_size must be between 0 and 0.5")
    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    if min(n_pos, n_neg) < 10:
        raise RadarInputError(
            f"too few rows of one class to train and test ({n_pos} positive, {n_neg} negative; "
            "need at least 10 of each)"
        )
    rows = np.arange(len(y))
    rest, test = train_test_split(rows, test_size=test_size, stratify=y, random_state=seed)
    train, validation = train_test_split(
        rest, test_size=test_size / (1 - test_size), stratify=y[rest], random_state=seed
    )
    return _Split(np.sort(train), np.sort(validation), np.sort(test))


def _fit_lightgbm(
    X: pd.DataFrame, y: np.ndarray, split: _Split, settings: Settings, seed: int
) -> ProbabilityModel:
    return ProbabilityModel(settings.training.model, seed=seed).fit(
        X.iloc[split.train], y[split.train], X.iloc[split.validation], y[split.validation]
    )


def _best_column(leakage: LeakageReport, features: Sequence[str]) -> str:
    usable = [c for c in leakage.checks if c.column in set(features)]
    return max(usable, key=lambda c: c.auc).column


def _fit_model(
    X: pd.DataFrame, y: np.ndarray, split: _Split, settings: Settings, seed: int, notes: list[str]
) -> ProbabilityModel | None:
    """LightGBM, unless there are too few positives to grow trees on (then the baselines
    contend alone and the gate picks among them)."""
    positives = int(y[split.train].sum())
    minimum = settings.training.min_positives
    if positives < minimum:
        notes.append(
            f"Only {positives} positives in training (fewer than {minimum}): too few for boosted "
            "trees, so a baseline serves."
        )
        return None
    return _fit_lightgbm(X, y, split, settings, seed)


def _auc_with_excluded(
    table: FlatTable, features: list[str], leakage: LeakageReport, split: _Split, settings: Settings, seed: int
) -> float | None:
    """Test AUC if the excluded columns were used: shows the user what the guard kept out."""
    if not leakage.excluded or int(table.y[split.train].sum()) < settings.training.min_positives:
        return None
    columns = [*features, *leakage.excluded]
    model = _fit_lightgbm(table.X[columns], table.y, split, settings, seed)
    test = split.test
    return float(roc_auc_score(table.y[test], model.predict_proba(table.X[columns].iloc[test])))


def train_flat(
    table: FlatTable,
    name: str,
    settings: Settings,
    force_include: Iterable[str] = (),
    test_size: float = 0.2,
    seed: int | None = None,
    leakage_settings: LeakageSettings | None = None,
    compare_with_excluded: bool = True,
) -> tuple[TargetBundle, FlatTrainReport]:
    """Train one binary target from a flat table, judged on a held-out stratified test split.

    Leakage is judged on the training split only; flagged columns are left out unless named
    in ``force_include``. Raises :class:`RadarInputError` when a forced column is unknown
    or no usable column remains.
    """
    seed = settings.training.random_seed if seed is None else seed
    split = split_rows(table.y, test_size, seed)
    X, y = table.X, table.y
    forced = list(force_include)
    unknown = [c for c in forced if c not in X.columns]
    if unknown:
        raise RadarInputError(f"cannot force in {unknown}: not a usable column of the table")
    leakage = check_leakage(
        X.iloc[split.train], y[split.train], leakage_settings or LeakageSettings(seed=seed), forced
    )
    features = [c for c in X.columns if c not in set(leakage.excluded)]
    if not features:
        raise RadarInputError("no usable column is left after dropping identifiers and leaking columns")
    notes = [*table.messages, *leakage.warnings()]
    X_train, y_train = X[features].iloc[split.train], y[split.train]
    X_val, y_val = X[features].iloc[split.validation], y[split.validation]
    model = _fit_model(X[features], y, split, settings, seed, notes)
    best = _best_column(leakage, features)
    contenders: dict[str, Any] = {} if model is None else {MODEL: model}
    contenders |= {
        "logistic": LogisticBaseline(seed).fit(X_train, y_train, X_val, y_val),
        f"single_column:{best}": SingleColumnBaseline(best).fit(X_train, y_train),
        "base_rate": BaseRate().fit(X_train, y_train),
    }
    X_test, y_test = X[features].iloc[split.test], y[split.test]
    truth = Outcomes("binary", y=np.asarray(y_test))
    probabilities = {k: np.asarray(m.predict_proba(X_test), dtype=float) for k, m in contenders.items()}
    decision = decide(truth, probabilities, settings.training)
    comparison = comparison_table(truth, probabilities, decision)
    metrics = {name: {k: float(v) for k, v in m.items()} for name, m in comparison.to_dict(orient="index").items()}
    served = decision.served
    model_type = "lightgbm" if served == MODEL else served
    auc_with = _auc_with_excluded(table, features, leakage, split, settings, seed) if compare_with_excluded else None
    if auc_with is not None:
        notes.append(
            f"With the excluded columns the test AUC would be {auc_with:.3f} instead of "
            f"{metrics[served]['auc']:.3f}: that gain would not exist on new leads."
        )
    bundle = TargetBundle(
        target=name,
        kind="binary",
        model=FlatModel(table.schema.restricted(features), contenders[served]),
        feature_names=features,
        model_type=model_type,
        metrics=metrics,
        reference_probabilities=np.sort(probabilities[served]),
        horizon_days=0,  # a flat table has no time axis: the label is whatever the user gave
        snapshot_plan={
            "kind": "flat_table",
            "source": table.path.name,
            "split": {"train": len(split.train), "validation": len(split.validation), "test": len(split.test)},
            "seed": seed,
            "label": table.schema.label,
            "id_column": table.schema.id_column,
        },
        trained_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        notes=notes,
        cost={k: float(v) for k, v in contenders[served].size().items()} if served == MODEL else {},
    )
    report = FlatTrainReport(
        name=name,
        n_train=len(split.train),
        n_validation=len(split.validation),
        n_test=len(split.test),
        positives_train=int(y_train.sum()),
        features=features,
        dropped=dict(table.schema.dropped),
        leakage=leakage,
        model_type=model_type,
        metrics=metrics,
        auc_with_excluded=auc_with,
        notes=notes,
        decision=decision,
        test_rows=truth,
        test_predictions=probabilities,
        test_features=table.X.iloc[split.test],
    )
    return bundle, report


# --- Scoring ---------------------------------------------------------------------------------


def _align_headers(frame: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    """Rename headers that match a training column up to case and surrounding spaces.

    Exports of the same CRM drift in such details between months; that should not turn a
    column into "missing" for every row.
    """
    by_key = {str(c).strip().casefold(): c for c in frame.columns}
    renames = {
        by_key[name.strip().casefold()]: name
        for name in names
        if name not in frame.columns and name.strip().casefold() in by_key
    }
    return frame.rename(columns=renames)


def _score_ids(frame: pd.DataFrame, asked: str | None, trained: str | None, path: Path) -> pd.Series:
    """The id column asked for (it must exist), else the training one if present, else row numbers."""
    if asked is not None:
        return frame[_find_column(frame, asked, "id", path)]
    if trained is not None and trained in frame.columns:
        return frame[trained]
    return pd.Series(np.arange(1, len(frame) + 1), name="row_number")


def score_flat(
    bundle: TargetBundle, path: Path | str, id_column: str | None = None, scoring: ScoringConfig | None = None
) -> pd.DataFrame:
    """Score every row of a flat table: id, probability, score (0-100), percentile and grade.

    The id column defaults to the one given at training; without one, rows are named by
    their 1-based row number. The output's first column keeps the id column's own name so
    the file can be joined back to the CRM.
    """
    path = Path(path)
    if not isinstance(bundle.model, FlatModel):
        raise RadarInputError(f"model {bundle.target!r} was not trained from a flat table", path)
    frame = _align_headers(read_table(path).frame.reset_index(drop=True), bundle.feature_names)
    present = [c for c in bundle.feature_names if c in frame.columns]
    if not present:
        raise RadarInputError(f"none of the model's {len(bundle.feature_names)} columns is in the file", path)
    absent = [c for c in bundle.feature_names if c not in frame.columns]
    if absent:
        log.warning("%s: %d model columns absent, scored as missing: %s", path.name, len(absent), absent)
    ids = _score_ids(frame, id_column, bundle.model.schema.id_column, path)
    scored = with_grades(bundle, bundle.predict(frame).reset_index(drop=True), scoring)
    out = pd.concat([pd.DataFrame({ids.name: ids.to_numpy()}), scored[["probability", "score", "percentile", "grade"]]], axis=1)
    out.attrs["absent_columns"] = absent
    return out
