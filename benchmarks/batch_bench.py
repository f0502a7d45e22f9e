"""Batch scoring benchmark: everyone scored for all four targets with top-5 reasons, against
a plain ``pred_contrib`` loop over the same champions and rows, in the same run.

    python -m benchmarks.batch_bench --customers 100000

Reuses the champions the HTTP benchmark trains for the same world (``benchmarks.http_bench
.prepare``, cached under ``data/generated/``), builds everyone's features at the latest
materialised day (not timed: the "Features" section measures that) and times what
``radar score DIR --top-k 5`` does after: every eligible person through every champion,
with the five reasons of each score. A record is one person scored for every target that
applies to them.

The reference is the least any explaining scorer pays: for each champion, its input matrix
for the same rows and LightGBM's ``predict(pred_contrib=True)`` on every core, nothing
else (no prediction, no sentences). The two are timed in alternating rounds (Radar, loop,
Radar, loop…), so a change in the machine's load falls on both, and the median round of
each is reported. The same run also compares, for every row, the contributions Radar
explained with against the loop's: the largest difference relative to the largest
contribution is each target's equality figure. Figures are printed and written as the
"Batch scoring" section of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.command import bench_parser, command_line, header, publish, say, stamp
from benchmarks.http_bench import prepare
from benchmarks.train_bench import demo_world

TOP_K = 5
#: The issue's budgets: all four targets with top-5 reasons at this rate, and this many
#: times the same-run pred_contrib loop.
BUDGET_RECORDS_PER_SECOND = 10_000.0
BUDGET_RATIO = 3.0


@dataclass
class TargetFigures:
    """One target: Radar's pass and the pred_contrib loop on the same rows."""

    rows: int
    seconds: float
    cpu_seconds: float
    trees: int
    #: How Radar explained it ("tables", or "pred_contrib" with the reason), and the time
    #: to read the model into tables and check them (once per process, before the rounds).
    method: str
    setup_seconds: float
    loop_seconds: float
    loop_cpu_seconds: float
    #: Largest |Radar's contribution − pred_contrib's| over the largest |contribution|, all rows.
    difference: float


@dataclass
class BatchBench:
    """The median round of Radar's batch scoring and of the pred_contrib loop."""

    people: int
    seconds: float
    cpu_seconds: float
    loop_seconds: float
    loop_cpu_seconds: float
    rounds: int
    targets: dict[str, TargetFigures] = field(default_factory=dict)

    @property
    def records_per_second(self) -> float:
        return self.people / self.seconds if self.seconds else float("nan")

    @property
    def loop_records_per_second(self) -> float:
        return self.people / self.loop_seconds if self.loop_seconds else float("nan")

    @property
    def ratio(self) -> float:
        return self.loop_seconds / self.seconds if self.seconds else float("nan")


def _first_period(model: Any, matrix: Any) -> Any:
    """What is explained of a hazard model: each deal's first-period row (serving.reasons)."""
    import numpy as np

    return np.hstack([matrix, np.zeros((len(matrix), 1))]) if hasattr(model, "n_periods") else matrix


def _loop(champion: Any, frame: Any) -> tuple[Any, float, float]:
    """The reference: input matrix and pred_contrib on every core, for one champion."""
    from features.rows import FeatureRows
    from training.models import input_layout
    from training.treeshap import pred_contrib

    wall, cpu = time.perf_counter(), time.process_time()
    model = champion.bundle.model
    rows = FeatureRows.from_frame(frame).covering(champion.bundle.feature_names)
    matrix = _first_period(model, input_layout(model).matrix(rows))
    out = pred_contrib(model.booster_, matrix, 1 if hasattr(model, "n_periods") else 0, num_threads=0)
    return out, time.perf_counter() - wall, time.process_time() - cpu


def bench_batch(customers: int, seed: int, snapshots: int, cache_dir: Path, top_k: int = TOP_K,
                rounds: int = 3) -> BatchBench:
    """Score everyone for every champion with reasons, and run the pred_contrib loop on the
    same rows, in alternating rounds; time each target."""
    import numpy as np
    import pandas as pd

    from features.ingest import load_crm
    from features.pipeline import build_features
    from features.rows import FeatureRows
    from radar.config import Settings
    from serving.scoring import ValueBasis, load_champions, score_target, target_rows
    from training import treeshap
    from training.datasets import data_span
    from training.models import input_layout

    prepared = prepare(customers, seed, snapshots, cache_dir)
    settings = Settings(work_dir=prepared.work_dir, mlflow_tracking_uri=prepared.tracking_uri)
    data = load_crm(demo_world(customers, seed, cache_dir), settings=settings).data
    as_of = data_span(data)[1].normalize()
    features = build_features(data, as_of, settings.features)
    champions = load_champions(settings)
    # The loop explains LightGBM champions; a baseline serving a target is scored by Radar only.
    boosted = {t: c for t, c in champions.items() if getattr(c.bundle.model, "booster_", None) is not None}
    # Each target's rows (time to close: one per open deal), as score_people builds them.
    people = {t: target_rows(t, data, features, pd.Timestamp(as_of), settings) for t in champions}
    config = settings.explain

    # Once per process, as `radar score` pays it: each champion read into tables and checked
    # against pred_contrib (on rows at its splits' edges and on its first rows).
    explainers, setup = {}, {}
    for target, champion in boosted.items():
        model = champion.bundle.model
        start = time.perf_counter()
        explainers[target] = treeshap.explainer(model.booster_, 1 if hasattr(model, "n_periods") else 0,
                                                method=config.method, tolerance=config.tolerance,
                                                check_rows=config.check_rows)
        rows = FeatureRows.from_frame(people[target]).covering(champion.bundle.feature_names)
        first = rows.take(np.arange(min(len(rows), config.check_rows)))
        explainers[target].contributions(_first_period(model, input_layout(model).matrix(first)))
        setup[target] = time.perf_counter() - start

    radar_rounds: list[tuple[float, float, dict[str, tuple[int, float, float]]]] = []
    loop_rounds: list[tuple[float, float, dict[str, tuple[float, float]]]] = []
    reference: dict[str, Any] = {}
    for r in range(rounds):
        say(f"round {r + 1}/{rounds}: Radar's batch scoring")
        wall, cpu = time.perf_counter(), time.process_time()
        basis = ValueBasis.of(features)
        per_target = {}
        for target, champion in champions.items():
            t_wall, t_cpu = time.perf_counter(), time.process_time()
            rows_now = target_rows(target, data, features, pd.Timestamp(as_of), settings)
            scored = score_target(target, champion, rows_now, as_of, settings, top_k, basis)
            per_target[target] = (len(scored), time.perf_counter() - t_wall, time.process_time() - t_cpu)
        radar_rounds.append((time.perf_counter() - wall, time.process_time() - cpu, per_target))
        say(f"round {r + 1}/{rounds}: the pred_contrib loop")
        wall, cpu = time.perf_counter(), time.process_time()
        loop_target = {}
        for target, champion in boosted.items():
            reference[target], seconds, cpu_seconds = _loop(champion, people[target])
            loop_target[target] = (seconds, cpu_seconds)
        loop_rounds.append((time.perf_counter() - wall, time.process_time() - cpu, loop_target))

    radar = _median(radar_rounds)
    loop = _median(loop_rounds)
    bench = BatchBench(people=len(features), seconds=radar[0], cpu_seconds=radar[1], loop_seconds=loop[0],
                       loop_cpu_seconds=loop[1], rounds=rounds)
    for target, champion in champions.items():
        model = champion.bundle.model
        n_rows, seconds, cpu_seconds = radar[2][target]
        if target not in boosted:
            bench.targets[target] = TargetFigures(
                rows=n_rows, seconds=seconds, cpu_seconds=cpu_seconds, trees=0,
                method=f"baseline {champion.bundle.model_type}", setup_seconds=0.0, loop_seconds=0.0,
                loop_cpu_seconds=0.0, difference=math.nan)
            continue
        rows = FeatureRows.from_frame(people[target]).covering(champion.bundle.feature_names)
        ours = explainers[target].contributions(_first_period(model, input_layout(model).matrix(rows)))
        explainer = explainers[target]
        method = explainer.method if explainer.reason is None else f"{explainer.method} ({explainer.reason})"
        bench.targets[target] = TargetFigures(
            rows=n_rows, seconds=seconds, cpu_seconds=cpu_seconds, trees=model.booster_.num_trees(), method=method,
            setup_seconds=setup[target], loop_seconds=loop[2][target][0], loop_cpu_seconds=loop[2][target][1],
            difference=treeshap.difference(ours, reference[target]),
        )
    return bench


def _median(rounds: list[tuple[float, float, dict[str, Any]]]) -> tuple[float, float, dict[str, Any]]:
    """The round with the median wall time (the lower middle one of an even count)."""
    middle = statistics.median_low([r[0] for r in rounds])
    return next(r for r in rounds if r[0] == middle)


def batch_section(bench: BatchBench, customers: int, host_line: list[str]) -> str:
    rate, loop_rate, ratio = bench.records_per_second, bench.loop_records_per_second, bench.ratio
    verdict = "met" if rate >= BUDGET_RECORDS_PER_SECOND else "NOT met"
    ratio_verdict = "met" if ratio >= BUDGET_RATIO else "NOT met"
    lines = host_line + [
        f"Size: {customers:,}-customer demo world, {bench.people:,} people scored at the latest day, "
        f"top-{TOP_K} reasons for every score. A record is one person with every target that applies. "
        f"Radar's batch scoring and the pred_contrib loop (each champion's input matrix and LightGBM's "
        f"`pred_contrib` on every core, for the same rows) in {bench.rounds} alternating rounds; the median "
        "round of each. Setup: reading each champion into TreeSHAP tables and checking them against "
        "pred_contrib, once per process (not in the rounds). Largest difference: Radar's contributions "
        "against pred_contrib's over every row, relative to the largest contribution (tolerance 1e-6).",
        "",
        "| target | rows | seconds | CPU seconds | rows/s | trees | explained by | setup (s) "
        "| pred_contrib loop (s) | loop CPU (s) | × loop | largest difference |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for target, f in bench.targets.items():
        if math.isnan(f.difference):  # a baseline: nothing for the loop to explain
            lines.append(f"| {target} | {f.rows:,} | {f.seconds:.2f} | {f.cpu_seconds:.2f} | {f.rows / f.seconds:,.0f} "
                         f"| | {f.method} | | | | | |")
            continue
        lines.append(
            f"| {target} | {f.rows:,} | {f.seconds:.2f} | {f.cpu_seconds:.2f} | {f.rows / f.seconds:,.0f} | {f.trees} "
            f"| {f.method} | {f.setup_seconds:.2f} | {f.loop_seconds:.2f} | {f.loop_cpu_seconds:.2f} "
            f"| {f.loop_seconds / f.seconds:.1f} | {f.difference:.1e} |"
        )
    lines += [
        f"| **all four** | **{sum(f.rows for f in bench.targets.values()):,}** | **{bench.seconds:.1f}** "
        f"| {bench.cpu_seconds:.1f} | | | | {sum(f.setup_seconds for f in bench.targets.values()):.2f} "
        f"| **{bench.loop_seconds:.1f}** | {bench.loop_cpu_seconds:.1f} | **{ratio:.1f}** | |",
        "",
        f"Records per second: {rate:,.0f} (budget ≥ {BUDGET_RECORDS_PER_SECOND:,.0f}: {verdict}); "
        f"the pred_contrib loop over the same champions and rows: {loop_rate:,.0f} records/s; "
        f"Radar is {ratio:.1f}× the loop (budget ≥ {BUDGET_RATIO:.0f}×: {ratio_verdict}).",
        "",
    ]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = bench_parser("benchmarks.batch_bench", __doc__)
    parser.add_argument("--customers", type=int, default=100_000, help="people in the demo world")
    parser.add_argument("--snapshots", type=int, default=12, help="training snapshots (settings n_snapshots)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of Radar and the loop")
    return parser


def run(args: argparse.Namespace, command: str) -> str:
    host, when = stamp()
    bench = bench_batch(args.customers, args.seed, args.snapshots, args.cache_dir, rounds=args.rounds)
    return batch_section(bench, args.customers, header("Batch scoring", host, when, command))


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    publish(args, {"Batch scoring": run(args, command_line("benchmarks.batch_bench", argv))})


if __name__ == "__main__":
    main()
