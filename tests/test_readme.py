"""The README's Quickstart is the contract with a new user; CI must run exactly its test line."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def quickstart_lines() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"^##\s+Quickstart\s*$(.*?)^```[^\n]*\n(.*?)^```", text, re.S | re.M)
    assert match, "README.md needs a '## Quickstart' section with a fenced code block"
    return [line for line in match.group(2).splitlines() if line.strip()]


def test_quickstart_has_exactly_two_commands_each_with_its_own_venv() -> None:
    lines = quickstart_lines()
    assert len(lines) == 2
    venvs = [re.search(r"python3 -m venv (\S+)", line) for line in lines]
    assert all(venvs)
    assert venvs[0].group(1) != venvs[1].group(1)


def test_ci_runs_the_readme_test_line() -> None:
    ci_commands = [
        line
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#") and not line.startswith(("set ", "cd "))
    ]
    assert ci_commands == [quickstart_lines()[1]]
