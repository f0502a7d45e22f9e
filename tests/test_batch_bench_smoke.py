"""The batch scoring benchmark end to end on a tiny world: every target, every figure."""

from __future__ import annotations

from pathlib import Path

from benchmarks.batch_bench import _parser, run
from benchmarks.train_bench import update_doc
from training.datasets import TARGETS

# The same world and training as the HTTP benchmark's smoke run: trained once per session.
ARGV = ["--customers", "2000", "--snapshots", "3"]


def test_batch_section_reports_every_target_and_the_budget(bench_cache: Path, tmp_path: Path) -> None:
    argv = ARGV + ["--cache-dir", str(bench_cache)]
    text = run(_parser().parse_args(argv), "python -m benchmarks.batch_bench " + " ".join(argv))
    for expected in ("## Batch scoring", "Machine:", "cores", "Date:", "Command: `python -m benchmarks.batch_bench",
                     "people scored", "Records per second:", "budget"):
        assert expected in text, expected
    for target in TARGETS:
        row = next(line for line in text.splitlines() if line.startswith(f"| {target} |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        rows, seconds, rate = int(cells[1].replace(",", "")), float(cells[2]), float(cells[4].replace(",", ""))
        assert rows > 0 and seconds > 0 and rate > 0, row
    doc = tmp_path / "benchmarks.md"
    update_doc(doc, {"Batch scoring": text})
    assert doc.read_text(encoding="utf-8").count("## Batch scoring") == 1
