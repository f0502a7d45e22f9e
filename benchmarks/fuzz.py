"""API fuzzing of the live scoring server with Schemathesis, from its own OpenAPI schema.

    python -m benchmarks.fuzz --requests 10000

Prepares (or reuses, cached under ``data/generated/``) a trained demo world with its feature
store and validated CRM folder, starts the real server (``bentoml serve
serving.service:Radar`` on 127.0.0.1 and a free port, a fresh API key, rate limit off) and
runs ``schemathesis run`` against ``/docs.json`` with the key: every operation, valid and
malformed data (``--mode all``), the examples, coverage and fuzzing phases. Checks: no server
error (5xx), status codes, content types, headers and bodies as the schema documents them,
malformed data rejected, and no keyed operation answering without its key (``ignored_auth``).

Every request is counted from Schemathesis' HAR record; runs repeat with the next seed
until ``--requests`` requests were sent. Figures (requests by status and operation,
failures) are printed and written as the "API fuzzing" section of ``docs/reliability.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from benchmarks.command import Machine, bench_parser, command_line, header, publish, say, stamp
from benchmarks.live import DOC_PATH, live_server, load_average, prepare_world, write_reliability

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "ignored_auth",
)
PHASES = "examples,coverage,fuzzing"
#: Generated cases per operation and run: operations without inputs (GET /models) have one
#: case whatever this is, so the requests come mostly from the POST routes and /lists.
DEFAULT_EXAMPLES = 2000
#: Runs at most, each with the next seed, to reach ``--requests``.
MAX_RUNS = 20


@dataclass
class FuzzRun:
    """One ``schemathesis run``: its exit code, report and the requests it sent."""

    seed: int
    exit_code: int
    seconds: float
    requests: int
    by_status: Counter
    by_operation: Counter
    test_cases: int
    failures: list[dict]
    errors: list[dict]
    output: str


@dataclass
class Fuzz:
    customers: int
    people: int
    operations: list[str]
    runs: list[FuzzRun] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(r.requests for r in self.runs)

    @property
    def by_status(self) -> Counter:
        return sum((r.by_status for r in self.runs), Counter())

    @property
    def by_operation(self) -> Counter:
        return sum((r.by_operation for r in self.runs), Counter())

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.by_status.items() if status >= 500)

    @property
    def failures(self) -> list[dict]:
        return [f for r in self.runs for f in r.failures]

    @property
    def errors(self) -> list[dict]:
        return [e for r in self.runs for e in r.errors]

    @property
    def passed(self) -> bool:
        return (all(r.exit_code == 0 for r in self.runs) and not self.failures and not self.errors
                and self.server_errors == 0)


def schema_operations(spec: dict) -> list[str]:
    """``METHOD /path`` of every operation in an OpenAPI document."""
    methods = {"get", "put", "post", "delete", "patch", "head", "options"}
    return sorted(f"{m.upper()} {p}" for p, item in spec.get("paths", {}).items() for m in item if m in methods)


def read_har(path: Path, operations: Sequence[str]) -> tuple[int, Counter, Counter]:
    """Requests, their counts by status and by operation (``METHOD /path`` of the schema)."""
    entries = json.loads(path.read_text(encoding="utf-8"))["log"]["entries"] if path.is_file() else []
    known = set(operations)
    by_status: Counter = Counter()
    by_operation: Counter = Counter()
    for entry in entries:
        request = entry["request"]
        by_status[int(entry["response"]["status"])] += 1
        label = f"{request['method'].upper()} {urlsplit(request['url']).path}"
        by_operation[label if label in known else "other"] += 1
    return len(entries), by_status, by_operation


def schemathesis_run(url: str, key: str, examples: int, seed: int, work: Path, workers: int,
                     operations: Sequence[str], max_time: float | None = None, phases: str = PHASES) -> FuzzRun:
    """``schemathesis run`` against the live schema; its figures from the HAR and JSON reports.
    With ``max_time`` the run lasts that many seconds, fuzzing on past ``examples``."""
    reports = work / f"reports-{seed}"
    har, report = reports / "requests.har", reports / "report.json"
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{url}/docs.json",
        "--header", f"Authorization: Bearer {key}",
        "--mode", "all", "--phases", phases, "--checks", ",".join(CHECKS),
        "--max-examples", str(examples), "--seed", str(seed), "--workers", str(workers),
        "--continue-on-failure", "--suppress-health-check", "all", "--request-timeout", "30",
        "--generation-database", "none", "--generation-with-security-parameters", "false",
        "--report", "har,json", "--report-har-path", str(har), "--report-json-path", str(report),
        "--no-color",
        *(["--max-time", str(max(1, round(max_time)))] if max_time else []),
    ]
    say(f"schemathesis: {examples} cases per operation, seed {seed}")
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=work, timeout=3600)
    seconds = time.perf_counter() - started
    requests, by_status, by_operation = read_har(har, operations)
    facts = json.loads(report.read_text(encoding="utf-8")) if report.is_file() else {}
    return FuzzRun(seed=seed, exit_code=done.returncode, seconds=seconds, requests=requests, by_status=by_status,
                   by_operation=by_operation, test_cases=int(facts.get("test_cases", {}).get("generated", 0)),
                   failures=list(facts.get("failures", [])), errors=list(facts.get("errors", [])),
                   output=done.stdout + done.stderr)


def fuzz_live(url: str, key: str, requests: int, examples: int, seed: int, workers: int, work: Path,
              max_time: float | None = None, phases: str = PHASES) -> Fuzz:
    """Schemathesis runs (seeds ``seed``, ``seed + 1``…) until ``requests`` requests were sent
    or a run fails (each run at most ``max_time`` seconds); the figures, with the people count
    left for the caller."""
    import httpx

    operations = schema_operations(httpx.get(f"{url}/docs.json", timeout=30).json())
    fuzz = Fuzz(0, 0, operations)
    budget = max_time
    for run_seed in range(seed, seed + MAX_RUNS):
        fuzz.runs.append(schemathesis_run(url, key, examples, run_seed, work, workers, operations, budget,
                                          phases))
        last = fuzz.runs[-1]
        if last.requests and last.seconds:
            # A further run only for what is missing, at the pace just seen (and fuzzing on
            # until its time is spent), rather than another run of the full size.
            missing = (requests - fuzz.requests) * last.seconds / last.requests
            budget = min(max_time or math.inf, 1.2 * missing + 30)
        say(f"  {last.requests:,} requests in {last.seconds:.0f} s, exit {last.exit_code}")
        if last.requests == 0 or last.exit_code != 0 or fuzz.requests >= requests:
            break
    if not fuzz.passed:
        print(fuzz.runs[-1].output[-20_000:], file=sys.stderr)
    return fuzz


def run(args: argparse.Namespace, command: str) -> tuple[str, Fuzz]:
    """Fuzz until ``args.requests`` requests were sent; the Markdown section and the figures."""
    host, when = stamp()
    world = prepare_world(args.customers, args.seed, args.snapshots, args.cache_dir)
    with tempfile.TemporaryDirectory(prefix="radar-fuzz-") as tmp:
        with live_server(world, Path(tmp)) as (server, key):
            fuzz = fuzz_live(server.url, key, args.requests, args.examples or DEFAULT_EXAMPLES, args.seed,
                             args.workers, Path(tmp), args.max_time)
    fuzz.customers, fuzz.people = args.customers, world.prepared.people
    return fuzz_section(fuzz, host, when, command), fuzz


def fuzz_section(fuzz: Fuzz, host: Machine, when: str, command: str) -> str:
    """The "API fuzzing" section of docs/reliability.md."""
    seconds = sum(r.seconds for r in fuzz.runs)
    statuses = ", ".join(f"{s}: {n:,}" for s, n in sorted(fuzz.by_status.items()))
    shared = (f"; load average {load_average()} at the end. The machine is shared with other jobs, so times "
              "vary from run to run; the checks do not depend on them.")
    lines = header("API fuzzing", host, when, command, shared) + [
        f"Schemathesis {_version()} against the live server (`bentoml serve serving.service:Radar`, loopback, "
        f"rate limit off) from its OpenAPI schema `/docs.json`, with an API key: {fuzz.customers:,}-customer demo "
        f"world, {fuzz.people:,} people in the feature store, validated CRM folder for /lists and /kpis. Every "
        f"operation ({len(fuzz.operations)}), valid and malformed data (`--mode all`), phases {PHASES}; checks: "
        f"{', '.join(CHECKS)}.",
        "",
        f"**{fuzz.requests:,} requests** in {len(fuzz.runs)} run(s) of {seconds:.0f} s in all (seeds "
        f"{', '.join(str(r.seed) for r in fuzz.runs)}); {sum(r.test_cases for r in fuzz.runs):,} test cases. "
        f"**Server errors (5xx): {fuzz.server_errors}.** Check failures: {len(fuzz.failures)}; "
        f"errors: {len(fuzz.errors)}. Result: {'passed' if fuzz.passed else 'FAILED'}.",
        "",
        f"Answers by status: {statuses}.",
        "",
        "| operation | requests |",
        "|---|---:|",
    ]
    lines += [f"| {op} | {fuzz.by_operation.get(op, 0):,} |" for op in fuzz.operations]
    if fuzz.by_operation.get("other"):
        lines.append(f"| methods or paths not in the schema | {fuzz.by_operation['other']:,} |")
    for failure in fuzz.failures:
        lines.append(f"\n- {failure.get('code')} {failure.get('title')}: {failure.get('count')} "
                     f"({', '.join(failure.get('operations', []))})")
    return "\n".join(lines + [""])


def _version() -> str:
    from importlib.metadata import version

    return version("schemathesis")


def _parser() -> argparse.ArgumentParser:
    parser = bench_parser("benchmarks.fuzz", __doc__, doc=DOC_PATH, seed_help="world seed and first Schemathesis seed")
    parser.add_argument("--requests", type=int, default=10_000, help="send at least this many requests")
    parser.add_argument("--examples", type=int, default=0,
                        help=f"cases per operation and run (default {DEFAULT_EXAMPLES})")
    parser.add_argument("--customers", type=int, default=2000, help="people in the demo world")
    parser.add_argument("--snapshots", type=int, default=3, help="training snapshots (settings n_snapshots)")
    parser.add_argument("--workers", type=int, default=2, help="concurrent Schemathesis workers")
    parser.add_argument("--max-time", type=float, default=None,
                        help="seconds per Schemathesis run (it fuzzes on until they are spent)")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    section, fuzz = run(args, command_line("benchmarks.fuzz", argv))
    publish(args, {"API fuzzing": section}, write_reliability)
    if not fuzz.passed or fuzz.requests < args.requests:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
