"""Soak test of the live scoring server: a constant request rate for minutes, memory watched.

    python -m benchmarks.soak --minutes 10 --rate 300

Prepares (or reuses, cached under ``data/generated/``) a trained demo world with its feature
store, starts the real server (``bentoml serve serving.service:Radar`` on 127.0.0.1 and a
free port, a fresh API key, rate limit off) and drives it with Locust
(``benchmarks/soak_locust.py``): users at a constant throughput each, so the arrival rate is
``--rate`` requests per second whatever the latency, mixing ``POST /score`` by id (cycling over
the sampled person ids), ``POST /score_batch`` and ``GET /models``. A short warm-up run comes
first and is not counted. The server's resident memory (summed over ``bentoml serve`` and its
workers, psutil) is sampled every second: at the start of the measured run and at its end.

Passes when no request failed, memory grew less than ``MAX_RSS_GROWTH`` and the achieved rate
is within ``RATE_TOLERANCE`` of the target. Figures are printed and written as the "Soak"
section of ``docs/reliability.md``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.command import Machine, bench_parser, command_line, header, publish, say, stamp
from benchmarks.live import DOC_PATH, live_server, load_average, prepare_world, server_rss, write_reliability

LOCUSTFILE = Path(__file__).resolve().parent / "soak_locust.py"
#: Requests per second each simulated user makes (Locust's constant_throughput).
USER_RATE = 5.0
#: Pass marks: memory growth over the measured run, and the achieved share of the target rate.
MAX_RSS_GROWTH = 0.10
RATE_TOLERANCE = 0.05


@dataclass
class Soak:
    target_rate: float
    seconds: float
    users: int
    customers: int
    people: int
    ids: int
    requests: int = 0
    failures: int = 0
    p50_ms: float = math.nan
    p99_ms: float = math.nan
    #: Per route: requests, failures, p50, p99 (ms).
    routes: dict[str, tuple[int, int, float, float]] = field(default_factory=dict)
    rss_start: int = 0
    rss_end: int = 0
    rss_max: int = 0
    processes: int = 0
    locust_exit: int = 0

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def rss_growth(self) -> float:
        return (self.rss_end - self.rss_start) / self.rss_start if self.rss_start else math.nan

    @property
    def rate_ok(self) -> bool:
        return self.rate >= self.target_rate * (1 - RATE_TOLERANCE)

    @property
    def passed(self) -> bool:
        return self.failures == 0 and self.rss_growth < MAX_RSS_GROWTH and self.rate_ok and self.locust_exit == 0


def locust(url: str, key: str, ids_file: Path, users: int, seconds: float, prefix: Path) -> int:
    """One headless Locust run; its stats land in ``prefix``_stats.csv. Returns its exit code
    (1 when any request failed)."""
    command = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", url,
        "--users", str(users), "--spawn-rate", str(users), "--run-time", f"{max(1, round(seconds))}s",
        "--stop-timeout", "10", "--only-summary", "--csv", str(prefix), "--loglevel", "WARNING",
    ]
    env = {"RADAR_SOAK_KEY": key, "RADAR_SOAK_IDS": str(ids_file), "RADAR_SOAK_USER_RATE": str(USER_RATE)}
    done = subprocess.run(command, env=os.environ | env, capture_output=True, text=True, timeout=seconds + 120)
    (prefix.parent / f"{prefix.name}.log").write_text(done.stdout + done.stderr, encoding="utf-8")
    return done.returncode


def read_stats(prefix: Path) -> dict[str, tuple[int, int, float, float, float]]:
    """Per route (and "Aggregated"): requests, failures, p50 ms, p99 ms, requests/s."""
    out = {}
    with open(f"{prefix}_stats.csv", encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            out[row["Name"]] = (int(row["Request Count"]), int(row["Failure Count"]), float(row["50%"] or "nan"),
                          float(row["99%"] or "nan"), float(row["Requests/s"] or 0))
    return out


class RssSampler:
    """Samples the server's resident memory every ``every`` seconds in a thread."""

    def __init__(self, pid: int, every: float = 1.0) -> None:
        self.pid, self.every = pid, every
        self.samples: list[tuple[int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(server_rss(self.pid))
            self._stop.wait(self.every)

    def __enter__(self) -> RssSampler:
        self.samples.append(server_rss(self.pid))
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.samples.append(server_rss(self.pid))


def soak_live(url: str, pid: int, key: str, ids: Sequence[str], rate: float, seconds: float, warmup: float,
              work: Path) -> Soak:
    """Warm-up, then ``seconds`` of ``rate`` requests/s against the server at ``url`` (process
    ``pid``), its memory sampled; the figures, with the world's size left for the caller."""
    users = max(1, math.ceil(rate / USER_RATE))
    soak = Soak(users * USER_RATE, seconds, users, 0, 0, len(ids))
    ids_file = work / "ids.json"
    ids_file.write_text(json.dumps(list(ids)), encoding="utf-8")
    say(f"warm-up: {warmup:g} s at {soak.target_rate:g} requests/s")
    locust(url, key, ids_file, users, warmup, work / "warmup")
    say(f"soak: {seconds:g} s at {soak.target_rate:g} requests/s ({users} users)")
    with RssSampler(pid) as rss:
        soak.locust_exit = locust(url, key, ids_file, users, seconds, work / "soak")
    stats = read_stats(work / "soak")
    if soak.locust_exit not in (0, 1):
        print((work / "soak.log").read_text(encoding="utf-8")[-5000:], file=sys.stderr)
    total = stats.get("Aggregated", (0, 0, math.nan, math.nan, 0.0))
    soak.requests, soak.failures, soak.p50_ms, soak.p99_ms = total[0], total[1], total[2], total[3]
    # Locust's own clock (first to last request) for the rate, not the process's start-up too.
    soak.seconds = soak.requests / total[4] if total[4] else seconds
    soak.routes = {name: s[:4] for name, s in stats.items() if name != "Aggregated"}
    # The first sample is taken as the measured run starts (after the warm-up), the last as it ends.
    soak.rss_start, soak.processes = rss.samples[0]
    soak.rss_end = rss.samples[-1][0]
    soak.rss_max = max(s[0] for s in rss.samples)
    return soak


def run(args: argparse.Namespace, command: str) -> tuple[str, Soak]:
    host, when = stamp()
    world = prepare_world(args.customers, args.seed, args.snapshots, args.cache_dir, crm_folder=False)
    with tempfile.TemporaryDirectory(prefix="radar-soak-") as tmp:
        with live_server(world, Path(tmp)) as (server, key):
            soak = soak_live(server.url, server.process.pid, key, world.prepared.ids, args.rate, args.minutes * 60,
                             args.warmup, Path(tmp))
    soak.customers, soak.people = args.customers, world.prepared.people
    return soak_section(soak, host, when, command), soak


def soak_section(soak: Soak, host: Machine, when: str, command: str) -> str:
    """The "Soak" section of docs/reliability.md."""
    mb = 1024 * 1024
    shared = (f"; load average {load_average()} at the end. The machine is shared with other jobs (the load "
              "generator runs on it too), so latencies include their contention.")
    lines = header("Soak", host, when, command, shared) + [
        f"Locust ({soak.users} users at a constant {USER_RATE:g} requests/s each: target {soak.target_rate:g} "
        f"requests/s) against the live server over loopback (`bentoml serve serving.service:Radar`, rate limit "
        f"off), after an uncounted warm-up. {soak.customers:,}-customer demo world, {soak.people:,} people in the "
        f"feature store; `POST /score` by id cycling over {soak.ids:,} ids (90 %), `POST /score_batch` of 10 ids "
        f"(5 %), `GET /models` (5 %). Memory: resident set of `bentoml serve` and its workers "
        f"({soak.processes} processes), summed.",
        "",
        f"**{soak.requests:,} requests in {soak.seconds:.0f} s ({soak.rate:.1f} requests/s); errors: "
        f"{soak.failures}.** Latency p50 {soak.p50_ms:.0f} ms, p99 {soak.p99_ms:.0f} ms.",
        "",
        f"Server memory: {soak.rss_start / mb:,.0f} MB at the start, {soak.rss_end / mb:,.0f} MB at the end "
        f"({soak.rss_growth:+.1%}; limit +{MAX_RSS_GROWTH:.0%}), at most {soak.rss_max / mb:,.0f} MB. "
        f"Result: {'passed' if soak.passed else 'FAILED'}.",
        "",
        "| route | requests | errors | p50 (ms) | p99 (ms) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, (n, failed, p50, p99) in sorted(soak.routes.items()):
        lines.append(f"| {name} | {n:,} | {failed} | {p50:.0f} | {p99:.0f} |")
    return "\n".join(lines + [""])


def _parser() -> argparse.ArgumentParser:
    parser = bench_parser("benchmarks.soak", __doc__, doc=DOC_PATH)
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the measured run")
    parser.add_argument("--rate", type=float, default=300.0, help="target requests per second")
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds of uncounted load first")
    parser.add_argument("--customers", type=int, default=20_000, help="people in the demo world")
    parser.add_argument("--snapshots", type=int, default=3,
                        help="training snapshots (settings n_snapshots; the load does not depend on them)")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    section, soak = run(args, command_line("benchmarks.soak", argv))
    publish(args, {"Soak": section}, write_reliability)
    if not soak.passed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
