"""Population stability: a champion's training profile, and how far today's data is from it.

At training time :func:`build_profile` summarises the population a model was judged on (its
test snapshot: the latest as-of of the run, built by the point-in-time pipeline, the same
rows its percentiles are read against) as a few numbers per feature:

- numeric features: quantile bins of the non-missing values (right-closed, so a count that
  is 0 for most people keeps one bin for its zeros) and a separate bin for missing;
- text (category) features: the most frequent categories, an "other" bucket for the rest
  (and for categories never seen at training), and a bin for missing;
- the score (the model's probability), binned like a numeric feature.

The profile is a plain dict on the bundle (``TargetBundle.profile``), so it travels with the
model into MLflow, BentoML's model store and the server. :func:`compare` reads today's rows
into the same bins and gives the population stability index (PSI) of each feature and of
the score, and each feature's share of missing values then and now; :func:`judge` turns the
figures into ok / warn / alert with ``radar.config.MonitoringConfig``.

PSI = sum over bins of (now - then) * ln(now / then), on proportions. 0 means the same
distribution; empty bins are floored at :data:`EPSILON` so a category that appears or
vanishes gives a large but finite figure.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from radar.config import MonitoringConfig
from radar.text import plural

#: Proportions are floored at this before taking logs: an empty bin on one side then adds
#: about p * ln(p / 1e-4), e.g. 0.31 for a category that is new in 5 % of rows.
EPSILON = 1e-4
MISSING = "missing"
OTHER = "other"
#: Bumped when the stored layout changes; older layouts are read or refused by number.
PROFILE_FORMAT = 1

Level = Literal["ok", "warn", "alert"]
LEVELS: tuple[Level, ...] = ("ok", "warn", "alert")


class NoProfile(LookupError):
    """The bundle was trained before Radar kept a drift profile (or the profile is unreadable)."""


def psi(expected: np.ndarray | list[float], actual: np.ndarray | list[float], epsilon: float = EPSILON) -> float:
    """Population stability index of two distributions over the same bins.

    Both are counts or proportions (each is normalised to sum to 1); bins empty on a side
    are floored at ``epsilon``. Symmetric in its arguments, 0 for identical distributions.
    """
    e = np.asarray(expected, dtype=float)
    a = np.asarray(actual, dtype=float)
    if e.shape != a.shape or e.ndim != 1 or len(e) == 0:
        raise ValueError(f"need two 1-D distributions over the same bins, got shapes {e.shape} and {a.shape}")
    if e.sum() <= 0 or a.sum() <= 0:
        raise ValueError("a distribution with no mass has no PSI")
    e = np.maximum(e / e.sum(), epsilon)
    a = np.maximum(a / a.sum(), epsilon)
    return float(np.sum((a - e) * np.log(a / e)))


@dataclass
class Binned:
    """The bins of one feature (or of the score) and the reference proportion in each.

    ``proportions`` has one entry per value bin (numeric: ``len(edges) + 1``; categorical:
    one per category, then ``other``), then one for missing, and sums to 1.
    """

    kind: Literal["numeric", "categorical"]
    proportions: list[float]
    #: Numeric: inner edges; bin i holds edges[i-1] < x <= edges[i] (open at both ends).
    edges: list[float] = field(default_factory=list)
    #: Categorical: the categories with a bin of their own, most frequent first.
    categories: list[str] = field(default_factory=list)

    @property
    def missing_share(self) -> float:
        return self.proportions[-1]

    def counts(self, values: pd.Series | np.ndarray) -> np.ndarray:
        """How many of ``values`` fall in each bin (missing last)."""
        series = values if isinstance(values, pd.Series) else pd.Series(values)
        n_values = len(self.edges) + 1 if self.kind == "numeric" else len(self.categories) + 1
        if self.kind == "numeric":
            if not pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype):
                # Text where a number was expected (a changed export) counts as missing.
                series = pd.to_numeric(series.astype(object), errors="coerce")
            x = series.to_numpy(dtype=float, na_value=np.nan)
            missing = np.isnan(x)
            where = np.searchsorted(np.asarray(self.edges, dtype=float), x[~missing], side="left")
        else:
            text = series.astype(object)
            missing = text.isna().to_numpy()
            position = {c: i for i, c in enumerate(self.categories)}
            where = text[~missing].astype(str).map(position).fillna(n_values - 1).to_numpy(dtype=np.int64)
        counts = np.bincount(where, minlength=n_values + 1).astype(float)
        counts[-1] = float(missing.sum())
        return counts

    def labels(self) -> list[str]:
        """A short name per bin, for reports."""
        if self.kind == "categorical":
            return [*self.categories, OTHER, MISSING]
        edges = [_short(e) for e in self.edges]
        if not edges:
            return ["any value", MISSING]
        middle = [f"({lo}, {hi}]" for lo, hi in zip(edges, edges[1:])]
        return [f"<= {edges[0]}", *middle, f"> {edges[-1]}", MISSING]


def _short(value: float) -> str:
    return f"{value:.4g}"


def bin_column(values: pd.Series, bins: int = 10, max_categories: int = 20) -> Binned:
    """Bins for one column from its reference values (numeric or text, by dtype)."""
    n = len(values)
    if n == 0:
        raise ValueError("cannot profile an empty column")
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        x = values.to_numpy(dtype=float, na_value=np.nan)
        present = x[~np.isnan(x)]
        finite = present[np.isfinite(present)]
        # Edges are observed values ("inverted_cdf"), so a count feature gets edges like 0,
        # 1, 3 rather than interpolated 0.5s that no row can sit on.
        inner = np.linspace(0, 1, bins + 1)[1:-1]
        edges = np.unique(np.quantile(finite, inner, method="inverted_cdf")) if len(finite) else np.array([])
        # Without a top bin above the largest value, the maximum sits alone in no bin.
        edges = edges[edges < finite.max()] if len(finite) else edges
        binned = Binned("numeric", [], edges=[float(e) for e in edges])
    else:
        text = values.astype(object)
        present = text[text.notna()].astype(str)
        top = present.value_counts().sort_index(kind="stable").sort_values(ascending=False, kind="stable")
        binned = Binned("categorical", [], categories=[str(c) for c in top.index[:max_categories]])
    binned.proportions = [float(c) / n for c in binned.counts(values)]
    return binned


@dataclass
class DriftProfile:
    """The reference a champion's drift is measured against (see the module docstring)."""

    #: The as-of (YYYY-MM-DD) of the snapshot described: features used events strictly before it.
    as_of: str
    n_rows: int
    features: dict[str, Binned]
    score: Binned
    bins: int
    max_categories: int
    format: int = PROFILE_FORMAT

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data: what the bundle keeps, so an old bundle never depends on
        this class's shape."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DriftProfile:
        if int(data.get("format", -1)) != PROFILE_FORMAT:
            raise NoProfile(f"drift profile format {data.get('format')!r} is not {PROFILE_FORMAT}: retrain to monitor")
        return cls(
            as_of=str(data["as_of"]),
            n_rows=int(data["n_rows"]),
            features={name: Binned(**b) for name, b in data["features"].items()},
            score=Binned(**data["score"]),
            bins=int(data["bins"]),
            max_categories=int(data["max_categories"]),
        )


def build_profile(
    features: pd.DataFrame,
    scores: np.ndarray,
    as_of: pd.Timestamp | str,
    config: MonitoringConfig | None = None,
) -> DriftProfile:
    """The profile of a population: every column of ``features`` and the ``scores``
    (probabilities) the model gave those rows."""
    config = config or MonitoringConfig()
    return DriftProfile(
        as_of=pd.Timestamp(as_of).date().isoformat(),
        n_rows=len(features),
        features={c: bin_column(features[c], config.bins, config.max_categories) for c in features.columns},
        score=bin_column(pd.Series(np.asarray(scores, dtype=float)), config.bins),
        bins=config.bins,
        max_categories=config.max_categories,
    )


def profile_of(bundle: Any) -> DriftProfile:
    """The drift profile kept with a bundle; :class:`NoProfile` for bundles without one."""
    stored = getattr(bundle, "profile", None)
    if not stored:
        raise NoProfile(
            f"{getattr(bundle, 'target', 'this model')}: trained before Radar kept a drift profile; "
            "retrain (`radar retrain DIR`) to monitor it"
        )
    try:
        return DriftProfile.from_dict(stored)
    except (KeyError, TypeError, ValueError) as err:
        raise NoProfile(f"unreadable drift profile ({type(err).__name__}: {err}); retrain to monitor it") from None


@dataclass
class Comparison:
    """Today's rows against a profile."""

    n_reference: int
    n_now: int
    score_psi: float
    #: One row per feature (index: feature): psi, missing_reference, missing_now,
    #: missing_change (now - reference), moved (the bin that moved most, in words).
    features: pd.DataFrame
    score_moved: str = ""


def _moved(binned: Binned, now: np.ndarray) -> str:
    """The bin whose share changed most, as "label: 12% -> 30%"."""
    ref = np.asarray(binned.proportions)
    i = int(np.argmax(np.abs(now - ref)))
    return f"{binned.labels()[i]}: {ref[i]:.0%} -> {now[i]:.0%}"


def compare(profile: DriftProfile, features: pd.DataFrame, scores: np.ndarray) -> Comparison:
    """PSI and missing shares of today's rows (``features``, with the model's ``scores``)
    against the profile. A profiled feature absent from ``features`` counts as all missing."""
    if len(features) == 0:
        raise ValueError("no rows to compare with the profile")
    rows = []
    for name, binned in profile.features.items():
        values = features[name] if name in features.columns else pd.Series(np.nan, index=features.index)
        counts = binned.counts(values)
        now = counts / counts.sum()
        rows.append({
            "feature": name,
            "psi": psi(binned.proportions, now),
            "missing_reference": binned.missing_share,
            "missing_now": float(now[-1]),
            "missing_change": float(now[-1]) - binned.missing_share,
            "moved": _moved(binned, now),
        })
    table = pd.DataFrame(rows, columns=["feature", "psi", "missing_reference", "missing_now", "missing_change", "moved"])
    score_counts = profile.score.counts(np.asarray(scores, dtype=float))
    score_now = score_counts / score_counts.sum()
    return Comparison(
        n_reference=profile.n_rows,
        n_now=len(features),
        score_psi=psi(profile.score.proportions, score_now),
        features=table.set_index("feature"),
        score_moved=_moved(profile.score, score_now),
    )


def level_of(psi_value: float, missing_change: float, config: MonitoringConfig) -> Level:
    """ok / warn / alert of one feature's figures (the score has no missing change: pass 0)."""
    if psi_value >= config.psi_alert or abs(missing_change) >= config.missing_share_alert:
        return "alert"
    if psi_value >= config.psi_warn or abs(missing_change) >= config.missing_share_warn:
        return "warn"
    return "ok"


def judge(comparison: Comparison, config: MonitoringConfig) -> tuple[Level, pd.DataFrame, str]:
    """The levels of a comparison: overall level, the feature table with a ``level``
    column, worst first, and a note. Populations smaller than ``config.min_rows`` on either
    side are reported but judged ok: their PSI is mostly sampling noise."""
    table = comparison.features.copy()
    table["level"] = [level_of(p, m, config) for p, m in zip(table["psi"], table["missing_change"])]
    rank = table["level"].map({name: i for i, name in enumerate(LEVELS)})
    table = table.assign(_rank=rank).sort_values(["_rank", "psi"], ascending=False, kind="stable").drop(columns="_rank")
    score_level = level_of(comparison.score_psi, 0.0, config)
    worst = max([score_level, *table["level"]], key=LEVELS.index)
    small = min(comparison.n_now, comparison.n_reference)
    if small < config.min_rows:
        return "ok", table, (
            f"only {plural(small, 'row')} (monitoring.min_rows is {config.min_rows}): figures shown, not judged "
            f"(would be {worst})"
        )
    return worst, table, ""


def worst_level(levels: list[Level]) -> Level:
    return max(levels, key=LEVELS.index) if levels else "ok"
