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
from training.metrics import binary_metrics
from training.models import ProbabilityModel
from training.snapshots import SnapshotPlan, plan_snapshots
from training.survival import HazardModel, competing_risk_brier, concordance, integrated_brier

MODEL = "model"
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
    #: Fitted baselines, kept so one can serve when no model has passed the gate yet.
    baselines: dict[str, Any] = field(default_factory=dict)


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


def _judge(contenders: dict[str, Any], test: TargetRows, survival: bool, horizon_days: int) -> pd.DataFrame:
    table = {}
    for name, model in contenders.items():
        if survival:
            days = [d for d in WON_WITHIN_DAYS if d <= horizon_days] or [horizon_days]
            table[name] = survival_metrics(test.duration, test.event, model.predict_won_within(test.X, days), days)
        else:
            table[name] = binary_metrics(test.y, model.predict_proba(test.X))
    return pd.DataFrame.from_dict(table, orient="index")


def train_target(target: str, rows: dict[str, TargetRows], settings: Settings, plan: SnapshotPlan) -> TargetResult:
    """Fit the LightGBM model and the baselines of one target and judge them on test."""
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
    baselines = _fit_baselines(target, rows, settings, survival)
    contenders: dict[str, Any] = {}
    if ok:
        if survival:
            contenders[MODEL] = HazardModel(cfg.model, cfg.horizon_days, cfg.random_seed).fit(
                tr.X, tr.duration, tr.event, va.X, va.duration, va.event
            )
        else:
            contenders[MODEL] = ProbabilityModel(cfg.model, cfg.random_seed).fit(tr.X, tr.y, va.X, va.y)
    else:
        notes.append(f"{target}: {why}; too little to learn from, so the best baseline is used instead")
    contenders |= baselines
    comparison = _judge(contenders, te, survival, cfg.horizon_days)
    chosen = MODEL if ok else _best_baseline(comparison, survival)
    model = contenders[chosen]
    service_model = None
    if target == "churn_by_indifference" and tr.y_service is not None:
        if int(tr.y_service.sum()) >= cfg.min_positives and int(va.y_service.sum()) >= MIN_EVAL_POSITIVES:
            service_model = ProbabilityModel(cfg.model, cfg.random_seed).fit(tr.X, tr.y_service, va.X, va.y_service)
            comparison.loc[MODEL, "service_auc"] = binary_metrics(te.y_service, service_model.predict_proba(te.X))["auc"]
        else:
            notes.append("service churn: too few examples for its own model; dominant risk not reported")
    bundle = make_bundle(target, chosen, model, comparison, te.X, settings, plan, service_model, notes)
    result = TargetResult(target, bundle, comparison, counts, notes, test_features=te.X, baselines=baselines)
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


def _best_baseline(comparison: pd.DataFrame, survival: bool) -> str:
    key = "c_index" if survival else "auc"
    return str(comparison[key].fillna(-1).idxmax())


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


def serve_best_baseline_if_no_champion(result: TargetResult, settings: Settings, plan: SnapshotPlan) -> None:
    """When a target's model failed the gate and nothing is champion yet, make its best
    baseline the champion: a CRM is better served by an honest rule than by no score, and
    a model will replace it as soon as one beats it."""
    from training.gate import GateDecision
    from training.registry import log_target, version_info

    reg = result.registration
    if not reg or reg.get("promoted") or not result.baselines or result.test_features is None:
        return
    if version_info(result.target, alias="champion", tracking_uri=settings.tracking_uri) is not None:
        return
    name = _best_baseline(result.comparison.drop(index=MODEL, errors="ignore"), result.target in SURVIVAL_TARGETS)
    why = f"no champion yet and the model did not pass the gate ({'; '.join(reg['reasons'][:1])}); {name} serves meanwhile"
    bundle = make_bundle(
        result.target, name, result.baselines[name], result.comparison, result.test_features, settings, plan, notes=[why]
    )
    info = log_target(
        bundle, params={"fallback": name}, plots=None, input_example=result.test_features,
        tracking_uri=settings.tracking_uri, decision=GateDecision(True, [why]),
    )
    result.notes.append(why)
    result.registration["fallback"] = {"version": info.version, "model_type": name, "alias": "champion"}


def build_target_rows(
    data: CRMData, settings: Settings, targets: tuple[str, ...] = TARGETS
) -> tuple[SnapshotPlan, dict[str, dict[str, TargetRows]]]:
    """Plan snapshots over the data and cut each target's train / validation / test rows."""
    cfg = settings.training
    start, end = data_span(data)
    plan = plan_snapshots(start, end, cfg.horizon_days, cfg.n_snapshots, cfg.snapshot_frequency)
    snapshots = snapshot_features(data, plan, settings)
    return plan, {t: split_rows(t, data, snapshots, plan, settings) for t in targets}


def train_all(
    data_dir: Path,
    settings: Settings,
    *,
    targets: tuple[str, ...] = TARGETS,
    register: bool = True,
    progress: Callable[[str], None] | None = None,
    mapping_path: Path | None = None,
) -> TrainReport:
    """The whole flow on a CRM folder: load, snapshot, train, judge, (register + gate)."""
    from features.ingest import load_crm

    say = progress or (lambda message: None)
    seconds: dict[str, float] = {}
    clock = time.perf_counter()
    say("loading and validating the CRM")
    data = load_crm(Path(data_dir), mapping_path, settings=settings).data
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
        from training.registry import register_results, score_bundle

        clock = time.perf_counter()
        say("logging to MLflow and applying the promotion gate")
        # The champion is re-scored on this run's test rows, so the gate compares like
        # with like even when the champion was trained on older data.
        register_results(results, settings, evaluate_champion=lambda t, b: score_bundle(b, rows[t]["test"]))
        for result in results.values():
            serve_best_baseline_if_no_champion(result, settings, plan)
        seconds["register"] = time.perf_counter() - clock
    for result in results.values():
        plots.close_all(result.figures)
    return TrainReport(plan, results, seconds)
