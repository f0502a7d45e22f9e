"""HTTP benchmark of the scoring server: latency and throughput of one person by id.

    python -m benchmarks.http_bench --customers 20000 --duration 10 --rounds 3 --clients 1,8,32

Builds (or reuses, cached under ``data/generated/``) a demo world, trains and registers the
champions into an MLflow SQLite store beside it, materialises the online feature store,
creates an API key, starts the real server (``bentoml serve serving.service:Radar`` on
127.0.0.1 and a free port) and drives ``POST /score`` over loopback: one person by id, top-5
reasons, for purchase_probability alone (``one``) and for every target (``all``), at each
number of concurrent clients, asking for every person of the day in turn. Beside it runs a
minimal BentoML service (``benchmarks/reference_service.py``: the purchase champion's
booster, predict + pred_contrib on one row sent in the request), and the two are measured
in alternating rounds at the same concurrency, so Radar's throughput reads as a ratio to it
that a busy spell of the machine moves little. Figures are printed and written as the "HTTP" section
of ``docs/benchmarks.md``.

Load comes from ``wrk`` with a Lua script that cycles through person ids and times every
request itself (see ``WRK_SCRIPT``) when wrk is installed, else from Python threads with
httpx (which then limit the figures themselves).
Every run is bounded by ``--duration`` and ``--max-requests``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

from benchmarks.command import Machine, bench_parser, command_line, header, publish, say, stamp
from benchmarks.train_bench import demo_world, story_version

ROOT = Path(__file__).resolve().parents[1]
ONE_TARGET = "purchase_probability"
TOP_K = 5
#: People whose booster rows the reference is sent: its cost does not depend on the row, so a
#: sample keeps the prepared facts small (Radar's load asks for every person).
SAMPLE_PEOPLE = 2000
READY_TIMEOUT_SECONDS = 180.0
WARMUP_SECONDS = 2.0
#: The issue's budgets for one target at 8 clients.
BUDGET = {"clients": 8, "p50_ms": 5.0, "p99_ms": 25.0, "rps": 1000.0, "ratio": 2.0}


# --- The prepared world ------------------------------------------------------------------------


@dataclass
class Prepared:
    """Trained champions, a filled feature store and what the load sends."""

    folder: Path
    people: int
    features: int
    trees: int
    #: Person ids of the feature store (the latest day), a sample of them.
    ids: list[str]
    #: The booster rows of the same people, for the reference service (None = missing).
    rows: list[list[float | None]]

    @property
    def work_dir(self) -> Path:
        return self.folder / "work"

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{(self.work_dir / 'mlflow.db').resolve()}"

    @property
    def reference_model(self) -> Path:
        return self.folder / "purchase_booster.txt"


def prepare(customers: int, seed: int, snapshots: int, cache_dir: Path) -> Prepared:
    """Champions and feature store for a demo world, built once and then reused."""
    folder = Path(cache_dir) / f"http-bench-{customers}-seed{seed}-snap{snapshots}-{story_version()}-{_model_version()}"
    done = folder / "READY.json"
    # The marker is written last: a half-built folder is rebuilt, never reused.
    if not done.is_file():
        if folder.exists():
            shutil.rmtree(folder)
        world = demo_world(customers, seed, cache_dir)
        facts = _build(world, folder, snapshots)
        done.write_text(json.dumps(facts), encoding="utf-8")
    facts = json.loads(done.read_text(encoding="utf-8"))
    # A world prepared by an older run may hold facts no longer kept.
    known = {f.name for f in dataclasses.fields(Prepared)}
    return Prepared(folder=folder, **{k: v for k, v in facts.items() if k in known})


def _model_version() -> str:
    """A short fingerprint of the model settings: champions trained with other settings
    (trees, learning rate…) are not reused."""
    import hashlib

    from radar.config import Settings

    return hashlib.sha1(Settings().training.model.model_dump_json().encode()).hexdigest()[:6]


def _settings(folder: Path, snapshots: int):  # type: ignore[no-untyped-def]
    from radar.config import Settings

    work = folder / "work"
    base = Settings(work_dir=work, mlflow_tracking_uri=f"sqlite:///{(work / 'mlflow.db').resolve()}")
    return base.model_copy(update={"training": base.training.model_copy(update={"n_snapshots": snapshots})})


def _build(world: Path, folder: Path, snapshots: int) -> dict:
    """Train + register, materialise the latest day; return the facts the load needs."""
    from benchmarks.materialise_bench import materialise_timed
    from features.ingest import load_crm
    from features.pipeline import feature_columns
    from serving.feature_store import FeatureStore, default_store_path
    from serving.reasons import booster_matrix
    from training.datasets import data_span
    from training.pipeline import train_all

    settings = _settings(folder, snapshots)
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    say(f"training the champions on {world} (cached in {folder})")
    train_all(world, settings)
    data = load_crm(world, settings=settings).data
    as_of = data_span(data)[1].normalize()
    # The day materialised with every answer, as `radar features --materialize` does (timed
    # on its own, in fresh processes, by benchmarks.materialise_bench).
    done = materialise_timed(data, as_of, settings, FeatureStore(default_store_path(settings)))[1]
    features, champions = done.written.features, done.champions
    champion = champions.get(ONE_TARGET)
    model = getattr(champion.bundle.model, "booster_", None) if champion else None
    if model is None:
        raise RuntimeError(f"{ONE_TARGET} has no LightGBM champion: the reference needs its booster")
    model.save_model(str(folder / "purchase_booster.txt"))
    rng = np.random.default_rng(0)
    ids = list(rng.choice(features.index.to_numpy(), size=min(SAMPLE_PEOPLE, len(features)), replace=False))
    matrix = booster_matrix(champion.bundle.model, features.loc[ids])
    rows = [[None if np.isnan(v) else float(v) for v in row] for row in matrix]
    return {"people": len(features), "features": len(feature_columns(features)), "trees": model.num_trees(),
            "ids": [str(i) for i in ids], "rows": rows}


# --- Servers -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    process: subprocess.Popen


@contextmanager
def serve(service: str, env: dict[str, str], log: Path) -> Iterator[Server]:
    """``bentoml serve SERVICE`` on 127.0.0.1 and a free port, stopped on exit."""
    port = free_port()
    command = [str(Path(sys.executable).parent / "bentoml"), "serve", service, "--host", "127.0.0.1", "--port", str(port)]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=os.environ | env, stdout=out, stderr=subprocess.STDOUT)
        server = Server(f"http://127.0.0.1:{port}", process)
        try:
            wait_ready(server, log)
            yield server
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def wait_ready(server: Server, log: Path, timeout: float = READY_TIMEOUT_SECONDS) -> None:
    """Poll /readyz until 200 (503 while the champions load)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited; log in {log}:\n{log.read_text(errors='replace')[-2000:]}")
        try:
            if httpx.get(f"{server.url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass  # not listening yet: the loop polls again
        time.sleep(0.1)
    raise RuntimeError(f"server not ready after {timeout:.0f} s; log in {log}")


# --- Load --------------------------------------------------------------------------------------


@dataclass
class Load:
    """What one load run sends: a route, JSON bodies to cycle through, headers."""

    url: str
    bodies: list[str]
    headers: dict[str, str]


@dataclass
class LoadResult:
    server: str
    case: str
    clients: int
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    #: Non-2xx answers plus socket errors (connect, read, write, timeout).
    errors: int
    tool: str
    #: Set when rounds are aggregated: the median round's rate.
    rate: float | None = None
    rounds: int = 1

    @property
    def rps(self) -> float:
        if self.rate is not None:
            return self.rate
        return self.requests / self.seconds if self.seconds > 0 else 0.0


def drive(load: Load, clients: int, duration: float, max_requests: int, work: Path) -> tuple[int, float, float, float, int, str]:
    """Requests, seconds, p50 ms, p99 ms, errors and the tool, from wrk or Python threads."""
    if shutil.which("wrk"):
        return (*_wrk(load, clients, duration, max_requests, work), "wrk")
    return (*_python_load(load, clients, duration, max_requests), "python httpx threads")


#: The wrk script. Latency is timed here, per request, on the monotonic clock: against
#: BentoML's server wrk 4.1's own latency histogram contradicts its own counts (on one
#: connection, mean latency × requests came to four times the run's length; the same wrk
#: is consistent against a bare asyncio server), so its percentiles are not used. One wrk
#: thread per connection, so each thread's request() and response() strictly alternate.
WRK_SCRIPT = """
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } radar_timespec;
int clock_gettime(int clock_id, radar_timespec *now);
]]
local clock = ffi.new("radar_timespec")
local function now_us()
  ffi.C.clock_gettime(1, clock)  -- CLOCK_MONOTONIC
  return tonumber(clock.tv_sec) * 1e6 + tonumber(clock.tv_nsec) / 1e3
end

local bodies = {}
for line in io.lines("%(bodies)s") do bodies[#bodies + 1] = line end
local threads = {}
local next_offset = 0
local max_requests = %(max_requests)d
local position = 0
local sent_at = 0
latencies = {}
wrk.method = "POST"
%(headers)s

function setup(thread)
  -- Each thread starts at its own place in the list, so clients ask for different people.
  thread:set("offset", next_offset)
  next_offset = next_offset + 397
  table.insert(threads, thread)
end

function init(args)
  position = offset %% #bodies
end

function request()
  position = position %% #bodies + 1
  sent_at = now_us()
  return wrk.format(nil, nil, nil, bodies[position])
end

function response(status, headers, body)
  latencies[#latencies + 1] = now_us() - sent_at
  if #latencies >= max_requests then wrk.thread:stop() end
end

function done(summary, latency, requests)
  local all = {}
  for _, thread in ipairs(threads) do
    for _, value in ipairs(thread:get("latencies")) do all[#all + 1] = value end
  end
  table.sort(all)
  local function percentile(p)
    if #all == 0 then return 0 end
    return all[math.max(1, math.ceil(#all * p / 100))]
  end
  local e = summary.errors
  io.write(string.format('RESULT {"requests": %%d, "duration_us": %%d, "status": %%d, "socket": %%d, ' ..
    '"p50_us": %%f, "p99_us": %%f}\\n', summary.requests, summary.duration, e.status,
    e.connect + e.read + e.write + e.timeout, percentile(50), percentile(99)))
end
"""


def _wrk(load: Load, clients: int, duration: float, max_requests: int, work: Path) -> tuple[int, float, float, float, int]:
    bodies = work / "bodies.txt"
    bodies.write_text("\n".join(load.bodies) + "\n", encoding="utf-8")
    headers = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in load.headers.items())
    script = work / "load.lua"
    # The cap is per thread in wrk's Lua (each thread has its own state).
    script.write_text(WRK_SCRIPT % {"bodies": bodies, "headers": headers,
                                    "max_requests": max(1, max_requests // clients)}, encoding="utf-8")
    command = ["wrk", f"-t{clients}", f"-c{clients}", f"-d{max(1, round(duration))}s", "--timeout", "10s",
               "-s", str(script), load.url]
    out = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60, check=True).stdout
    line = next((x for x in out.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    r = json.loads(line.removeprefix("RESULT "))
    return r["requests"], r["duration_us"] / 1e6, r["p50_us"] / 1e3, r["p99_us"] / 1e3, r["status"] + r["socket"]


def _python_load(load: Load, clients: int, duration: float, max_requests: int) -> tuple[int, float, float, float, int]:
    """Threads with one httpx client each; the GIL makes this the bottleneck past a few clients."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    per_client = max(1, max_requests // clients)
    started = time.perf_counter()
    deadline = started + duration

    def client(i: int) -> None:
        headers = load.headers | {"Content-Type": "application/json"}
        with httpx.Client(headers=headers, timeout=10) as http:
            for n in range(per_client):
                if time.perf_counter() >= deadline:
                    return
                body = load.bodies[(i * 397 + n) % len(load.bodies)]
                clock = time.perf_counter()
                try:
                    ok = http.post(load.url, content=body).is_success
                except httpx.HTTPError:
                    ok = False
                latencies[i].append(time.perf_counter() - clock)
                errors[i] += not ok

    workers = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=duration + 30)
    seconds = time.perf_counter() - started
    flat = np.concatenate([np.asarray(x) for x in latencies]) if any(latencies) else np.array([np.nan])
    p50, p99 = np.percentile(flat, [50, 99]) * 1e3
    return int(sum(len(x) for x in latencies)), seconds, float(p50), float(p99), int(sum(errors))


def aggregate(rounds: Sequence[LoadResult]) -> LoadResult:
    """One row from several rounds of the same case: requests and errors summed, rate and
    percentiles the median round's (a single round moves with whatever else the machine did)."""
    first = rounds[0]
    rates = sorted(rounds, key=lambda r: r.rps)
    middle = rates[len(rates) // 2]
    return LoadResult(first.server, first.case, first.clients, sum(r.requests for r in rounds),
                      sum(r.seconds for r in rounds), float(np.median([r.p50_ms for r in rounds])),
                      float(np.median([r.p99_ms for r in rounds])), sum(r.errors for r in rounds), first.tool,
                      rate=middle.rps, rounds=len(rounds))


def alternate(loads: dict[tuple[str, str], Load], clients_list: Sequence[int], duration: float, rounds: int,
              max_requests: int, work: Path) -> list[LoadResult]:
    """For each number of clients, ``rounds`` rounds that take every case in turn (Radar's
    and the reference's), so a slow spell of the machine falls on both alike."""
    for load in loads.values():  # unreported warm-up: lazy imports, cold caches
        drive(load, max(clients_list), min(WARMUP_SECONDS, duration / 3), max_requests, work)
    results = []
    for clients in clients_list:
        runs: dict[tuple[str, str], list[LoadResult]] = {key: [] for key in loads}
        for n in range(rounds):
            for (server, case), load in loads.items():
                say(f"{server} {case}: {clients} clients, round {n + 1} of {rounds}, {duration:g} s")
                runs[(server, case)].append(LoadResult(server, case, clients, *drive(load, clients, duration,
                                                                                       max_requests, work)))
        results += [aggregate(r) for r in runs.values()]
    return results


# --- The run -----------------------------------------------------------------------------------


def radar_bodies(ids: Sequence[str], case: str) -> list[str]:
    targets = {"targets": [ONE_TARGET]} if case == "one" else {}
    return [json.dumps({"person_id": i, **targets, "top_k": TOP_K}) for i in ids]


def stored_people(prepared: Prepared) -> list[str]:
    """Every person of the materialised day, in a fixed shuffled order: the load asks for
    each in turn, as a CRM refreshing its records would."""
    from radar.config import Settings
    from serving.feature_store import FeatureStore, default_store_path

    store = FeatureStore(default_store_path(Settings(work_dir=prepared.work_dir)))
    people = store.person_ids(store.days()[-1])
    return [str(p) for p in np.random.default_rng(0).permutation(np.asarray(people, dtype=object))]


def radar_environment(prepared: Prepared, work: Path) -> tuple[dict[str, str], str]:
    """The scoring server's settings over the prepared world, and a new API key for them."""
    from serving.auth import create_key

    keys_file = work / "api_keys.txt"
    key = create_key(keys_file)
    env = {
        "RADAR_WORK_DIR": str(prepared.work_dir.resolve()),
        "RADAR_MLFLOW_TRACKING_URI": prepared.tracking_uri,
        "RADAR_SERVING__API_KEYS_FILE": str(keys_file),
        "BENTOML_HOME": str(work / "bentoml"),
        # One key sends every request: the per-key limit would measure itself.
        "RADAR_SERVING__RATE_LIMIT_PER_SECOND": "0",
    }
    return env, key


def bench_both(prepared: Prepared, cases: Sequence[str], clients: Sequence[int], duration: float, rounds: int,
               max_requests: int, work: Path) -> list[LoadResult]:
    """Radar and the reference service up side by side, measured in alternating rounds."""
    radar_env, key = radar_environment(prepared, work)
    reference_env = {"RADAR_REFERENCE_MODEL": str(prepared.reference_model.resolve()),
                     "BENTOML_HOME": str(work / "bentoml")}
    people = stored_people(prepared)
    with serve("serving.service:Radar", radar_env, work / "radar-server.log") as radar, \
            serve("benchmarks.reference_service:Reference", reference_env, work / "reference-server.log") as reference:
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        loads = {("radar", case): Load(f"{radar.url}/score", radar_bodies(people, case), headers) for case in cases}
        loads[("reference", "one")] = Load(f"{reference.url}/predict",
                                           [json.dumps({"features": row}) for row in prepared.rows],
                                           {"Content-Type": "application/json"})
        return alternate(loads, clients, duration, rounds, max_requests, work)


@dataclass
class HttpBench:
    customers: int
    prepared: Prepared
    results: list[LoadResult]

    def reference_rps(self, clients: int) -> float:
        found = [r.rps for r in self.results if r.server == "reference" and r.clients == clients]
        return found[0] if found else float("nan")


def run(args: argparse.Namespace, command: str) -> tuple[str, HttpBench]:
    """Run the benchmark; return the Markdown "HTTP" section and the figures."""
    host, when = stamp()
    prepared = prepare(args.customers, args.seed, args.snapshots, args.cache_dir)
    clients = [int(c) for c in str(args.clients).split(",") if c.strip()]
    cases = [c.strip() for c in str(args.targets).split(",") if c.strip()]
    with tempfile.TemporaryDirectory(prefix="radar-http-bench-") as tmp:
        work = Path(tmp)
        results = bench_both(prepared, cases, clients, args.duration, args.rounds, args.max_requests, work)
    bench = HttpBench(args.customers, prepared, results)
    return http_section(bench, host, when, command, args.duration, args.rounds), bench


# --- Reporting ---------------------------------------------------------------------------------


CASE_NAMES = {
    ("radar", "one"): f"Radar, {ONE_TARGET}",
    ("radar", "all"): "Radar, all targets",
    ("reference", "one"): "reference (booster only)",
}


def http_section(bench: HttpBench, host: Machine, when: str, command: str, duration: float, rounds: int) -> str:
    """The "HTTP" section of docs/benchmarks.md."""
    p = bench.prepared
    tools = sorted({r.tool for r in bench.results})
    lines = header("HTTP", host, when, command) + [
        f"Size: {bench.customers:,}-customer demo world, {p.people:,} people in the feature store, "
        f"{p.features} features; purchase champion {p.trees} trees. `POST /score` by `person_id` with top-{TOP_K} "
        f"reasons, ids cycled over all {p.people:,} people; both servers up side by side, {rounds} rounds of "
        f"{duration:g} s per number of clients taking each case in turn (rate and percentiles: the median round; "
        f"requests and errors: all rounds), over loopback, load from {', '.join(tools)}; servers and load "
        "generator share the machine. Errors: non-2xx plus socket errors. Ratio: requests/s over the "
        "reference's at the same clients.",
        "",
        "Requests by id read the precomputed answers (the section **Materialising a day** times making them).",
        "",
        "| case | clients | requests | p50 (ms) | p99 (ms) | requests/s | errors | × reference |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in bench.results:
        ratio = r.rps / bench.reference_rps(r.clients)
        lines.append(f"| {CASE_NAMES[(r.server, r.case)]} | {r.clients} | {r.requests:,} | {r.p50_ms:.1f} "
                     f"| {r.p99_ms:.1f} | {r.rps:,.0f} | {r.errors} | {ratio:.2f} |")
    if "python httpx threads" in tools:
        lines += ["", "wrk was not installed: the Python load generator is itself the bottleneck "
                  "(the GIL serialises its clients), so these figures understate the server."]
    lines += ["", budget_line(bench), ""]
    return "\n".join(lines)


def budget_line(bench: HttpBench) -> str:
    """The issue's budgets for one target at 8 clients, met or not."""
    clients = BUDGET["clients"]
    found = [r for r in bench.results if r.server == "radar" and r.case == "one" and r.clients == clients]
    if not found:
        return f"Budgets (one target, {clients} clients): not measured in this run."
    r = found[0]
    ratio = r.rps / bench.reference_rps(clients)
    checks = [
        f"p50 {r.p50_ms:.1f} ms (≤ {BUDGET['p50_ms']:g}: {'met' if r.p50_ms <= BUDGET['p50_ms'] else 'NOT met'})",
        f"p99 {r.p99_ms:.1f} ms (≤ {BUDGET['p99_ms']:g}: {'met' if r.p99_ms <= BUDGET['p99_ms'] else 'NOT met'})",
        f"{r.rps:,.0f} req/s (≥ {BUDGET['rps']:,.0f}: {'met' if r.rps >= BUDGET['rps'] else 'NOT met'})",
        f"{ratio:.2f}× the reference (≥ {BUDGET['ratio']:g}: {'met' if ratio >= BUDGET['ratio'] else 'NOT met'})",
    ]
    return f"Budgets (one target, {clients} clients): " + "; ".join(checks) + "."


# --- Command -----------------------------------------------------------------------------------


#: In the existing "HTTP" section, text after this line is written by hand and kept on rewrite.
KEPT_MARKER = "<!-- written by hand below; the command keeps it -->"


def kept_notes(doc: Path) -> str:
    """The hand-written end of the doc's "HTTP" section (the profile summary), if any."""
    text = Path(doc).read_text(encoding="utf-8") if Path(doc).is_file() else ""
    start = text.find("\n## HTTP")
    if start < 0:
        return ""
    end = text.find("\n## ", start + 1)
    section = text[start : end if end >= 0 else len(text)]
    at = section.find(KEPT_MARKER)
    return section[at:].strip() + "\n" if at >= 0 else ""


def _parser() -> argparse.ArgumentParser:
    parser = bench_parser("benchmarks.http_bench", __doc__)
    parser.add_argument("--customers", type=int, default=20_000, help="people in the demo world")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of one round of one case")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per number of clients")
    parser.add_argument("--clients", default="1,8,32", help="concurrent clients, comma-separated")
    parser.add_argument("--targets", default="one,all", help="one (purchase_probability), all, or one,all")
    parser.add_argument("--max-requests", type=int, default=500_000, help="cap on requests per run")
    parser.add_argument("--snapshots", type=int, default=12, help="training snapshots (settings n_snapshots)")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    bad = set(str(args.targets).split(",")) - {"one", "all"}
    if bad:
        raise SystemExit(f"--targets: one, all or one,all (not {', '.join(sorted(bad))})")
    section, _ = run(args, command_line("benchmarks.http_bench", argv))
    publish(args, {"HTTP": section + "\n" + kept_notes(args.doc)})


if __name__ == "__main__":
    main()
