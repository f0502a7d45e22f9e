"""Batch scoring benchmark: everyone scored for all four targets with top-5 reasons.

    python -m benchmarks.batch_bench --customers 100000

Reuses the champions the HTTP benchmark trains for the same world (``benchmarks.http_bench
.prepare``, cached under ``data/generated/``), builds everyone's features at the latest
materialised day (not timed: the "Features" section measures that) and times what
``radar score DIR --top-k 5`` does after: every eligible person through every champion,
with the five reasons of each score. A record is one person scored for every target that
applies to them. Figures are printed and written as the "Batch scoring" section of
``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.command import bench_parser, command_line, header, publish, stamp
from benchmarks.http_bench import prepare
from benchmarks.train_bench import demo_world

TOP_K = 5
#: The issue's budget: all four targets with top-5 reasons.
BUDGET_RECORDS_PER_SECOND = 5000.0


@dataclass
class BatchBench:
    """One timed pass of batch scoring."""

    people: int
    seconds: float
    cpu_seconds: float
    #: Per target: (rows scored, seconds, CPU seconds, trees of its champion).
    targets: dict[str, tuple[int, float, float, int]] = field(default_factory=dict)

    @property
    def records_per_second(self) -> float:
        return self.people / self.seconds if self.seconds else float("nan")


def bench_batch(customers: int, seed: int, snapshots: int, cache_dir: Path, top_k: int = TOP_K) -> BatchBench:
    """Score everyone for every champion with reasons; time each target."""
    import pandas as pd

    from features.ingest import load_crm
    from features.pipeline import build_features
    from radar.config import Settings
    from serving.scoring import ValueBasis, load_champions, score_target, target_rows
    from training.datasets import data_span

    prepared = prepare(customers, seed, snapshots, cache_dir)
    settings = Settings(work_dir=prepared.work_dir, mlflow_tracking_uri=prepared.tracking_uri)
    data = load_crm(demo_world(customers, seed, cache_dir), settings=settings).data
    as_of = data_span(data)[1].normalize()
    features = build_features(data, as_of, settings.features)
    champions = load_champions(settings)
    bench = BatchBench(people=len(features), seconds=0.0, cpu_seconds=0.0)
    wall, cpu = time.perf_counter(), time.process_time()
    basis = ValueBasis.of(features)
    for target, champion in champions.items():
        t_wall, t_cpu = time.perf_counter(), time.process_time()
        rows = target_rows(target, data, features, pd.Timestamp(as_of), settings)
        scored = score_target(target, champion, rows, as_of, settings, top_k, basis)
        booster = getattr(champion.bundle.model, "booster_", None)
        bench.targets[target] = (len(scored), time.perf_counter() - t_wall, time.process_time() - t_cpu,
                                 booster.num_trees() if booster is not None else 0)
    bench.seconds, bench.cpu_seconds = time.perf_counter() - wall, time.process_time() - cpu
    return bench


def batch_section(bench: BatchBench, customers: int, host_line: list[str]) -> str:
    rate = bench.records_per_second
    verdict = "met" if rate >= BUDGET_RECORDS_PER_SECOND else "NOT met"
    lines = host_line + [
        f"Size: {customers:,}-customer demo world, {bench.people:,} people scored at the latest day, "
        f"top-{TOP_K} reasons for every score. A record is one person with every target that applies.",
        "",
        "| target | rows | seconds | CPU seconds | rows/s | trees |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for target, (rows, seconds, cpu, trees) in bench.targets.items():
        lines.append(f"| {target} | {rows:,} | {seconds:.2f} | {cpu:.2f} | {rows / seconds:,.0f} | {trees} |")
    lines += [
        f"| **all four** | **{sum(r[0] for r in bench.targets.values()):,}** | **{bench.seconds:.1f}** "
        f"| {bench.cpu_seconds:.1f} | | |",
        "",
        f"Records per second: {rate:,.0f} (budget ≥ {BUDGET_RECORDS_PER_SECOND:,.0f}: {verdict}).",
        "",
    ]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = bench_parser("benchmarks.batch_bench", __doc__)
    parser.add_argument("--customers", type=int, default=100_000, help="people in the demo world")
    parser.add_argument("--snapshots", type=int, default=12, help="training snapshots (settings n_snapshots)")
    return parser


def run(args: argparse.Namespace, command: str) -> str:
    host, when = stamp()
    bench = bench_batch(args.customers, args.seed, args.snapshots, args.cache_dir)
    return batch_section(bench, args.customers, header("Batch scoring", host, when, command))


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    publish(args, {"Batch scoring": run(args, command_line("benchmarks.batch_bench", argv))})


if __name__ == "__main__":
    main()
