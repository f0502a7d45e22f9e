"""Ingest benchmark: ``load_crm`` of a raw demo world (validation and identity linking).

    python -m benchmarks.ingest_bench --sizes 100000 1000000

For each size it generates (once, cached) a Parquet demo world as written by ``radar demo``
(0.5 % of rows broken, e-mails and phones written many ways, shared switchboard keys), then
runs ``load_crm`` on it in a fresh process per repeat, so that peak RSS is the load's own:
wall time, CPU time (user + system of the process and of its phone-parsing workers, which
contention on a shared machine barely changes), system time alone, and peak RSS of the
process (not the workers': a child starts with its parent's reading, so theirs cannot be
told apart). A row is the repeat with the median wall time. Figures are printed and
written as the "Ingest" section of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.command import Machine, bench_parser, command_line, header, publish, say, stamp
from benchmarks.train_bench import PERSON_TABLES, demo_world, isolated, peak_rss_mb

CACHE_DIR = Path(".radar/bench")
DEFAULT_SIZES = (100_000, 1_000_000)
SECTION = "Ingest"
#: The issue's budget: ``load_crm`` of 1 M customers on 2 cores.
BUDGET_CUSTOMERS = 1_000_000
BUDGET_SECONDS = 90.0
BUDGET_RSS_GIB = 8.0


@dataclass
class IngestRun:
    """One ``load_crm`` of one world."""

    customers: int
    rows: dict[str, int] = field(default_factory=dict)
    rejected: int = 0
    persons: int = 0
    seconds: float = 0.0
    #: User + system seconds of the process and of its (finished) phone workers.
    cpu_seconds: float = 0.0
    system_seconds: float = 0.0
    worker_cpu_seconds: float = 0.0
    peak_rss_mb: float = 0.0
    #: Wall seconds of every repeat, this run being their median.
    repeats: list[float] = field(default_factory=list)

    @property
    def records(self) -> int:
        return sum(self.rows.values())


def bench_load(world: Path, customers: int) -> IngestRun:
    """``load_crm`` of ``world`` (meant for a fresh process: ``ru_maxrss`` only grows)."""
    from features.ingest import load_crm
    from radar.config import Settings

    settings = Settings()
    before, children_before = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = load_crm(world, settings=settings)
    seconds = time.perf_counter() - started
    after, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    own = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    workers = (children.ru_utime - children_before.ru_utime) + (children.ru_stime - children_before.ru_stime)
    tables = result.data.tables()
    return IngestRun(
        customers=customers,
        rows={name: len(tables[name]) for name in PERSON_TABLES if name in tables},
        rejected=len(result.rejects),
        persons=result.report.identity.persons if result.report.identity else 0,
        seconds=seconds,
        cpu_seconds=own + workers,
        system_seconds=(after.ru_stime - before.ru_stime) + (children.ru_stime - children_before.ru_stime),
        worker_cpu_seconds=workers,
        peak_rss_mb=peak_rss_mb(),
    )


def median_run(runs: Sequence[IngestRun]) -> IngestRun:
    ordered = sorted(runs, key=lambda r: r.seconds)
    median = ordered[(len(ordered) - 1) // 2]
    median.repeats = [r.seconds for r in runs]
    return median


# --- Reporting -------------------------------------------------------------------------------


def _seconds(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def ingest_section(runs: Sequence[IngestRun], host: Machine, when: str, command: str) -> str:
    """The "Ingest" section of docs/benchmarks.md."""
    lines = header(SECTION, host, when, command) + [
        "`load_crm` of the raw Parquet demo world (reading, validation with rejects, identity linking, contact "
        "kinds), each repeat in a fresh process. CPU = user + system of the process and of its phone-parsing "
        "workers (contention on a shared machine stretches wall time, barely CPU time); system = the part of it "
        "spent in the kernel (mostly fresh memory); peak RSS = the process's own. "
        "A row is the repeat with the median wall time; the last column lists every repeat's.",
        "",
        "| customers | records | rejected | persons | wall (s) | CPU (s) | of which system (s) | workers' CPU (s) "
        "| peak RSS (MB) | wall of each repeat (s) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in runs:
        lines.append(
            f"| {r.customers:,} | {r.records:,} | {r.rejected:,} | {r.persons:,} | {_seconds(r.seconds)} "
            f"| {_seconds(r.cpu_seconds)} | {_seconds(r.system_seconds)} | {_seconds(r.worker_cpu_seconds)} "
            f"| {r.peak_rss_mb:,.0f} | {' / '.join(_seconds(x) for x in r.repeats)} |"
        )
    lines += ["", budget_line(runs), ""]
    return "\n".join(lines)


def budget_line(runs: Sequence[IngestRun]) -> str:
    at = next((r for r in runs if r.customers == BUDGET_CUSTOMERS), None)
    head = f"Budget at {BUDGET_CUSTOMERS:,} customers: ≤ {BUDGET_SECONDS:.0f} s and ≤ {BUDGET_RSS_GIB:.0f} GiB peak RSS"
    if at is None:
        return head + " (not measured in this run)."

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    peak_gib = at.peak_rss_mb / 1024
    return (f"{head}: wall {at.seconds:.1f} s ({verdict(at.seconds <= BUDGET_SECONDS)}), "
            f"CPU {at.cpu_seconds:.1f} s, peak RSS {peak_gib:.1f} GiB ({verdict(peak_gib <= BUDGET_RSS_GIB)}).")


# --- Command ---------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = bench_parser("benchmarks.ingest_bench", __doc__, cache_dir=CACHE_DIR, cache_help="demo worlds")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES), help="customers per world")
    parser.add_argument("--repeat", type=int, default=1, help="loads per size, each in a fresh process; "
                        "the median is reported")
    return parser


def run(args: argparse.Namespace, command: str) -> tuple[str, list[IngestRun]]:
    host, when = stamp()
    runs = []
    for customers in sorted(args.sizes):
        world = demo_world(customers, args.seed, args.cache_dir)
        repeats = []
        for repeat in range(args.repeat):
            say(f"{customers:,}: load_crm in a fresh process ({repeat + 1} of {args.repeat})")
            result = isolated(bench_load, world, customers)
            say(f"  {result.seconds:.1f} s wall, {result.cpu_seconds:.1f} s CPU, peak RSS {result.peak_rss_mb:,.0f} MB")
            repeats.append(result)
        runs.append(median_run(repeats))
    return ingest_section(runs, host, when, command), runs


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    section, _ = run(args, command_line("benchmarks.ingest_bench", argv))
    publish(args, {SECTION: section})


if __name__ == "__main__":
    main()
