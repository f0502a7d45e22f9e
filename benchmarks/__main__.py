"""Every benchmark in one command, each figure written to ``docs/benchmarks.md``.

    python -m benchmarks            # the full run: 10 k / 100 k / 1 M customers
    python -m benchmarks --quick    # the smoke run at 2,000 customers (the test suite's)

In order, each in its own Python process (so one's memory never counts in another's):

1. ingest (``benchmarks.ingest_bench``): ``load_crm`` of the raw world (validation and
   identity linking) at 100 k and 1 M customers: wall time, CPU time and peak RSS;
2. features (``benchmarks.features_bench``): ``build_features`` wall time, CPU time and
   peak RSS at each size, and the growth factor between sizes;
3. training (``benchmarks.train_bench``): all four targets on 100 k customers × 12 snapshots;
4. batch scoring (``benchmarks.batch_bench``): everyone, all four targets, top-5 reasons;
5. materialising a day (``benchmarks.materialise_bench``): features into the online store
   and every person's answer precomputed, on the scoring world's champions;
6. HTTP (``benchmarks.http_bench``): one person by id with top-5 reasons, one target and
   all targets, at 1, 8 and 32 clients, against the minimal reference service.

Each section names the machine (cores, memory, load average), the size and the exact
command that produced it, so any figure can be re-run on its own.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.command import CACHE_DIR, DOC_PATH


@dataclass(frozen=True)
class Plan:
    """The sizes of one run."""

    ingest_sizes: tuple[int, ...]
    feature_sizes: tuple[int, ...]
    training: tuple[int, int]  # customers, snapshots
    scoring_customers: int  # batch and HTTP: one trained world serves both
    scoring_snapshots: int
    http_seconds: float
    http_clients: str
    http_rounds: int
    materialise_repeats: int


FULL = Plan(
    (100_000, 1_000_000), (10_000, 100_000, 1_000_000), (100_000, 12), 100_000, 12, 10.0, "1,8,32", 3, 3
)
#: The smoke run: the benchmark smoke tests' size, so the test suite trains that world once.
QUICK = Plan((2_000,), (2_000,), (2_000, 3), 2_000, 3, 2.0, "1,8", 1, 1)


def steps(plan: Plan, cache_dir: Path, doc: Path) -> list[list[str]]:
    """The benchmark commands of a run, in order."""
    common = ["--cache-dir", str(cache_dir), "--doc", str(doc)]
    scoring = ["--customers", str(plan.scoring_customers), "--snapshots", str(plan.scoring_snapshots)]
    return [
        ["benchmarks.ingest_bench", "--sizes", *map(str, plan.ingest_sizes), *common],
        ["benchmarks.features_bench", "--sizes", *map(str, plan.feature_sizes), *common],
        ["benchmarks.train_bench", "--customers", str(plan.training[0]), "--snapshots", str(plan.training[1]),
         *common],
        ["benchmarks.batch_bench", *scoring, *common],
        ["benchmarks.materialise_bench", *scoring, "--repeat", str(plan.materialise_repeats), *common],
        ["benchmarks.http_bench", *scoring, "--duration", str(plan.http_seconds), "--clients", plan.http_clients,
         "--rounds", str(plan.http_rounds), *common],
    ]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the smoke run at 2,000 customers")
    parser.add_argument("--cache-dir", type=Path, default=CACHE_DIR, help="demo worlds and trained champions")
    parser.add_argument("--doc", type=Path, default=DOC_PATH, help="Markdown file the sections are written to")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    plan = QUICK if args.quick else FULL
    for step in steps(plan, args.cache_dir, args.doc):
        started = time.perf_counter()
        print(f"== python -m {' '.join(step)}", file=sys.stderr, flush=True)
        # A failed benchmark stops the run: later figures would be written beside a gap.
        subprocess.run([sys.executable, "-m", *step], check=True)
        print(f"== done in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    print(f"all sections written to {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
