"""The training benchmark end to end on a tiny world: every figure is reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.command import machine, update_doc
from benchmarks.train_bench import _parser, peak_rss_mb, run
from training.datasets import TARGETS

STAGES = ("load", "features_and_labels", *(f"train_{t}" for t in TARGETS))


@pytest.fixture(scope="module")
def sections(bench_cache: Path) -> dict[str, str]:
    argv = ["--customers", "2000", "--snapshots", "3", "--cache-dir", str(bench_cache)]
    # In-process: spawning fresh interpreters would double the test's time for nothing it checks.
    return run(_parser().parse_args(argv), "python -m benchmarks.train_bench " + " ".join(argv), isolate=False)


def test_machine_and_memory_are_measured() -> None:
    host = machine()
    assert host.cores >= 1 and host.memory_gb > 0
    assert peak_rss_mb() > 10


def test_training_section_has_every_figure(sections: dict[str, str]) -> None:
    text = sections["Training"]
    for expected in ("Machine:", "cores", "GB RAM", "Date:", "Command: `python -m benchmarks.train_bench",
                     "people", "events", "3 snapshots", "train, all targets", "budget"):
        assert expected in text, expected
    for stage in STAGES:
        row = next(line for line in text.splitlines() if line.startswith(f"| {stage} |"))
        seconds, cpu, rss = row.split("|")[2:5]
        assert float(seconds) >= 0 and float(cpu) >= 0 and float(rss.replace(",", "")) > 0, row
    for target in TARGETS:
        row = next(line for line in text.splitlines() if line.startswith(f"| train_{target} |"))
        assert " / " in row, row  # rows per split


def test_doc_sections_are_replaced_not_repeated(tmp_path: Path, sections: dict[str, str]) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\nIntro kept.\n\n## Other\n\nKept too.\n", encoding="utf-8")
    update_doc(doc, sections)
    update_doc(doc, sections)
    text = doc.read_text(encoding="utf-8")
    assert text.count("## Training") == 1
    assert "Intro kept." in text and "Kept too." in text
