"""The promotion gate: may a freshly trained model replace the champion?

Pure functions on metric dicts, so the rule is testable without MLflow. All metrics must
come from the *same* test snapshot (the caller re-scores the champion on it when the
champion was judged on another one). The rule, from the design brief:

* ranking (AUC, or C-index for survival) beats every baseline and the current champion by
  at least ``TrainingConfig.promotion_margin_auc``;
* Brier (integrated Brier for survival) is not worse than any of them;
* for binary targets, the expected calibration error is within
  ``TrainingConfig.max_calibration_error``.

A missing or NaN metric on the candidate blocks promotion; on a baseline or champion it is
noted and that comparison skipped (a test snapshot with one class has no AUC for anyone).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from radar.config import TrainingConfig
from training.bundle import TargetKind

#: Metric names the gate reads, per kind of target: (ranking, higher is better) and
#: (probability loss, lower is better). They match training.metrics and the pipeline.
RANK_METRIC: dict[str, str] = {"binary": "auc", "survival": "c_index"}
LOSS_METRIC: dict[str, str] = {"binary": "brier", "survival": "integrated_brier"}
CALIBRATION_METRIC = "ece"

Metrics = Mapping[str, float | None]


@dataclass(frozen=True)
class GateDecision:
    """Whether to promote, and every reason that led there (passes and failures)."""

    promote: bool
    reasons: list[str] = field(default_factory=list)

    @property
    def summary(self) -> str:
        """One line for a tag: the reasons joined, failures first."""
        return "; ".join(self.reasons)


def _value(metrics: Metrics | None, key: str) -> float | None:
    """The metric as a float, or None when absent or NaN (never a silent NaN comparison)."""
    if metrics is None:
        return None
    raw = metrics.get(key)
    if raw is None:
        return None
    value = float(raw)
    return None if math.isnan(value) else value


def _compare(
    who: str, candidate: Metrics, other: Metrics, kind: TargetKind, margin: float
) -> tuple[list[str], list[str]]:
    """Failures and notes from comparing the candidate with one contender."""
    rank, loss = RANK_METRIC[kind], LOSS_METRIC[kind]
    failures: list[str] = []
    notes: list[str] = []
    cand_rank, other_rank = _value(candidate, rank), _value(other, rank)
    if other_rank is None:
        notes.append(f"{who} has no test {rank}; ranking not compared")
    elif cand_rank is not None and cand_rank < other_rank + margin:
        failures.append(f"{rank} {cand_rank:.4f} does not beat {who} {other_rank:.4f} by {margin:g}")
    cand_loss, other_loss = _value(candidate, loss), _value(other, loss)
    if other_loss is None:
        notes.append(f"{who} has no test {loss}; not compared")
    elif cand_loss is not None and cand_loss > other_loss + 1e-12:
        failures.append(f"{loss} {cand_loss:.4f} is worse than {who} {other_loss:.4f}")
    return failures, notes


def _own_checks(candidate: Metrics, kind: TargetKind, config: TrainingConfig) -> list[str]:
    """Failures that need no contender: missing metrics and calibration."""
    failures = [
        f"candidate has no test {key}"
        for key in (RANK_METRIC[kind], LOSS_METRIC[kind])
        if _value(candidate, key) is None
    ]
    if kind == "binary":
        ece = _value(candidate, CALIBRATION_METRIC)
        if ece is None:
            failures.append(f"candidate has no test {CALIBRATION_METRIC}")
        elif ece > config.max_calibration_error:
            failures.append(f"ece {ece:.4f} exceeds the allowed {config.max_calibration_error:g}")
    return failures


def decide(
    candidate_metrics: Metrics,
    baseline_metrics: Mapping[str, Metrics],
    champion_metrics: Metrics | None,
    config: TrainingConfig,
    kind: TargetKind,
) -> GateDecision:
    """Promote only if the candidate beats every baseline and the champion (see module doc).

    ``baseline_metrics`` must not contain the candidate itself: a baseline-backed bundle
    (small-data fallback) is compared with the *other* baselines and the champion.
    ``champion_metrics`` is None when the target has no champion yet.
    """
    margin = config.promotion_margin_auc
    failures = _own_checks(candidate_metrics, kind, config)
    notes: list[str] = []
    for name, metrics in sorted(baseline_metrics.items()):
        f, n = _compare(f"baseline {name}", candidate_metrics, metrics, kind, margin)
        failures += f
        notes += n
    if champion_metrics is None:
        notes.append("no champion yet")
    else:
        f, n = _compare("champion", candidate_metrics, champion_metrics, kind, margin)
        failures += f
        notes += n
    if failures:
        return GateDecision(False, failures + notes)
    passed = f"beats {len(baseline_metrics)} baseline(s)" + ("" if champion_metrics is None else " and the champion")
    return GateDecision(True, [passed, *notes])
