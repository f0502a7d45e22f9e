"""The ingest benchmark end to end on a tiny world: every figure is printed and written."""

from __future__ import annotations

import contextlib
import io

import pytest

from benchmarks.command import machine
from benchmarks.ingest_bench import BUDGET_CUSTOMERS, IngestRun, ingest_section, main, median_run

SIZE = 2000


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    work = tmp_path_factory.mktemp("ingest-bench")
    doc = work / "benchmarks.md"
    doc.write_text("# Benchmarks\n\nIntro.\n\n## Ingest\n\nOld figures.\n\n## Features\n\nKept.\n", encoding="utf-8")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        main(["--sizes", str(SIZE), "--cache-dir", str(work / "cache"), "--doc", str(doc)])
    return printed.getvalue(), doc.read_text(encoding="utf-8")


def _row(text: str, first_cell: str) -> list[str]:
    row = next(line for line in text.splitlines() if line.startswith(f"| {first_cell} |"))
    return [cell.strip() for cell in row.strip("|").split("|")]


def test_every_figure_is_printed_and_written(bench: tuple[str, str]) -> None:
    printed, doc = bench
    for expected in ("## Ingest", "Machine:", "load average", "Date:",
                     f"Command: `python -m benchmarks.ingest_bench --sizes {SIZE}", "not measured in this run"):
        assert expected in printed, expected
    cells = dict(zip(_row(printed, "customers"), _row(printed, f"{SIZE:,}")))
    assert len(cells) == 10 and all(cells.values()), cells
    numbers = {k: float(v.replace(",", "")) for k, v in cells.items() if k != "wall of each repeat (s)"}
    # The demo world breaks some rows on purpose and links several records per person.
    assert numbers["records"] > numbers["persons"] > SIZE / 2 and numbers["rejected"] > 0
    assert 0 < numbers["wall (s)"] and 0 < numbers["of which system (s)"] <= numbers["CPU (s)"]
    assert numbers["peak RSS (MB)"] > 100
    assert "Intro." in doc and "## Features\n\nKept." in doc and "Old figures." not in doc
    assert printed.split("written to")[0].strip() in doc


def test_budget_verdicts_and_the_median_repeat() -> None:
    runs = [IngestRun(customers=BUDGET_CUSTOMERS, seconds=s, cpu_seconds=s, peak_rss_mb=9_000) for s in (120.0, 80.0, 85.0)]
    median = median_run(runs)
    assert median.seconds == 85.0 and median.repeats == [120.0, 80.0, 85.0]
    text = ingest_section([median], machine(), "now", "python -m benchmarks.ingest_bench")
    assert "wall 85.0 s (met), CPU 85.0 s, peak RSS 8.8 GiB (NOT met)" in text
