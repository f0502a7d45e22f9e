"""The HTTP benchmark end to end on a tiny world: both servers answer, every figure is reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.http_bench import CASE_NAMES, KEPT_MARKER, HttpBench, _parser, kept_notes, run, update_doc

ARGV = ["--customers", "2000", "--snapshots", "3", "--duration", "3", "--clients", "2", "--max-requests", "20000"]


@pytest.fixture(scope="module")
def measured(bench_cache: Path) -> tuple[str, HttpBench]:
    argv = ARGV + ["--cache-dir", str(bench_cache)]
    return run(_parser().parse_args(argv), "python -m benchmarks.http_bench " + " ".join(argv))


def test_every_case_has_every_figure_and_no_errors(measured: tuple[str, HttpBench]) -> None:
    _, bench = measured
    assert {(r.server, r.case) for r in bench.results} == set(CASE_NAMES)
    for r in bench.results:
        assert r.clients == 2 and r.requests > 0 and r.seconds > 0, r
        assert 0 < r.p50_ms <= r.p99_ms and r.rps > 0, r
        assert r.errors == 0, r


def test_section_reports_machine_size_command_and_table(measured: tuple[str, HttpBench]) -> None:
    text, _ = measured
    for expected in ("## HTTP", "Machine:", "cores", "GB RAM", "load average", "Date:",
                     "Command: `python -m benchmarks.http_bench", "people in the feature store", "Budgets"):
        assert expected in text, expected
    for name in CASE_NAMES.values():
        row = next(line for line in text.splitlines() if line.startswith(f"| {name} |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == 8 and all(cells), row
        assert cells[6] == "0", row  # errors
        assert float(cells[7]) > 0, row  # ratio to the reference


def test_section_replaces_only_its_own(tmp_path: Path, measured: tuple[str, HttpBench]) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\nIntro.\n\n## Training\n\nKept.\n", encoding="utf-8")
    update_doc(doc, {"HTTP": measured[0]})
    update_doc(doc, {"HTTP": measured[0]})
    text = doc.read_text(encoding="utf-8")
    assert text.count("## HTTP") == 1 and "Kept." in text and "Intro." in text


def test_hand_written_notes_survive_a_rewrite(tmp_path: Path, measured: tuple[str, HttpBench]) -> None:
    doc = tmp_path / "benchmarks.md"
    update_doc(doc, {"HTTP": "## HTTP\n\nold figures\n\n" + KEPT_MARKER + "\n\nprofile notes\n", "Notes": "## Notes\n"})
    update_doc(doc, {"HTTP": measured[0] + "\n" + kept_notes(doc)})
    text = doc.read_text(encoding="utf-8")
    assert "old figures" not in text and "profile notes" in text and "## Notes" in text
