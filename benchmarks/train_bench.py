"""Training benchmark on a demo world.

    python -m benchmarks.train_bench --customers 100000 --snapshots 12

Generates (or reuses, cached under ``data/generated/``) a Parquet demo world, then times
loading, snapshot features + labels and the training of every target. Figures are printed
and written as the "Training" section of ``docs/benchmarks.md`` (the feature build has its
own benchmark, ``benchmarks.features_bench``).

The measurement runs in a fresh process so its peak RSS is its own: ``ru_maxrss`` only
ever grows, so a process that had built a larger world first would report its memory.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from benchmarks.command import (
    CACHE_DIR,
    DEFAULT_SEED,
    Machine,
    bench_parser,
    command_line,
    header,
    publish,
    stamp,
)

#: Training all four targets at 100 k people × 12 snapshots must fit in this on 2 cores.
TRAIN_BUDGET_SECONDS = 300.0
PERSON_TABLES = ("leads", "interactions", "orders", "deals")

T = TypeVar("T")


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (Linux reports KB)."""
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


# --- The world -------------------------------------------------------------------------------


def story_version() -> str:
    """A short fingerprint of the demo generator's code: cached worlds (and what was trained
    on them) are reused only while the story that generated them is unchanged."""
    import hashlib

    import radar.demo

    digest = hashlib.sha1()
    for path in sorted(Path(radar.demo.__file__).parent.glob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:8]


def demo_world(customers: int, seed: int = DEFAULT_SEED, cache_dir: Path = CACHE_DIR) -> Path:
    """A Parquet demo world of ``customers`` people, generated once and then reused."""
    from radar.demo import generate_world

    folder = Path(cache_dir) / f"demo-{customers}-seed{seed}-{story_version()}-parquet"
    done = folder / "GENERATED"
    # The marker is written last, so a half-written world is regenerated, never reused.
    if not done.is_file():
        generate_world(customers, seed, folder, file_format="parquet")
        done.write_text(datetime.now(timezone.utc).isoformat(timespec="seconds"), encoding="utf-8")
    return folder


def _settings(snapshots: int, work_dir: Path) -> Any:
    from radar.config import Settings

    base = Settings(work_dir=work_dir)
    training = base.training.model_copy(update={"n_snapshots": snapshots})
    return base.model_copy(update={"training": training})


def _sizes(data: Any) -> tuple[int, dict[str, int]]:
    """Distinct people across the person tables, and rows per table."""
    import pandas as pd

    events = {}
    ids = []
    for name in PERSON_TABLES:
        table = getattr(data, name)
        if table is not None:
            events[name] = len(table)
            ids.append(pd.Series(table["person_id"].to_numpy()))
    people = int(pd.concat(ids).nunique()) if ids else 0
    return people, events


# --- Training --------------------------------------------------------------------------------


@dataclass
class TrainingBench:
    """Figures of one training run. Peak RSS is measured at the end of each stage."""

    customers: int
    snapshots: int
    people: int = 0
    events: dict[str, int] = field(default_factory=dict)
    rows: dict[str, dict[str, int]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    #: CPU time of the process (all threads): with other work on the machine, wall time
    #: grows but this barely does, so it tells a slow machine from a busy one.
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    chosen: dict[str, str] = field(default_factory=dict)

    @property
    def train_seconds(self) -> float:
        """Training of all targets (model, baselines, judging), without load and features."""
        return sum(v for k, v in self.seconds.items() if k.startswith("train_"))


def bench_training(
    world: Path, snapshots: int, customers: int, *, register: bool = False, work_dir: Path | None = None
) -> TrainingBench:
    """Time load, snapshot features + labels and each target's training on ``world``."""
    from features.ingest import load_crm
    from training import plots
    from training.datasets import TARGETS
    from training.pipeline import build_target_rows, train_target

    work = Path(work_dir or tempfile.mkdtemp(prefix="radar-bench-"))
    settings = _settings(snapshots, work)
    bench = TrainingBench(customers=customers, snapshots=snapshots)

    def stage(name: str, work_fn: Callable[[], T]) -> T:
        started, cpu_started = time.perf_counter(), time.process_time()
        out = work_fn()
        bench.seconds[name] = time.perf_counter() - started
        bench.cpu_seconds[name] = time.process_time() - cpu_started
        bench.peak_rss_mb[name] = peak_rss_mb()
        # Progress on stderr: a 100 k run takes minutes and stdout is the report.
        print(f"  {name}: {bench.seconds[name]:.1f} s, peak RSS {bench.peak_rss_mb[name]:,.0f} MB", file=sys.stderr, flush=True)
        return out

    data = stage("load", lambda: load_crm(world, settings=settings).data)
    bench.people, bench.events = _sizes(data)
    plan, rows = stage("features_and_labels", lambda: build_target_rows(data, settings, TARGETS))
    results = {}
    for target in TARGETS:
        results[target] = stage(f"train_{target}", lambda t=target: train_target(t, rows[t], settings, plan))
        bench.rows[target] = {split: len(r) for split, r in rows[target].items()}
        bundle = results[target].bundle
        bench.chosen[target] = bundle.model_type if bundle else "not trained"
    if register:
        stage("register", lambda: _register(results, rows, settings, plan))
    for result in results.values():
        plots.close_all(result.figures)
    return bench


def _register(results: dict[str, Any], rows: dict[str, Any], settings: Any, plan: Any) -> None:
    """What ``train_all`` does after training, for a benchmark that includes MLflow."""
    from training.registry import register_results

    register_results(results, settings)


def isolated(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn`` in a fresh (spawned) process, so its peak RSS starts from zero."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args, **kwargs).result()


# --- Reporting -------------------------------------------------------------------------------


def training_section(bench: TrainingBench, host: Machine, when: str, command: str) -> str:
    """The "Training" section of docs/benchmarks.md."""
    total = bench.train_seconds
    verdict = "within" if total <= TRAIN_BUDGET_SECONDS else "OVER"
    events = ", ".join(f"{n:,} {t}" for t, n in bench.events.items())
    lines = header("Training", host, when, command) + [
        f"Size: {bench.people:,} people, {sum(bench.events.values()):,} events ({events}), "
        f"{bench.snapshots} snapshots. No MLflow registration unless a `register` row is shown.",
        "",
        "| stage | seconds | CPU seconds | peak RSS after (MB) | rows train / validation / test | served by |",
        "|---|---:|---:|---:|---|---|",
    ]
    for stage, seconds in bench.seconds.items():
        target = stage.removeprefix("train_")
        rows = bench.rows.get(target)
        split = " / ".join(f"{rows[s]:,}" for s in ("train", "validation", "test")) if rows else ""
        lines.append(
            f"| {stage} | {seconds:.1f} | {bench.cpu_seconds[stage]:.1f} | {bench.peak_rss_mb[stage]:,.0f} "
            f"| {split} | {bench.chosen.get(target, '')} |"
        )
    lines += [
        f"| **train, all targets** | **{total:.1f}** | | | | |",
        "",
        f"Budget for training all targets: {TRAIN_BUDGET_SECONDS:.0f} s; this run is {verdict} budget.",
        "",
    ]
    return "\n".join(lines)


# --- Command ---------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = bench_parser("benchmarks.train_bench", __doc__)
    parser.add_argument("--customers", type=int, default=100_000, help="people in the training world")
    parser.add_argument("--snapshots", type=int, default=12, help="training snapshots (settings n_snapshots)")
    parser.add_argument("--register", action="store_true", help="also log and register in MLflow (temp store)")
    return parser


def run(args: argparse.Namespace, command: str, *, isolate: bool = True) -> dict[str, str]:
    """Run the benchmark; return the Markdown sections by title."""
    call = isolated if isolate else (lambda fn, *a, **k: fn(*a, **k))
    host, when = stamp()
    world = demo_world(args.customers, args.seed, args.cache_dir)
    with tempfile.TemporaryDirectory(prefix="radar-bench-") as work:
        if args.register:
            os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{Path(work) / 'mlflow.db'}")
        bench = call(bench_training, world, args.snapshots, args.customers, register=args.register, work_dir=Path(work))
    return {"Training": training_section(bench, host, when, command)}


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    publish(args, run(args, command_line("benchmarks.train_bench", argv)))


if __name__ == "__main__":
    main()
