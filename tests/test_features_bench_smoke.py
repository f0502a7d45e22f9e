"""The feature benchmark end to end on a tiny world: every figure is printed and written."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from benchmarks.features_bench import (
    BUDGET_CUSTOMERS,
    FeatureRun,
    LoadFigures,
    features_section,
    main,
    median_run,
    validated_world,
)
from benchmarks.command import machine

SIZE = 2000


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, Path]:
    work = tmp_path_factory.mktemp("features-bench")
    doc = work / "benchmarks.md"
    doc.write_text("# Benchmarks\n\nIntro.\n\n## Training\n\nKept.\n\n## Features\n\nOld figures.\n", encoding="utf-8")
    cache = work / "cache"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        main(["--sizes", str(SIZE), "--cache-dir", str(cache), "--doc", str(doc)])
    return printed.getvalue(), doc.read_text(encoding="utf-8"), cache


def _row(text: str, first_cell: str) -> list[str]:
    row = next(line for line in text.splitlines() if line.startswith(f"| {first_cell} |"))
    return [cell.strip() for cell in row.strip("|").split("|")]


def test_every_figure_is_printed(bench: tuple[str, str, Path]) -> None:
    printed, _, _ = bench
    for expected in ("## Features", "Machine:", "cores", "GB RAM", "load average", "Date:",
                     f"Command: `python -m benchmarks.features_bench --sizes {SIZE}", "not measured in this run"):
        assert expected in printed, expected
    header = _row(printed, "customers")
    cells = dict(zip(header, _row(printed, f"{SIZE:,}")))
    assert len(cells) == 15 and all(cells.values()), cells
    repeats = [float(x) for x in cells.pop("wall of each repeat (s)").split(" / ")]
    numbers = {k: float(v.replace(",", "")) for k, v in cells.items()}
    # Three builds by default; the row is the median one.
    assert len(repeats) == 3 and sorted(repeats)[1] == numbers["build wall (s)"]
    assert numbers["people"] > SIZE / 2 and numbers["features"] > 50
    assert numbers["interactions"] > numbers["leads"] > 0 and numbers["orders"] > 0 and numbers["deals"] > 0
    assert numbers["events"] == sum(numbers[t] for t in ("leads", "interactions", "orders", "deals"))
    assert numbers["build wall (s)"] >= 0 and numbers["build CPU (s)"] >= 0
    # The build ran in its own process: memory before it is the loaded tables, and the peak is at least that.
    assert 0 < numbers["RSS before (MB)"] <= numbers["peak RSS (MB)"]
    # The second row of this size is load_crm's, measured now since the cache was empty.
    load_row = [line for line in printed.splitlines() if line.startswith(f"| {SIZE:,} |")][1]
    _, seconds, cpu, rss, measured = (cell.strip() for cell in load_row.strip("|").split("|"))
    assert float(seconds) > 0 and float(cpu) > 0 and float(rss.replace(",", "")) > 0 and measured == "this run"


def test_only_the_features_section_is_replaced(bench: tuple[str, str, Path]) -> None:
    printed, doc, _ = bench
    assert "Intro." in doc and "## Training\n\nKept." in doc
    assert doc.count("## Features") == 1 and "Old figures." not in doc
    assert printed.split("written to")[0].strip() in doc


def test_the_validated_tables_are_cached(bench: tuple[str, str, Path]) -> None:
    _, _, cache = bench
    folder, figures = validated_world(SIZE, 7, cache)
    assert (folder / "radar-validated.json").is_file()
    assert not figures.measured and figures.seconds > 0 and figures.date


def test_growth_and_budget_verdicts() -> None:
    load = LoadFigures(seconds=1.0, cpu_seconds=1.0, peak_rss_mb=100.0, date="then", measured=False)
    small = FeatureRun(customers=100_000, people=100_000, features=118, rows={"interactions": 2_000_000},
                       rss_before_mb=500, build_seconds=2.0, build_cpu_seconds=1.5, peak_rss_mb=900, load=load)
    big = FeatureRun(customers=BUDGET_CUSTOMERS, people=1_000_000, features=118, rows={"interactions": 20_000_000},
                     rss_before_mb=5_000, build_seconds=40.0, build_cpu_seconds=15.0, peak_rss_mb=9_000, load=load)
    text = features_section([small, big], machine(), "now", "python -m benchmarks.features_bench")
    growth = _row(text, f"{small.customers:,} → {big.customers:,}")
    assert growth == [f"{small.customers:,} → {big.customers:,}", "10.0×", "20.0×", "10.0×", "10.0×", "10.0×"]
    assert "wall 40.0 s (NOT met), CPU 15.0 s (met), peak RSS 8.8 GiB (NOT met)" in text


def test_the_median_repeat_is_reported_with_every_wall_time() -> None:
    load = LoadFigures(seconds=1.0, cpu_seconds=1.0, peak_rss_mb=100.0, date="then", measured=False)
    runs = [FeatureRun(customers=10, build_seconds=s, build_cpu_seconds=s / 2) for s in (0.9, 0.4, 0.6)]
    median = median_run(runs, load)
    assert median.build_seconds == 0.6 and median.build_cpu_seconds == 0.3
    assert median.repeats == [0.9, 0.4, 0.6] and median.load is load
