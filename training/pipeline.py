"""Training every target: snapshots → rows → model and baselines → judged on test.

``train_target`` is pure modelling (no MLflow); ``train_all`` loads the data, plans the
snapshots, trains each target, and (when asked) logs and registers through
``training.registry``, where the promotion gate decides who becomes champion.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.contract import CRMData
from radar.config import Settings
from training import plots
from training.baselines import make_baselines
from training.bundle import WON_WITHIN_DAYS, TargetBundle
from training.datasets import SURVIVAL_TARGETS, TARGETS, TargetRows, data_span, snapshot_features, split_rows
from training.drift import build_profile
from training.gate import MODEL, GateDecision, Outcomes, decide
from training.metrics import binary_metrics
from training.models import ProbabilityModel
from training.snapshots import SnapshotPlan, plan_snapshots
from training.survival import HazardModel, competing_risk_brier, concordance, integrated_brier

#: A split needs at least this many positives in validation and test to judge anything.
MIN_EVAL_POSITIVES = 5


@dataclass
class TargetResult:
    """What training one target produced and how it compared."""

    target: str
    bundle: TargetBundle | None
    #: Rows: contenders ("model" and each baseline); columns: test metrics.
    comparison: pd.DataFrame
    rows: dict[str, int]
    notes: list[str] = field(default_factory=list)
    #: Filled by the registry: version, alias given and the gate's reasons.
    registration: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    test_features: pd.DataFrame | None = None
    #: The test truth and every contender's predictions on it: the registry re-runs the
    #: gate on them with the champion re-scored beside.
    test_rows: Outcomes | None = None
    test_predictions: dict[str, np.ndarray] = field(default_factory=dict)
    #: The gate's decision within this run (no champion yet): who serves and why.
    decision: GateDecision | None = None
    #: Run parameters logged beside the settings (a flat table's file and label).
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainReport:
    """A whole training run."""

    plan: SnapshotPlan
    results: dict[str, TargetResult]
    seconds: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "snapshots": self.plan.to_dict(),
            "seconds": self.seconds,
            "targets": {
                name: {
                    "model_type": r.bundle.model_type if r.bundle else None,
                    "rows": r.rows,
                    "metrics": {k: _clean(v) for k, v in r.comparison.to_dict(orient="index").items()},
                    "cost": r.bundle.cost if r.bundle else {},
                    "notes": r.notes,
                    "gate": r.decision.to_dict() if r.decision else None,
                    "registration": r.registration,
                }
                for name, r in self.results.items()
            },
        }


def _clean(metrics: dict[str, float]) -> dict[str, float | None]:
    return {k: (None if v is None or (isinstance(v, float) and np.isnan(v)) else float(v)) for k, v in metrics.items()}


def survival_metrics(duration: np.ndarray, event: np.ndarray, won_within: np.ndarray, days: list[int]) -> dict[str, float]:
    """C-index (on P(won by the horizon)) and IPCW Brier scores of P(won by t)."""
    cif_at = {float(d): won_within[:, i] for i, d in enumerate(days)}
    briers = competing_risk_brier(duration, event, cif_at)
    out = {
        "c_index": concordance(duration, event, won_within[:, -1]),
        "integrated_brier": integrated_brier(duration, event, cif_at),
        "n": float(len(duration)),
        "won_rate": float(np.mean(np.asarray(event) == "won")) if len(event) else float("nan"),
    }
    out |= {f"brier_{int(t)}d": v for t, v in briers.items() if int(t) in WON_WITHIN_DAYS}
    return out


def explanation_cost(model: Any, X: pd.DataFrame, n_rows: int = 200) -> dict[str, float]:
    """Trees, leaves and the time of one TreeSHAP explanation (pred_contrib, one row)."""
    booster = getattr(model, "booster_", None)
    if booster is None or len(X) == 0:
        return {}
    dump = booster.dump_model(num_iteration=booster.best_iteration or None)
    trees = dump["tree_info"]
    matrix = model.matrix(X.head(n_rows))
    if hasattr(model, "n_periods"):  # hazard model: the first period's row, as reasons explain it
        matrix = np.column_stack([matrix, np.zeros(len(matrix))])
    started = time.perf_counter()
    for i in range(len(matrix)):
        booster.predict(matrix[i : i + 1], pred_contrib=True, num_iteration=booster.best_iteration or None,
                        num_threads=1)
    per_row_ms = 1000 * (time.perf_counter() - started) / len(matrix)
    return {"trees": float(len(trees)), "leaves": float(sum(t["num_leaves"] for t in trees)), "shap_ms_per_row": per_row_ms}


def _enough(rows: dict[str, TargetRows], min_positives: int) -> tuple[bool, str]:
    train, val, test = rows["train"], rows["validation"], rows["test"]
    if len(train) == 0 or len(test) == 0:
        return False, "no eligible rows"
    if train.n_positive < min_positives:
        return False, f"only {train.n_positive} positive examples in training (need {min_positives})"
    if val.n_positive < MIN_EVAL_POSITIVES:
        return False, f"only {val.n_positive} positive examples in validation"
    return True, ""


def _fit_baselines(target: str, rows: dict[str, TargetRows], settings: Settings, survival: bool) -> dict[str, Any]:
    tr, va = rows["train"], rows["validation"]
    fitted = {}
    for baseline in make_baselines(target, settings.training.horizon_days, settings.training.random_seed):
        if survival:
            fitted[baseline.name] = baseline.fit(tr.X, tr.duration, tr.event, va.X, va.duration, va.event)
        else:
            fitted[baseline.name] = baseline.fit(tr.X, tr.y, va.X, va.y)
    return fitted


def survival_days(horizon_days: int) -> list[int]:
    """The days P(won within) is judged at: the standard ones up to the horizon."""
    return [d for d in WON_WITHIN_DAYS if d <= horizon_days] or [horizon_days]


def gate_rows(test: TargetRows, survival: bool, horizon_days: int) -> Outcomes:
    """The gate's view of a test split: the truth only."""
    if survival:
        return Outcomes("survival", duration=test.duration, event=test.event, days=tuple(survival_days(horizon_days)))
    return Outcomes("binary", y=np.asarray(test.y))


def predict_for_gate(model: Any, X: pd.DataFrame, rows: Outcomes) -> np.ndarray:
    """A contender's test predictions as the gate reads them (see ``training.gate``)."""
    if rows.kind == "survival":
        return np.asarray(model.predict_won_within(X, list(rows.days)), dtype=float)
    return np.asarray(model.predict_proba(X), dtype=float)


def comparison_table(rows: Outcomes, predictions: dict[str, np.ndarray], decision: GateDecision) -> pd.DataFrame:
    """Test metrics per contender, with each one's difference from the served contender
    and its interval (``<metric>_diff``, ``_low``, ``_high``)."""
    table = {}
    for name, p in predictions.items():
        if rows.kind == "survival":
            table[name] = survival_metrics(rows.duration, rows.event, p, list(rows.days))
        else:
            table[name] = binary_metrics(rows.y, p)
        for d in decision.differences:
            if d.a == name and d.b == decision.served:
                table[name] |= {f"{d.metric}_diff": d.estimate, f"{d.metric}_low": d.low, f"{d.metric}_high": d.high}
    return pd.DataFrame.from_dict(table, orient="index")


def train_target(target: str, rows: dict[str, TargetRows], settings: Settings, plan: SnapshotPlan) -> TargetResult:
    """Fit the LightGBM model and the baselines of one target, judge them all on test, and
    bundle the contender the gate picks to serve (``training.gate``)."""
    cfg = settings.training
    survival = target in SURVIVAL_TARGETS
    counts = {split: len(r) for split, r in rows.items()} | {
        f"{split}_positive": r.n_positive for split, r in rows.items()
    }
    ok, why = _enough(rows, cfg.min_positives)
    if len(rows["train"]) == 0 or len(rows["test"]) == 0 or rows["validation"].n_positive == 0:
        return TargetResult(target, None, pd.DataFrame(), counts, [f"{target}: not trained, {why or 'no positives'}"])
    notes: list[str] = []
    tr, va, te = rows["train"], rows["validation"], rows["test"]
    contenders: dict[str, Any] = {}
    if ok:
        if survival:
            contenders[MODEL] = HazardModel(cfg.model, cfg.horizon_days, cfg.random_seed).fit(
                tr.X, tr.duration, tr.event, va.X, va.duration, va.event
            )
        else:
            contenders[MODEL] = ProbabilityModel(cfg.model, cfg.random_seed).fit(tr.X, tr.y, va.X, va.y)
    else:
        notes.append(f"{target}: {why}; too little to learn from, so a baseline serves instead")
    contenders |= _fit_baselines(target, rows, settings, survival)
    truth = gate_rows(te, survival, cfg.horizon_days)
    predictions = {name: predict_for_gate(m, te.X, truth) for name, m in contenders.items()}
    decision = decide(truth, predictions, cfg)
    comparison = comparison_table(truth, predictions, decision)
    chosen = decision.served
    model = contenders[chosen]
    service_model = None
    if target == "churn_by_indifference" and tr.y_service is not None:
        if int(tr.y_service.sum()) >= cfg.min_positives and int(va.y_service.sum()) >= MIN_EVAL_POSITIVES:
            service_model = ProbabilityModel(cfg.model, cfg.random_seed).fit(tr.X, tr.y_service, va.X, va.y_service)
            comparison.loc[MODEL if ok else chosen, "service_auc"] = binary_metrics(
                te.y_service, service_model.predict_proba(te.X)
            )["auc"]
        else:
            notes.append("service churn: too few examples for its own model; dominant risk not reported")
    bundle = make_bundle(target, chosen, model, comparison, te.X, settings, plan, service_model, notes)
    result = TargetResult(target, bundle, comparison, counts, notes, test_features=te.X, test_rows=truth,
                          test_predictions=predictions, decision=decision)
    result.figures = _figures(target, contenders, te, survival, model)
    return result


def make_bundle(
    target: str,
    chosen: str,
    model: Any,
    comparison: pd.DataFrame,
    test_X: pd.DataFrame,
    settings: Settings,
    plan: SnapshotPlan,
    service_model: Any | None = None,
    notes: list[str] | None = None,
) -> TargetBundle:
    """The bundle of one contender (the model, or a baseline standing in for it), with the
    drift profile of its test snapshot (``training.drift``)."""
    probabilities = model.predict_proba(test_X)
    return TargetBundle(
        target=target,
        kind="survival" if target in SURVIVAL_TARGETS else "binary",
        model=model,
        feature_names=list(test_X.columns),
        model_type="lightgbm" if chosen == MODEL else chosen,
        metrics={name: _clean(m) for name, m in comparison.to_dict(orient="index").items()},
        reference_probabilities=np.sort(probabilities),
        horizon_days=settings.training.horizon_days,
        snapshot_plan=plan.to_dict(),
        trained_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        service_model=service_model,
        notes=list(notes or []),
        cost=explanation_cost(model, test_X),
        profile=build_profile(test_X, probabilities, plan.test, settings.monitoring).to_dict(),
    )


def _figures(target: str, contenders: dict[str, Any], test: TargetRows, survival: bool, model: Any) -> dict[str, Any]:
    if survival or test.n_positive == 0 or test.n_positive == len(test):
        return {}
    scores = {name: m.predict_proba(test.X) for name, m in contenders.items()}
    figures = {
        "roc.png": plots.roc_plot(test.y, scores, f"{target}: ROC on the test snapshot"),
        "reliability.png": plots.reliability_plot(test.y, model.predict_proba(test.X), f"{target}: calibration"),
        "gain.png": plots.gain_plot(test.y, scores, f"{target}: cumulative gain"),
    }
    if hasattr(model, "contributions"):
        sample = test.X.head(2000)
        figures["shap_summary.png"] = plots.shap_summary_plot(model.contributions(sample), sample, f"{target}: SHAP")
    return figures


def build_target_rows(
    data: CRMData, settings: Settings, targets: tuple[str, ...] = TARGETS
) -> tuple[SnapshotPlan, dict[str, dict[str, TargetRows]]]:
    """Plan snapshots over the data and cut each target's train / validation / test rows."""
    cfg = settings.training
    start, end = data_span(data)
    plan = plan_snapshots(start, end, cfg.horizon_days, cfg.n_snapshots, cfg.snapshot_frequency, cfg.min_history_days)
    snapshots = snapshot_features(data, plan, settings)
    return plan, {t: split_rows(t, data, snapshots, plan, settings) for t in targets}


def train_all(
    data_dir: Path | str,
    settings: Settings,
    *,
    targets: tuple[str, ...] = TARGETS,
    register: bool = True,
    progress: Callable[[str], None] | None = None,
    mapping_path: Path | None = None,
) -> TrainReport:
    """The whole flow on a CRM folder (or database URL): load, snapshot, train, judge,
    (register + gate)."""
    from features.ingest import load_crm

    say = progress or (lambda message: None)
    seconds: dict[str, float] = {}
    clock = time.perf_counter()
    say("loading and validating the CRM")
    data = load_crm(data_dir, mapping_path, settings=settings).data
    seconds["load"] = time.perf_counter() - clock

    clock = time.perf_counter()
    say("building snapshot features and labels")
    plan, rows = build_target_rows(data, settings, targets)
    seconds["features_and_labels"] = time.perf_counter() - clock

    results = {}
    for target in targets:
        clock = time.perf_counter()
        say(f"training {target}")
        results[target] = train_target(target, rows[target], settings, plan)
        seconds[f"train_{target}"] = time.perf_counter() - clock
    if register:
        from training.registry import register_results

        clock = time.perf_counter()
        say("logging to MLflow and applying the promotion gate")
        register_results(results, settings)
        seconds["register"] = time.perf_counter() - clock
    for result in results.values():
        plots.close_all(result.figures)
    return TrainReport(plan, results, seconds)
