"""`python -m benchmarks --quick`: every benchmark end to end at 2,000 customers.

The full run is the same command without ``--quick`` (docs/benchmarks.md); this smoke run
checks that each section is written with the machine, the size, the command and every
figure, that the HTTP load saw no errors, and that sections replace only themselves.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.http_bench import CASE_NAMES, KEPT_MARKER, kept_notes
from benchmarks.command import update_doc
from training.datasets import TARGETS

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("Ingest", "Features", "Training", "Batch scoring", "Materialising a day", "HTTP")


@pytest.fixture(scope="module")
def doc(tmp_path_factory: pytest.TempPathFactory, bench_cache: Path) -> str:
    work = tmp_path_factory.mktemp("bench")
    path = work / "benchmarks.md"
    path.write_text("# Benchmarks\n\nIntro.\n\n## Notes\n\nKept.\n", encoding="utf-8")
    # The batch smoke test's cache: the same world and champions, trained once.
    command = [sys.executable, "-m", "benchmarks", "--quick", "--cache-dir", str(bench_cache), "--doc", str(path)]
    subprocess.run(command, cwd=ROOT, check=True, timeout=1200)
    return path.read_text(encoding="utf-8")


def _section(text: str, title: str) -> str:
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:] if end < 0 else text[start:end]


def _cells(section: str, first: str) -> list[str]:
    row = next(line for line in section.splitlines() if line.startswith(f"| {first} |"))
    return [c.strip() for c in row.strip("|").split("|")]


def test_every_section_names_machine_size_and_command(doc: str) -> None:
    assert "Intro." in doc and "## Notes\n\nKept." in doc
    for title in SECTIONS:
        section = _section(doc, title)
        assert doc.count(f"## {title}\n") == 1, title
        for expected in ("Machine:", "cores", "GB RAM", "load average", "Date:", "Command: `python -m benchmarks."):
            assert expected in section, (title, expected)
    assert "2,000" in _section(doc, "Features") and "2,000" in _section(doc, "Batch scoring")


def test_training_times_every_target(doc: str) -> None:
    section = _section(doc, "Training")
    for target in TARGETS:
        seconds = float(_cells(section, f"train_{target}")[1])
        assert seconds > 0, target
    assert "budget" in section


def test_batch_scoring_reports_every_target_and_records_per_second(doc: str) -> None:
    section = _section(doc, "Batch scoring")
    for target in TARGETS:
        cells = _cells(section, target)
        # A small target may score in well under 10 ms, so the rate is the figure to check.
        assert int(cells[1].replace(",", "")) > 0 and float(cells[4].replace(",", "")) > 0, cells
    rate = section.split("Records per second: ")[1].split(" ")[0]
    assert float(rate.replace(",", "")) > 0
    # The same-run reference: the pred_contrib loop, and Radar's ratio to it.
    ratio = section.split("Radar is ")[1].split("×")[0]
    assert float(ratio) > 0 and "the pred_contrib loop over the same champions and rows" in section


def test_materialising_a_day_times_every_stage_and_answers_everyone(doc: str) -> None:
    section = _section(doc, "Materialising a day")
    stages = ("features built", "written to the store",
              "champions loaded from MLflow, beyond the store's write (loaded meanwhile)",
              "answers precomputed and recorded")
    seconds = [float(_cells(section, stage)[1]) for stage in stages]
    assert all(s >= 0 for s in seconds) and sum(seconds) > 0
    assert "2,000-customer" in section and int(section.split(" people, ")[1].split(" answers")[0].replace(",", "")) > 0
    assert "Budget at 100,000 customers" in section


def test_http_every_case_answered_without_errors(doc: str) -> None:
    section = _section(doc, "HTTP")
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| case")]
    for name in CASE_NAMES.values():
        mine = [r for r in rows if r.startswith(f"| {name} |")]
        assert mine, name
        for row in mine:
            cells = [c.strip() for c in row.strip("|").split("|")]
            assert int(cells[2].replace(",", "")) > 0, row  # requests
            assert cells[6] == "0", row  # errors
            assert float(cells[7]) > 0, row  # ratio to the reference
    assert "Budgets" in section


def test_hand_written_notes_survive_a_rewrite(tmp_path: Path, doc: str) -> None:
    path = tmp_path / "benchmarks.md"
    update_doc(path, {"HTTP": "## HTTP\n\nold figures\n\n" + KEPT_MARKER + "\n\nprofile notes\n", "Notes": "## Notes\n"})
    update_doc(path, {"HTTP": _section(doc, "HTTP") + "\n" + kept_notes(path)})
    text = path.read_text(encoding="utf-8")
    assert "old figures" not in text and "profile notes" in text and text.count("## HTTP") == 1
