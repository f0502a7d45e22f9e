"""Feature-build benchmark: ``build_features`` on demo worlds of growing size.

    python -m benchmarks.features_bench --sizes 10000 100000 1000000

For each size it generates (once, cached under ``.radar/bench/``) a Parquet demo world and
loads it as ``radar validate`` + ``radar features`` do: ``load_crm`` once, its validated
tables written with ``write_validated`` and read back with ``read_validated`` on every run
(``load_crm`` is not what this measures: ``benchmarks.ingest_bench`` does; its figures here
are kept from when the cache was made). With ``--tile-from N`` sizes above N are not loaded
but N's validated tables tiled (each copy's ids suffixed: distinct persons with the same
histories), as when ``load_crm`` at 1 M did not fit the machine. Then, in a fresh process per size so that peak RSS
is the build's own, it times ``build_features`` at the scoring moment (the day after the
data) for everyone: wall and CPU time (user + sys, which contention on a shared machine
barely changes), the resident memory before the build and the peak after it. Figures and
the growth between sizes are printed and written as the "Features" section of
``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchmarks.command import Machine, bench_parser, command_line, header, publish, say, stamp, utc_now
from benchmarks.train_bench import PERSON_TABLES, demo_world, isolated, peak_rss_mb, story_version

CACHE_DIR = Path(".radar/bench")
DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
#: The issue's budget: features for 1 M customers (about 20 M events) on 2 cores.
BUDGET_CUSTOMERS = 1_000_000
BUDGET_SECONDS = 30.0
BUDGET_RSS_GIB = 6.0
SECTION = "Features"
#: Columns made distinct per copy when a validated world is tiled to a larger size.
TILED_KEYS = frozenset({"person_id", "lead_id", "customer_id", "email", "phone", "order_id", "deal_id"})
#: No size is tiled by default: ``load_crm`` loads 1 M customers (docs/benchmarks.md, "Ingest").
DEFAULT_TILE_FROM = 0


# --- Measuring -------------------------------------------------------------------------------


def cpu_seconds(children: bool = False) -> float:
    """User + system CPU time of this process (all threads) so far, and with ``children``
    of its finished child processes too (``load_crm``'s phone-parsing workers)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    total = usage.ru_utime + usage.ru_stime
    if children:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        total += usage.ru_utime + usage.ru_stime
    return total


def current_rss_mb() -> float:
    """Resident memory of this process now, in MB (NaN where /proc is missing)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            pages = int(handle.read().split()[1])
    except OSError:
        return float("nan")
    return pages * os.sysconf("SC_PAGE_SIZE") / 1024**2


@dataclass
class LoadFigures:
    """``load_crm`` of the raw world, measured when the validated cache was made."""

    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    date: str
    #: Whether this run measured it (False: read from the cache).
    measured: bool = True
    #: Not loaded but tiled from the validated tables of this many customers (see
    #: :func:`tile_validated`); the figures are then the tiling's.
    tiled_from: int | None = None


@dataclass
class FeatureRun:
    """One size: the world, reading the validated tables and ``build_features``."""

    customers: int
    people: int = 0
    features: int = 0
    as_of: str = ""
    rows: dict[str, int] = field(default_factory=dict)
    read_seconds: float = 0.0
    rss_before_mb: float = 0.0
    build_seconds: float = 0.0
    build_cpu_seconds: float = 0.0
    peak_rss_mb: float = 0.0
    load: LoadFigures | None = None
    #: Build wall seconds of every repeat, this run being their median.
    repeats: list[float] = field(default_factory=list)

    @property
    def events(self) -> int:
        """Rows of the person tables (leads, interactions, orders, deals)."""
        return sum(self.rows.values())

    @property
    def build_rss_mb(self) -> float:
        """How far the build pushed the peak above the memory it started from."""
        return self.peak_rss_mb - self.rss_before_mb


def validate_world(world: Path, out_dir: Path) -> LoadFigures:
    """``load_crm`` on the raw world, written as a validated folder (run it isolated)."""
    from features.ingest import load_crm, write_validated
    from radar.config import Settings

    started, cpu_started = time.perf_counter(), cpu_seconds(children=True)
    result = load_crm(world, settings=Settings())
    figures = LoadFigures(
        seconds=time.perf_counter() - started,
        cpu_seconds=cpu_seconds(children=True) - cpu_started,
        peak_rss_mb=peak_rss_mb(),
        date=utc_now(),
    )
    write_validated(result, out_dir)
    return figures


def tile_validated(source: Path, copies: int, out_dir: Path) -> None:
    """A validated folder ``copies`` times larger: each copy of every row gets its ids and
    contact keys suffixed ``~k``, so copies are distinct persons with the same histories.

    Written one copy at a time with pyarrow, so memory stays near one copy of a table.
    """
    import shutil

    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from features.ingest import MARKER_FILE

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MARKER_FILE).unlink(missing_ok=True)
    for path in sorted(source.glob("*.parquet")):
        table = pq.read_table(path)
        # Spend is per channel and day, not per person: it is kept as it is.
        repeats = copies if "person_id" in table.column_names else 1
        with pq.ParquetWriter(out_dir / path.name, table.schema) as writer:
            for k in range(repeats):
                columns = [
                    pc.binary_join_element_wise(column, pa.scalar(f"~{k}", column.type), pa.scalar("", column.type))
                    if name in TILED_KEYS else column
                    for name, column in zip(table.column_names, table.columns)
                ]
                writer.write_table(pa.Table.from_arrays(columns, schema=table.schema))
    # Rejects, report and the marker (last) as the source has them: the format is its own.
    for name in ("rejects.csv", "report.json", MARKER_FILE):
        shutil.copyfile(source / name, out_dir / name)


def validated_world(
    customers: int, seed: int, cache_dir: Path, *, reload: bool = False, tile_from: int | None = None
) -> tuple[Path, LoadFigures]:
    """The validated tables of a demo world, made once (``load_crm`` in a fresh process).

    Sizes above ``tile_from`` (a divisor of them) are that world's validated tables
    tiled instead: ``load_crm`` itself needs more memory than a shared machine has at 1 M.
    """
    from features.ingest import MARKER_FILE

    folder = Path(cache_dir) / f"validated-{customers}-seed{seed}-{story_version()}"
    figures_file = folder.with_name(folder.name + "-load.json")
    if not reload and (folder / MARKER_FILE).is_file() and figures_file.is_file():
        figures = LoadFigures(**{**json.loads(figures_file.read_text(encoding="utf-8")), "measured": False})
        return folder, figures
    if tile_from and customers > tile_from:
        if customers % tile_from:
            raise ValueError(f"{customers:,} customers cannot be tiled from {tile_from:,}")
        source, source_figures = validated_world(tile_from, seed, cache_dir, tile_from=None)
        say(f"{customers:,}: tiling the validated {tile_from:,} world ×{customers // tile_from}")
        started = time.perf_counter()
        isolated(tile_validated, source, customers // tile_from, folder)
        figures = LoadFigures(
            seconds=time.perf_counter() - started, cpu_seconds=float("nan"), peak_rss_mb=float("nan"),
            date=utc_now(), tiled_from=tile_from,
        )
        figures_file.write_text(json.dumps(asdict(figures)), encoding="utf-8")
        return folder, figures
    world = demo_world(customers, seed, cache_dir)
    say(f"{customers:,}: load_crm (the first time only)")
    figures = isolated(validate_world, world, folder)
    # Written after the folder, so an interrupted load is redone rather than half-trusted.
    figures_file.write_text(json.dumps(asdict(figures)), encoding="utf-8")
    return folder, figures


def bench_build(folder: Path, customers: int) -> FeatureRun:
    """Read the validated tables, then time ``build_features`` at the day after the data.

    Meant for a fresh process: ``ru_maxrss`` only grows, so the peak is this build's.
    """
    from features.ingest import read_validated
    from features.pipeline import build_features, feature_columns, input_columns
    from radar.config import Settings
    from training.datasets import data_span

    settings = Settings()
    run = FeatureRun(customers=customers)
    started = time.perf_counter()
    # Only the columns the features read, as `radar features` should: the contact keys and
    # texts it never reads were ~1.7 GB of the 4.3 GB tables at 1 M people.
    data = read_validated(folder, columns=input_columns).data
    run.read_seconds = time.perf_counter() - started
    run.rows = {name: len(getattr(data, name)) for name in PERSON_TABLES if getattr(data, name) is not None}
    as_of = data_span(data)[1]
    run.as_of = str(as_of.date())
    run.rss_before_mb = current_rss_mb()
    started, cpu_started = time.perf_counter(), cpu_seconds()
    frame = build_features(data, as_of, settings.features)
    run.build_seconds = time.perf_counter() - started
    run.build_cpu_seconds = cpu_seconds() - cpu_started
    run.peak_rss_mb = peak_rss_mb()
    run.people, run.features = len(frame), len(feature_columns(frame))
    return run


# --- Reporting -------------------------------------------------------------------------------


def _seconds(value: float) -> str:
    # Two decimals below 10 s, so small worlds do not all read 0.0.
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def _growth(later: float, earlier: float) -> str:
    return f"{later / earlier:.1f}×" if earlier > 0 else "-"


def features_section(runs: Sequence[FeatureRun], host: Machine, when: str, command: str) -> str:
    """The "Features" section of docs/benchmarks.md."""
    lines = header(SECTION, host, when, command) + [
        "`build_features` for everyone at the day after the data (the scoring moment), on validated "
        "tables read with `read_validated` (only the columns the features use: `input_columns`); "
        "each size in a fresh process. CPU = user + sys of the "
        "process (all threads): contention on a shared machine stretches wall time, barely CPU time. "
        "RSS before = resident memory with the tables loaded; build's own = peak after − RSS before. "
        "Each size is built several times, each in a fresh process; a row is the repeat with the "
        "median wall time, and the last column lists every repeat's.",
        "",
        "| customers | people | features | leads | interactions | orders | deals | events "
        "| read validated (s) | build wall (s) | build CPU (s) | RSS before (MB) | peak RSS (MB) | build's own (MB) "
        "| wall of each repeat (s) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in runs:
        tables = " | ".join(f"{r.rows.get(name, 0):,}" for name in PERSON_TABLES)
        lines.append(
            f"| {r.customers:,} | {r.people:,} | {r.features} | {tables} | {r.events:,} | {_seconds(r.read_seconds)} "
            f"| {_seconds(r.build_seconds)} | {_seconds(r.build_cpu_seconds)} | {r.rss_before_mb:,.0f} | {r.peak_rss_mb:,.0f} "
            f"| {r.build_rss_mb:,.0f} | {' / '.join(_seconds(x) for x in r.repeats)} |"
        )
    if len(runs) > 1:
        lines += [
            "",
            "Growth from one size to the next (linear growth = the events' factor):",
            "",
            "| from → to | events | build wall | build CPU | peak RSS | build's own RSS |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for a, b in zip(runs, runs[1:]):
            lines.append(
                f"| {a.customers:,} → {b.customers:,} | {_growth(b.events, a.events)} "
                f"| {_growth(b.build_seconds, a.build_seconds)} | {_growth(b.build_cpu_seconds, a.build_cpu_seconds)} "
                f"| {_growth(b.peak_rss_mb, a.peak_rss_mb)} | {_growth(b.build_rss_mb, a.build_rss_mb)} |"
            )
    lines += ["", "`load_crm` of the raw Parquet world (validation and identity linking), timed when the cache was made:", ""]
    lines += ["| customers | load_crm (s) | CPU (s) | peak RSS (MB) | measured |", "|---:|---:|---:|---:|---|"]
    for r in runs:
        if r.load is None:
            continue
        when = "this run" if r.load.measured else r.load.date
        if r.load.tiled_from:
            lines.append(f"| {r.customers:,} | not run: tiled ×{r.customers // r.load.tiled_from} from the "
                         f"{r.load.tiled_from:,} tables | | | {when} |")
        else:
            lines.append(f"| {r.customers:,} | {r.load.seconds:.1f} | {r.load.cpu_seconds:.1f} "
                         f"| {r.load.peak_rss_mb:,.0f} | {when} |")
    lines += ["", budget_line(runs), ""]
    return "\n".join(lines)


def budget_line(runs: Sequence[FeatureRun]) -> str:
    """The verdict against the issue's budget, when the budget's size was measured."""
    at = next((r for r in runs if r.customers == BUDGET_CUSTOMERS), None)
    head = f"Budget at {BUDGET_CUSTOMERS:,} customers: ≤ {BUDGET_SECONDS:.0f} s and ≤ {BUDGET_RSS_GIB:.0f} GiB peak RSS"
    if at is None:
        return head + " (not measured in this run)."

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    peak_gib = at.peak_rss_mb / 1024
    return (
        f"{head}: wall {at.build_seconds:.1f} s ({verdict(at.build_seconds <= BUDGET_SECONDS)}), "
        f"CPU {at.build_cpu_seconds:.1f} s ({verdict(at.build_cpu_seconds <= BUDGET_SECONDS)}), "
        f"peak RSS {peak_gib:.1f} GiB ({verdict(peak_gib <= BUDGET_RSS_GIB)})."
    )


# --- Command ---------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = bench_parser("benchmarks.features_bench", __doc__, cache_dir=CACHE_DIR,
                          cache_help="worlds and validated tables")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES), help="customers per world")
    parser.add_argument("--reload", action="store_true", help="run load_crm again instead of using the cache")
    parser.add_argument(
        "--tile-from", type=int, default=DEFAULT_TILE_FROM,
        help="larger sizes tile this size's validated tables instead of running load_crm (0: never)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="builds per size, each in a fresh process; "
                        "the median is reported")
    return parser


def median_run(benches: Sequence[FeatureRun], load: LoadFigures | None) -> FeatureRun:
    """The repeat with the median build wall time (one build at 100 k lasts under a second,
    so a single run moves with whatever else the machine did in it), with every repeat's
    wall time kept beside it."""
    ordered = sorted(benches, key=lambda b: b.build_seconds)
    median = ordered[(len(ordered) - 1) // 2]
    median.load, median.repeats = load, [b.build_seconds for b in benches]
    return median


def run(args: argparse.Namespace, command: str) -> tuple[str, list[FeatureRun]]:
    """Run the benchmark; return the Markdown section and the figures."""
    host, when = stamp()
    runs = []
    for customers in sorted(args.sizes):
        folder, load = validated_world(
            customers, args.seed, args.cache_dir, reload=args.reload, tile_from=args.tile_from or None
        )
        benches = []
        for repeat in range(args.repeat):
            say(f"{customers:,}: build_features in a fresh process ({repeat + 1} of {args.repeat})")
            bench = isolated(bench_build, folder, customers)
            say(f"  {bench.build_seconds:.2f} s wall, {bench.build_cpu_seconds:.2f} s CPU, "
                f"peak RSS {bench.peak_rss_mb:,.0f} MB")
            benches.append(bench)
        runs.append(median_run(benches, load))
    return features_section(runs, host, when, command), runs


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    section, _ = run(args, command_line("benchmarks.features_bench", argv))
    publish(args, {SECTION: section})


if __name__ == "__main__":
    main()
