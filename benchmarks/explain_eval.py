"""Exact TreeSHAP methods and what numeric category codes would cost, on Radar's own targets.

    python -m benchmarks.explain_eval --customers 100000 --snapshots 12

Two questions, one run, on a demo world's train / validation / test snapshots (the rows
``training.pipeline.train_all`` learns and is judged on):

1. **Ordered category codes.** woodelf (``woodelf-explainer``) computes exact TreeSHAP fast
   but refuses trees with categorical splits. Each target is trained twice with Radar's
   model settings: as Radar trains it (LightGBM categorical features), and with every
   category replaced by a number ordered by its training target rate (fitted on the
   training rows only; unseen and missing categories → NaN, as LightGBM reads them). Both
   are judged on the same test rows with the promotion gate's paired bootstrap
   (``training.gate.judge``): AUC (C-index for time to close) and Brier (integrated Brier)
   differences with their intervals, and each one's ECE with a paired bootstrap interval of
   the difference and the ECE a perfectly calibrated model shows on these rows (noise).
2. **TreeSHAP on the trained models**, for test rows as they are and with 30 % of their
   values removed: Radar's tables (``training.treeshap``), woodelf, and LightGBM's
   ``pred_contrib``: time and largest difference from pred_contrib relative to the
   largest contribution.

The section "TreeSHAP methods and category codes" of ``docs/benchmarks.md`` is written.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.command import bench_parser, command_line, header, publish, say, stamp
from benchmarks.train_bench import demo_world

TITLE = "TreeSHAP methods and category codes"
#: Test rows explained by each method (the timing; equality is checked on the same rows).
EXPLAIN_ROWS = 20_000
#: Resamples of the ECE difference's interval.
ECE_ROUNDS = 200


class OrderedCodes:
    """Each category of each text column as a number: its rank by the target rate of the
    training rows that carry it (ties by name). Unseen and missing categories → NaN."""

    def fit(self, X: pd.DataFrame, outcome: np.ndarray) -> "OrderedCodes":
        from training.models import learn_categories

        self.codes_: dict[str, dict[str, float]] = {}
        outcome = np.asarray(outcome, dtype=float)
        for column in learn_categories(X):
            values = X[column].astype(object)
            known = values.notna().to_numpy()
            rates = pd.Series(outcome[known]).groupby(values[known].astype(str).to_numpy()).mean()
            ranked = sorted(rates.index, key=lambda c: (rates[c], c))
            self.codes_[column] = {c: float(i) for i, c in enumerate(ranked)}
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        out = X.copy()
        for column, codes in self.codes_.items():
            if column in out.columns:
                text = out[column].astype(object)
                out[column] = text.where(text.isna(), text.astype(str)).map(codes).astype(float)
        return out


@dataclass
class Comparison:
    """Ordered codes against categorical splits on one target's test rows."""

    target: str
    kind: str
    rows: int
    categorical: dict[str, float]
    ordered: dict[str, float]
    #: metric → (estimate, low, high) of ordered − categorical.
    differences: dict[str, tuple[float, float, float]]
    noise: dict[str, float] = field(default_factory=dict)

    @property
    def worse(self) -> list[str]:
        """The metrics on which ordered codes are worse beyond noise."""
        out = []
        for metric, (_, low, high) in self.differences.items():
            higher_is_better = metric in ("auc", "c_index")
            if (higher_is_better and high < 0) or (not higher_is_better and low > 0):
                out.append(metric)
        return out


@dataclass
class Timing:
    """One TreeSHAP method on one model."""

    target: str
    model: str
    method: str
    rows: int
    seconds: float
    difference: float | None
    difference_missing: float | None
    note: str = ""


def _outcome(rows: Any, survival: bool) -> np.ndarray:
    """What a category's rate is measured on: the label, or for deals being won."""
    return (np.asarray(rows.event) == "won").astype(float) if survival else np.asarray(rows.y, dtype=float)


def _fit(target: str, rows: dict[str, Any], settings: Any, X: dict[str, pd.DataFrame]) -> Any:
    from training.datasets import SURVIVAL_TARGETS
    from training.models import ProbabilityModel
    from training.survival import HazardModel

    cfg = settings.training
    tr, va = rows["train"], rows["validation"]
    if target in SURVIVAL_TARGETS:
        return HazardModel(cfg.model, cfg.horizon_days, cfg.random_seed).fit(
            X["train"], tr.duration, tr.event, X["validation"], va.duration, va.event)
    return ProbabilityModel(cfg.model, cfg.random_seed).fit(X["train"], tr.y, X["validation"], va.y)


def _ece_interval(y: np.ndarray, a: np.ndarray, b: np.ndarray, confidence: float, seed: int) -> tuple[float, float]:
    from training.metrics import expected_calibration_error

    rng = np.random.default_rng(seed)
    spread = []
    for _ in range(ECE_ROUNDS):
        idx = rng.integers(0, len(y), len(y))
        spread.append(expected_calibration_error(y[idx], a[idx]) - expected_calibration_error(y[idx], b[idx]))
    tail = (1 - confidence) / 2
    low, high = np.quantile(spread, [tail, 1 - tail])
    return float(low), float(high)


def compare(target: str, rows: dict[str, Any], settings: Any) -> tuple[Comparison, dict[str, Any], dict[str, pd.DataFrame]]:
    """Train both ways and judge them on the same test rows; the two models and the ordered
    test features come back for the TreeSHAP timings."""
    from training.datasets import SURVIVAL_TARGETS
    from training.gate import calibration_noise, judge
    from training.metrics import expected_calibration_error
    from training.pipeline import gate_rows, predict_for_gate

    cfg = settings.training
    survival = target in SURVIVAL_TARGETS
    plain = {split: r.X for split, r in rows.items()}
    codes = OrderedCodes().fit(rows["train"].X, _outcome(rows["train"], survival))
    ordered = {split: codes.transform(X) for split, X in plain.items()}
    models = {"categorical": _fit(target, rows, settings, plain), "ordered": _fit(target, rows, settings, ordered)}
    truth = gate_rows(rows["test"], survival, cfg.horizon_days)
    predictions = {name: predict_for_gate(m, (plain if name == "categorical" else ordered)["test"], truth)
                   for name, m in models.items()}
    judgement = judge(truth, predictions, cfg)
    metrics = (judgement.rank, judgement.loss)
    differences = {}
    for metric in metrics:
        d = judgement.difference("ordered", "categorical", metric)
        differences[metric] = (d.estimate, d.low, d.high)
    point = {name: {m: judgement.point[name][m] for m in metrics} for name in predictions}
    noise = {}
    if not survival:
        y = np.asarray(truth.y, dtype=float)
        for name, p in predictions.items():
            point[name]["ece"] = expected_calibration_error(y, p)
            noise[name] = calibration_noise(p, cfg.gate_confidence, cfg.random_seed)
        low, high = _ece_interval(y, predictions["ordered"], predictions["categorical"], cfg.gate_confidence,
                                  cfg.random_seed)
        differences["ece"] = (point["ordered"]["ece"] - point["categorical"]["ece"], low, high)
    comparison = Comparison(target, "survival" if survival else "binary", len(truth), point["categorical"],
                            point["ordered"], differences, noise)
    return comparison, models, {"categorical": plain["test"], "ordered": ordered["test"]}


def _matrix(model: Any, X: pd.DataFrame) -> np.ndarray:
    """The booster's input for rows, as Radar explains them (first period for a hazard)."""
    from training.models import input_layout, as_rows

    matrix = input_layout(model).matrix(as_rows(X))
    return np.hstack([matrix, np.zeros((len(matrix), 1))]) if hasattr(model, "n_periods") else matrix


def time_methods(target: str, name: str, model: Any, X: pd.DataFrame) -> list[Timing]:
    """Radar's tables, woodelf and pred_contrib on the same rows of one model."""
    from training import treeshap

    booster = model.booster_
    output = 1 if hasattr(model, "n_periods") else 0
    matrix = _matrix(model, X.head(EXPLAIN_ROWS))
    holes = treeshap.with_missing(matrix)
    out = []
    start = time.perf_counter()
    reference = treeshap.pred_contrib(booster, matrix, output, num_threads=0)
    out.append(Timing(target, name, "pred_contrib (LightGBM, every core)", len(matrix), time.perf_counter() - start,
                      0.0, 0.0))
    reference_holes = treeshap.pred_contrib(booster, holes, output, num_threads=0)
    trees = treeshap.flatten(booster, output, booster.best_iteration or None)
    treeshap.explain(trees, matrix[:300])  # compiled (or read from numba's cache) before timing
    start = time.perf_counter()
    ours = treeshap.explain(trees, matrix)
    out.append(Timing(target, name, "Radar's tables (training.treeshap)", len(matrix), time.perf_counter() - start,
                      treeshap.difference(ours, reference), treeshap.difference(treeshap.explain(trees, holes),
                                                                                reference_holes)))
    out.append(_woodelf(target, name, booster, output, matrix, holes, reference, reference_holes))
    return out


def _woodelf(target: str, name: str, booster: Any, output: int, matrix: np.ndarray, holes: np.ndarray,
             reference: np.ndarray, reference_holes: np.ndarray) -> Timing:
    method = "woodelf 0.4.8 (path-dependent)"
    try:
        from woodelf import WoodelfExplainer
        from woodelf.core.trees.parse_models import load_decision_tree_ensemble_model
    except ImportError as err:  # woodelf is not one of Radar's dependencies
        return Timing(target, name, method, 0, math.nan, None, None, f"not installed ({err})")
    names = booster.feature_name()
    try:
        ensemble = load_decision_tree_ensemble_model(booster, names, output)
    except ValueError as err:
        return Timing(target, name, method, 0, math.nan, None, None, f"refused: {err}")
    explainer = WoodelfExplainer(ensemble)
    limit = booster.best_iteration or None

    def values(rows: np.ndarray) -> np.ndarray:
        frame = pd.DataFrame(rows, columns=names)
        return np.asarray(explainer.shap_values(frame, tree_limit=limit, verbose=False), dtype=float)

    start = time.perf_counter()
    found = values(matrix)
    seconds = time.perf_counter() - start
    # woodelf gives no expected value of its own: compared on the feature columns.
    return Timing(target, name, method, len(matrix), seconds,
                  _feature_difference(found, reference), _feature_difference(values(holes), reference_holes))


def _feature_difference(found: np.ndarray, reference: np.ndarray) -> float:
    from training.treeshap import difference

    return difference(found, reference[:, :-1])


def run_eval(customers: int, seed: int, snapshots: int, cache_dir: Path) -> tuple[list[Comparison], list[Timing], str]:
    from features.ingest import load_crm
    from radar.config import Settings
    from training.datasets import TARGETS
    from training.pipeline import build_target_rows

    world = demo_world(customers, seed, cache_dir)
    base = Settings(work_dir=Path(cache_dir) / "explain-eval")
    settings = base.model_copy(update={"training": base.training.model_copy(update={"n_snapshots": snapshots})})
    say(f"loading {world} and building the snapshots")
    data = load_crm(world, settings=settings).data
    _, rows = build_target_rows(data, settings, TARGETS)
    comparisons, timings = [], []
    sizes = []
    for target in TARGETS:
        split = rows[target]
        if len(split["train"]) == 0 or split["validation"].n_positive == 0 or split["test"].n_positive == 0:
            continue
        say(f"{target}: training with categorical splits and with ordered codes")
        comparison, models, test = compare(target, split, settings)
        comparisons.append(comparison)
        sizes.append(f"{target} {len(split['train']):,} / {len(split['validation']):,} / {len(split['test']):,}")
        for name, model in models.items():
            say(f"{target}, {name}: timing TreeSHAP")
            timings += time_methods(target, name, model, test[name])
    return comparisons, timings, "; ".join(sizes)


def _fmt(value: float, digits: int = 4) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def section(comparisons: list[Comparison], timings: list[Timing], sizes: str, customers: int,
            host_line: list[str]) -> str:
    lines = host_line + [
        f"Size: {customers:,}-customer demo world, Radar's model settings; rows train / validation / test: {sizes}. "
        "Intervals: the promotion gate's paired bootstrap at its confidence (95 %); ECE noise: the ECE a perfectly "
        "calibrated model shows on these test rows. Differences are ordered codes − categorical splits.",
        "",
        "| target | metric | categorical splits | ordered codes | difference | interval | worse beyond noise |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for c in comparisons:
        for metric, (estimate, low, high) in c.differences.items():
            worse = "yes" if metric in c.worse else "no"
            lines.append(f"| {c.target} | {metric} | {_fmt(c.categorical[metric])} | {_fmt(c.ordered[metric])} "
                         f"| {estimate:+.4f} | {low:+.4f} to {high:+.4f} | {worse} |")
        if c.noise:
            lines.append(f"| {c.target} | ECE noise | {_fmt(c.noise['categorical'])} | {_fmt(c.noise['ordered'])} "
                         "| | | |")
    worse_targets = [c.target for c in comparisons if c.worse]
    lines += [
        "",
        "Ordered codes are worse beyond noise on: " + (", ".join(
            f"{c.target} ({', '.join(c.worse)})" for c in comparisons if c.worse) or "no target") + ".",
        "",
        "| target | model | method | rows | seconds | rows/s | largest difference | with 30 % missing | note |",
        "|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for t in timings:
        rate = f"{t.rows / t.seconds:,.0f}" if t.rows and t.seconds and not math.isnan(t.seconds) else ""
        seconds = "" if math.isnan(t.seconds) else f"{t.seconds:.2f}"
        diff = "" if t.difference is None else f"{t.difference:.1e}"
        holes = "" if t.difference_missing is None else f"{t.difference_missing:.1e}"
        lines.append(f"| {t.target} | {t.model} | {t.method} | {t.rows:,} | {seconds} | {rate} | {diff} | {holes} "
                     f"| {t.note} |")
    lines += ["", f"Targets where ordered codes would cost accuracy: {', '.join(worse_targets) or 'none'}.", ""]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = bench_parser("benchmarks.explain_eval", __doc__)
    parser.add_argument("--customers", type=int, default=100_000, help="people in the demo world")
    parser.add_argument("--snapshots", type=int, default=12, help="training snapshots (settings n_snapshots)")
    return parser


def run(args: argparse.Namespace, command: str) -> str:
    host, when = stamp()
    comparisons, timings, sizes = run_eval(args.customers, args.seed, args.snapshots, args.cache_dir)
    return section(comparisons, timings, sizes, args.customers, header(TITLE, host, when, command))


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    publish(args, {TITLE: run(args, command_line("benchmarks.explain_eval", argv))})


if __name__ == "__main__":
    main()
