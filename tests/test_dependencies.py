"""Dependencies: every one pinned to a compatible range, and none with a fixable known
vulnerability installed (``pip-audit`` over the environment, see pip-audit-ignore.txt)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
IGNORE_FILE = ROOT / "pip-audit-ignore.txt"


def _requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    listed = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        listed += extra
    return [Requirement(r) for r in listed]


def bounds_missing(requirement: Requirement) -> list[str]:
    """What a requirement lacks of a compatible range: a lower and an upper bound."""
    ops = {spec.operator for spec in requirement.specifier}
    missing = []
    if not ops & {">=", ">", "~=", "=="}:
        missing.append("lower bound")
    if not ops & {"<", "<=", "~=", "=="}:
        missing.append("upper bound")
    return missing


def ignored_ids(path: Path = IGNORE_FILE) -> dict[str, str]:
    """Vulnerability id → reason, from the ignore file (a reason is required)."""
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        entry, _, reason = line.partition("#")
        if entry.strip():
            assert reason.strip(), f"{path.name}: {entry.strip()} has no reason"
            out[entry.strip()] = reason.strip()
    return out


def unacceptable(report: dict, ignored: dict[str, str]) -> list[str]:
    """Vulnerabilities in a ``pip-audit -f json`` report that fail the check: any with a
    fixed release (ignored or not: upgrade instead), and unfixed ones not in the ignore file."""
    problems = []
    for dependency in report.get("dependencies", []):
        for vuln in dependency.get("vulns", []):
            ids = {vuln["id"], *vuln.get("aliases", [])}
            where = f"{dependency['name']} {dependency['version']}: {vuln['id']}"
            if vuln.get("fix_versions"):
                problems.append(f"{where} fixed in {', '.join(vuln['fix_versions'])}: raise the bound")
            elif not ids & set(ignored):
                problems.append(f"{where} has no fix: list it in {IGNORE_FILE.name} with the reason")
    return problems


def test_every_dependency_has_a_lower_and_an_upper_bound() -> None:
    requirements = _requirements()
    assert len(requirements) > 20
    loose = {str(r): bounds_missing(r) for r in requirements if bounds_missing(r)}
    assert not loose, loose


def test_installed_versions_are_inside_the_declared_ranges() -> None:
    outside = {}
    for requirement in _requirements():
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": "dev"}):
            continue
        try:
            installed = version(requirement.name)
        except PackageNotFoundError:
            continue  # an extra this environment does not install
        if not requirement.specifier.contains(installed, prereleases=True):
            outside[requirement.name] = f"{installed} not in {requirement.specifier}"
    assert not outside, outside


def test_bound_and_report_checks_catch_what_they_should() -> None:
    assert bounds_missing(Requirement("pyarrow>=15")) == ["upper bound"]
    assert bounds_missing(Requirement("x<2")) == ["lower bound"]
    assert bounds_missing(Requirement("x~=1.4")) == [] and bounds_missing(Requirement("x>=1,<2")) == []
    report = {"dependencies": [
        {"name": "a", "version": "1.0", "vulns": [{"id": "PYSEC-1", "fix_versions": ["1.1"], "aliases": []}]},
        {"name": "b", "version": "2.0", "vulns": [{"id": "GHSA-x", "fix_versions": [], "aliases": ["CVE-9"]}]},
        {"name": "c", "version": "3.0", "vulns": []},
    ]}
    assert len(unacceptable(report, {})) == 2
    assert unacceptable(report, {"CVE-9": "no fix, unused feature"}) == [
        "a 1.0: PYSEC-1 fixed in 1.1: raise the bound"]
    assert len(unacceptable(report, {"PYSEC-1": "r", "CVE-9": "r"})) == 1  # a fix exists: no ignoring it
    assert isinstance(ignored_ids(), dict)


def test_pip_audit_finds_no_fixable_vulnerability() -> None:
    """``pip-audit --local`` over the installed packages (no resolution of requirements)."""
    tool = shutil.which("pip-audit", path=str(Path(sys.executable).parent))
    assert tool, "pip-audit is missing: pip install -e '.[dev]'"
    ignored = ignored_ids()
    command = [tool, "--local", "--format", "json", "--progress-spinner", "off", "--timeout", "20"]
    for vuln_id in ignored:
        command += ["--ignore-vuln", vuln_id]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if run.returncode not in (0, 1) or not run.stdout.strip():
        if re.search(r"ConnectionError|NameResolution|Max retries|timed out", run.stderr):
            pytest.skip(f"no vulnerability service reachable: {run.stderr.strip().splitlines()[-1][:200]}")
        raise AssertionError(f"pip-audit failed ({run.returncode}): {run.stderr[-2000:]}")
    report = json.loads(run.stdout)
    dependencies = report["dependencies"]
    unaudited = [d for d in dependencies if "could not be audited" in d.get("skip_reason", "")]
    if len(unaudited) > 0.9 * len(dependencies):
        pytest.skip(f"the vulnerability service answered for none of {len(dependencies)} packages "
                    "(no per-version data reachable from this machine)")
    assert len(dependencies) > 50
    problems = unacceptable(report, ignored)
    assert not problems, "\n".join(problems)
