"""The server layers benchmark end to end on the smoke world: every stack is measured,
answers every request with 200, and the section names machine, size and command.

Run in its own interpreter: the benchmark sets up BentoML's server logging, as a served
worker does, which must not leak into the rest of the test session.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from benchmarks.layers_bench import VARIANTS

ROOT = Path(__file__).resolve().parents[1]


def test_every_layer_is_measured_without_errors(bench_cache: Path) -> None:
    argv = ["--customers", "2000", "--snapshots", "3", "--requests", "30", "--rounds", "2",
            "--cache-dir", str(bench_cache), "--no-doc"]
    done = subprocess.run([sys.executable, "-m", "benchmarks.layers_bench", *argv], cwd=ROOT, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    section = done.stdout
    for expected in ("## Server layers", "Machine:", "Date:", "Command: `python -m benchmarks.layers_bench",
                     "2 rounds taking every stack in turn"):
        assert expected in section, expected
    for name, _ in VARIANTS:
        row = next(line for line in section.splitlines() if line.startswith(f"| {name} |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert float(cells[1].replace(",", "")) > 0, row  # CPU µs per request
        assert cells[5] == "0", row  # every request answered 200
