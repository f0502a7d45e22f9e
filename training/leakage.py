"""The leakage guard: columns that give the answer away instead of predicting it.

A user's spreadsheet often holds fields that sales staff fill in *after* the outcome (a
status, a reason for losing, a quality judgement). A model trained on them looks excellent
and is useless on new leads. Column names are no evidence (every CRM names them
differently), so the guard judges each column only by how it relates to the label on the
training split:

* **too predictive alone**: its single-column AUC is above ``max_auc``. Categorical
  columns (and binned numbers) are scored by the *out-of-fold* target rate of their level,
  so a high-cardinality column cannot score well by memorising small levels.
* **filled in for one class**: the rows where the column has a value (or the rows where it
  is empty) are almost all one class, e.g. a "closed on" date set only for won leads.
* **outcome-like values**: some of its values mean "almost surely yes" and others "almost
  surely no", each for a real share of the rows. Attributes known before the outcome
  (source, origin, occupation) may have a level that converts very well, but rarely hold
  decisive levels in *both* directions; dispositions ("lost to competitor", "closed",
  "will revert") do.

Purities are *balanced* (as if both classes were equally common), so the same thresholds
work for a 2 % and a 40 % base rate.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold


@dataclass(frozen=True)
class LeakageSettings:
    """Thresholds of the guard (defaults suit CRM tables of a few hundred rows and up)."""

    #: Single-column AUC above which a column is "too predictive alone".
    max_auc: float = 0.95
    #: Balanced purity of the filled (or the empty) rows above which a column counts as
    #: filled in for one class only.
    presence_purity: float = 0.95
    #: The filled (or empty) rows must be at least this share of the table to be judged:
    #: a handful of rows is noise, not a pattern.
    min_presence_share: float = 0.01
    #: A level is decisive when its balanced out-of-fold target rate is at least this pure.
    decisive_purity: float = 0.90
    #: Outcome-like when at least this share of the positives *and* of the negatives sit in
    #: decisive levels of their own class.
    min_decisive_share: float = 0.05
    #: Prior weight (in rows) pulling each level's rate to the base rate: small levels
    #: cannot look decisive by chance.
    smoothing: float = 10.0
    folds: int = 5
    #: Numbers are cut into at most this many equal-count bins to be judged like levels.
    numeric_bins: int = 20
    seed: int = 42


@dataclass
class ColumnCheck:
    """What the guard found about one column."""

    column: str
    #: Single-column AUC (out-of-fold level rates; for numbers also the raw ranking).
    auc: float
    #: Share of training rows where the column has a value.
    filled_share: float
    #: Balanced positive rate among filled rows and among empty rows (NaN if too few).
    filled_rate: float
    empty_rate: float
    #: Share of positives in decisive-positive levels, of negatives in decisive-negative ones.
    decisive_positive: float
    decisive_negative: float
    reasons: list[str] = field(default_factory=list)
    excluded: bool = False
    forced: bool = False

    @property
    def flagged(self) -> bool:
        return bool(self.reasons)

    @property
    def score(self) -> float:
        """The headline number: single-column AUC."""
        return self.auc

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)


@dataclass
class LeakageReport:
    """Per-column findings of the guard, most predictive first."""

    checks: list[ColumnCheck]
    settings: LeakageSettings

    @property
    def flagged(self) -> list[str]:
        return [c.column for c in self.checks if c.flagged]

    @property
    def excluded(self) -> list[str]:
        return [c.column for c in self.checks if c.excluded]

    @property
    def forced(self) -> list[str]:
        return [c.column for c in self.checks if c.forced]

    def check(self, column: str) -> ColumnCheck:
        for item in self.checks:
            if item.column == column:
                return item
        raise KeyError(column)

    def warnings(self) -> list[str]:
        """One plain sentence per flagged column, saying what happens to it."""
        lines = []
        for c in self.checks:
            if not c.flagged:
                continue
            action = "kept because you forced it in" if c.forced else "excluded (force_include to keep it)"
            lines.append(f"Possible leak: column {c.column!r} {action}: {c.reason}.")
        return lines

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "column": [c.column for c in self.checks],
                "auc": [c.auc for c in self.checks],
                "filled_share": [c.filled_share for c in self.checks],
                "decisive_positive": [c.decisive_positive for c in self.checks],
                "decisive_negative": [c.decisive_negative for c in self.checks],
                "flagged": [c.flagged for c in self.checks],
                "excluded": [c.excluded for c in self.checks],
                "reason": [c.reason for c in self.checks],
            }
        )

    def _rows(self, only_flagged: bool) -> list[tuple[str, str, str, str]]:
        rows = []
        for c in self.checks:
            if only_flagged and not c.flagged:
                continue
            status = "forced in" if c.forced else ("excluded" if c.excluded else "kept")
            rows.append((c.column, f"{c.auc:.3f}", status, c.reason or "-"))
        return rows

    def to_text(self, only_flagged: bool = False) -> str:
        """A plain-text table (for logs and terminals without rich)."""
        header = ("column", "AUC", "status", "reason")
        rows = [header, *self._rows(only_flagged)]
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        return "\n".join(
            "  ".join(r[i].ljust(widths[i]) for i in range(3)) + "  " + r[3] for r in rows
        )

    def __str__(self) -> str:
        return self.to_text()

    def __rich__(self) -> object:
        from rich.table import Table

        table = Table(title="Leakage guard (training split)")
        for name, justify in (("column", "left"), ("AUC", "right"), ("status", "left"), ("reason", "left")):
            table.add_column(name, justify=justify)  # type: ignore[arg-type]
        for column, auc, status, reason in self._rows(only_flagged=False):
            style = "red" if status == "excluded" else ("yellow" if status == "forced in" else None)
            table.add_row(column, auc, status, reason, style=style)
        return table


# --- Level codes and out-of-fold rates ----------------------------------------------------


def level_codes(series: pd.Series, numeric_bins: int) -> np.ndarray:
    """Integer level per row: categories (or equal-count bins of numbers), missing its own level.

    Binning numbers lets the same level-rate machinery catch non-monotone leaks (e.g. a
    value set only for one class) that a plain ranking would miss.
    """
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        values = series.astype(float)
        ranks = values.rank(method="dense")
        n_distinct = int(ranks.max()) if ranks.notna().any() else 0
        if n_distinct > numeric_bins:
            codes = pd.qcut(values.rank(method="first"), numeric_bins, labels=False, duplicates="drop")
            # Ties must share a bin, else a constant run is split arbitrarily: use the bin of
            # each value's first occurrence in rank order.
            codes = codes.groupby(values).transform("min")
        else:
            codes = ranks - 1
        out = codes.to_numpy(dtype=float, na_value=np.nan)
    else:
        cat = pd.Categorical(series.astype(object))
        out = cat.codes.astype(float)
        out[out < 0] = np.nan
    missing_code = np.nanmax(out) + 1 if np.isfinite(out).any() else 0
    return np.where(np.isnan(out), missing_code, out).astype(np.int64)


def out_of_fold_rates(codes: np.ndarray, y: np.ndarray, settings: LeakageSettings) -> np.ndarray:
    """Each row's smoothed level target rate, learned on the other folds only."""
    prior = float(y.mean())
    n_levels = int(codes.max()) + 1
    rates = np.empty(len(y), dtype=float)
    splitter = StratifiedKFold(n_splits=settings.folds, shuffle=True, random_state=settings.seed)
    for fit_idx, eval_idx in splitter.split(codes.reshape(-1, 1), y):
        positives = np.bincount(codes[fit_idx], weights=y[fit_idx], minlength=n_levels)
        counts = np.bincount(codes[fit_idx], minlength=n_levels)
        level_rate = (positives + settings.smoothing * prior) / (counts + settings.smoothing)
        rates[eval_idx] = level_rate[codes[eval_idx]]
    return rates


def balanced_rate(rate: np.ndarray | float, prior: float) -> np.ndarray:
    """A positive rate re-expressed as if both classes were equally common (Bayes' rule)."""
    rate = np.asarray(rate, dtype=float)
    pos = rate * (1 - prior)
    neg = (1 - rate) * prior
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pos + neg > 0, pos / (pos + neg), 0.5)


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    return float(roc_auc_score(y, score))


def single_column_auc(series: pd.Series, y: np.ndarray, settings: LeakageSettings) -> tuple[float, np.ndarray]:
    """Single-column AUC and the out-of-fold level rates it came from."""
    codes = level_codes(series, settings.numeric_bins)
    rates = out_of_fold_rates(codes, y, settings)
    auc = _auc(y, rates)
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        values = series.astype(float).to_numpy()
        if np.isfinite(values).any():
            # Missing ranks lowest, as a tree would split it off; the direction is the only
            # thing fitted, so the in-sample ranking AUC is not optimistic.
            filled = np.where(np.isnan(values), np.nanmin(values) - 1, values)
            raw = _auc(y, filled)
            auc = max(auc, raw, 1 - raw)
    return auc, rates


# --- The checks ---------------------------------------------------------------------------


def _subset_rate(mask: np.ndarray, y: np.ndarray, settings: LeakageSettings) -> float:
    """Balanced, smoothed positive rate of a subset of rows; NaN when too small to judge."""
    n = int(mask.sum())
    if n < max(20, settings.min_presence_share * len(y)):
        return float("nan")
    prior = float(y.mean())
    rate = (y[mask].sum() + settings.smoothing * prior) / (n + settings.smoothing)
    return float(balanced_rate(rate, prior))


def _is_pure(balanced: float, purity: float) -> bool:
    return bool(np.isfinite(balanced) and (balanced >= purity or balanced <= 1 - purity))


def _class_word(balanced: float) -> str:
    return "positives" if balanced >= 0.5 else "negatives"


def check_column(series: pd.Series, y: np.ndarray, settings: LeakageSettings) -> ColumnCheck:
    """Run every check on one column of the training split."""
    prior = float(y.mean())
    auc, rates = single_column_auc(series, y, settings)
    row_balanced = balanced_rate(rates, prior)
    decisive_pos = float(np.mean(row_balanced[y == 1] >= settings.decisive_purity))
    decisive_neg = float(np.mean(row_balanced[y == 0] <= 1 - settings.decisive_purity))
    filled = series.notna().to_numpy()
    filled_rate = _subset_rate(filled, y, settings)
    empty_rate = _subset_rate(~filled, y, settings)

    reasons = []
    if auc >= settings.max_auc:
        reasons.append(f"single-column AUC {auc:.3f} (limit {settings.max_auc:.2f})")
    if _is_pure(filled_rate, settings.presence_purity):
        reasons.append(
            f"filled in almost only for {_class_word(filled_rate)} "
            f"(balanced purity {max(filled_rate, 1 - filled_rate):.2f} over {filled.mean():.0%} of rows)"
        )
    if _is_pure(empty_rate, settings.presence_purity):
        reasons.append(
            f"empty almost only for {_class_word(empty_rate)} "
            f"(balanced purity {max(empty_rate, 1 - empty_rate):.2f} over {(~filled).mean():.0%} of rows)"
        )
    if min(decisive_pos, decisive_neg) >= settings.min_decisive_share:
        reasons.append(
            f"outcome-like values: {decisive_pos:.0%} of positives and {decisive_neg:.0%} of negatives "
            f"have values that are ≥{settings.decisive_purity:.0%} one class (single-column AUC {auc:.3f})"
        )
    return ColumnCheck(
        column=str(series.name),
        auc=auc,
        filled_share=float(filled.mean()),
        filled_rate=filled_rate,
        empty_rate=empty_rate,
        decisive_positive=decisive_pos,
        decisive_negative=decisive_neg,
        reasons=reasons,
    )


def check_leakage(
    X: pd.DataFrame,
    y: Sequence[int] | np.ndarray | pd.Series,
    settings: LeakageSettings | None = None,
    force_include: Iterable[str] = (),
) -> LeakageReport:
    """Judge every column of the training split; flagged columns are excluded unless forced.

    Raises ``KeyError`` for a ``force_include`` name that is not a column, so a typo does
    not silently leave a column out.
    """
    settings = settings or LeakageSettings()
    y_arr = np.asarray(y, dtype=int)
    if len(y_arr) != len(X):
        raise ValueError(f"{len(X)} rows but {len(y_arr)} labels")
    if not 0 < y_arr.sum() < len(y_arr):
        raise ValueError("the label needs both classes to judge leakage")
    forced = list(force_include)
    unknown = [c for c in forced if c not in X.columns]
    if unknown:
        raise KeyError(f"force_include names columns that are not in the table: {unknown}")
    checks = [check_column(X[column], y_arr, settings) for column in X.columns]
    for item in checks:
        item.forced = item.flagged and item.column in forced
        item.excluded = item.flagged and not item.forced
    checks.sort(key=lambda c: (not c.flagged, -c.auc))
    return LeakageReport(checks, settings)
