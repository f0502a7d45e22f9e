"""The batch scoring benchmark end to end on a tiny world: Radar's pass and the same-run
pred_contrib loop are both timed, every target is explained by the checked tables and
equals pred_contrib, and the section reports every figure and both budgets."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.batch_bench import BUDGET_RATIO, BUDGET_RECORDS_PER_SECOND, BatchBench, _parser, run
from training.datasets import TARGETS


@pytest.fixture(scope="module")
def section(bench_cache: Path) -> str:
    argv = ["--customers", "2000", "--snapshots", "3", "--rounds", "2", "--cache-dir", str(bench_cache), "--no-doc"]
    return run(_parser().parse_args(argv), "python -m benchmarks.batch_bench " + " ".join(argv))


def _cells(text: str, first: str) -> list[str]:
    row = next(line for line in text.splitlines() if line.startswith(f"| {first} |"))
    return [c.strip() for c in row.strip("|").split("|")]


def test_every_target_is_timed_both_ways_and_equals_pred_contrib(section: str) -> None:
    for expected in ("## Batch scoring", "Machine:", "Date:", "Command: `python -m benchmarks.batch_bench",
                     "2 alternating rounds", "pred_contrib loop"):
        assert expected in section, expected
    scored = [t for t in TARGETS if f"| {t} |" in section]
    assert "purchase_probability" in scored, scored
    for target in scored:
        cells = _cells(section, target)
        if cells[6].startswith("baseline"):  # a tiny world leaves some targets to baselines
            assert int(cells[1].replace(",", "")) > 0, cells
            continue
        rows, seconds, loop_seconds, difference = int(cells[1].replace(",", "")), float(cells[2]), float(cells[8]), float(cells[11])
        assert rows > 0 and seconds > 0 and loop_seconds > 0, cells
        assert cells[6] == "tables", cells  # the checked tables, not the fallback
        assert difference < 1e-9, cells  # exact, not merely within Radar's 1e-6


def test_both_budgets_are_stated_with_the_same_run_ratio(section: str) -> None:
    line = next(line for line in section.splitlines() if line.startswith("Records per second: "))
    rate = float(line.split("Records per second: ")[1].split(" ")[0].replace(",", ""))
    assert rate > 0
    assert f"budget ≥ {BUDGET_RECORDS_PER_SECOND:,.0f}" in line and f"budget ≥ {BUDGET_RATIO:.0f}×" in line
    total = _cells(section, "**all four**")
    ratio = float(total[10].strip("*"))
    assert f"Radar is {ratio:.1f}× the loop" in line


def test_ratio_and_rates_follow_from_the_timings() -> None:
    bench = BatchBench(people=1000, seconds=0.5, cpu_seconds=0.6, loop_seconds=2.0, loop_cpu_seconds=3.0, rounds=3)
    assert bench.records_per_second == 2000 and bench.loop_records_per_second == 500 and bench.ratio == 4.0
