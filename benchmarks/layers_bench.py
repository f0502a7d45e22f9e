"""What each layer of the scoring server costs per request, in CPU time.

    python -m benchmarks.layers_bench --customers 20000 --requests 500 --rounds 7

The same prepared world as ``benchmarks.http_bench`` (trained champions, a materialised
day with precomputed answers). The server's ASGI app is built in this process exactly as
``bentoml serve`` builds it for a worker (``ServiceAppFactory`` over ``serving.service``),
then driven with ``POST /score`` by id, one target, top-5 reasons, on one event loop, with
no network in between. Each variant drops one layer (a middleware BentoML adds, one of
Radar's, or everything but the route), and the difference in CPU time per request against
the whole stack is what that layer costs. CPU time, not wall time: the figures then hold
on a machine that is busy with other work. The HTTP parsing of uvicorn is not in here (the
reference service pays it too); ``benchmarks.http_bench`` measures the whole over loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.command import bench_parser, command_line, header, publish, stamp
from benchmarks.http_bench import ONE_TARGET, TOP_K, Prepared, prepare, radar_environment

#: The variants: a name and the middleware classes it leaves out ("*" = all of them).
VARIANTS: tuple[tuple[str, frozenset[str]], ...] = (
    ("whole stack", frozenset()),
    ("without OpenTelemetry (BentoML)", frozenset({"OpenTelemetryMiddleware"})),
    ("without the access log (BentoML)", frozenset({"AccessLogMiddleware"})),
    ("without the traffic metrics (BentoML)", frozenset({"RunnerTrafficMetricsMiddleware"})),
    ("without timeout and concurrency (BentoML)", frozenset({"TimeoutMiddleware", "MaxConcurrencyMiddleware"})),
    ("without the API key check (Radar)", frozenset({"ApiKeyMiddleware"})),
    ("without the limits (Radar)", frozenset({"LimitsMiddleware"})),
    ("without the JSON body check (Radar)", frozenset({"JsonBodyMiddleware"})),
    ("without the OpenAPI answers (Radar)", frozenset({"OpenApiMiddleware"})),
    # BentoML's ContextMiddleware is left in: without it a request never completes.
    ("route only (BentoML's context only)", frozenset({"*"})),
)
#: Requests before timing, so caches and lazy imports are warm.
WARMUP = 200
#: Seconds before a request that has not answered counts as an error.
REQUEST_TIMEOUT = 10.0


@dataclass
class Layer:
    name: str
    cpu_us: float
    wall_us: float
    errors: int


def _environment(prepared: Prepared, work: Path) -> str:
    """The server's settings, as ``benchmarks.http_bench`` gives them, in this process's
    environment; returns the API key."""
    env, key = radar_environment(prepared, work)
    # BentoML's default, so that the tracing middleware's cost is measured like the
    # others; Radar serves with it off (serving.trace_requests), i.e. the stack "without
    # OpenTelemetry".
    os.environ.update(env | {"RADAR_SERVING__TRACE_REQUESTS": "true"})
    return key


def _app() -> Callable:
    """The worker's ASGI app (a Starlette app), as ``bentoml serve`` builds it."""
    from serving.service import Radar

    Radar.inject_config()
    return Radar.to_asgi(is_main=True)


def _without(app, dropped: frozenset[str]) -> None:  # type: ignore[no-untyped-def]
    """Rebuild the app's middleware stack without the classes named in ``dropped`` ("*": all),
    keeping the one service instance, so each variant is measured on the same loaded models."""
    full = getattr(app, "_radar_full_middleware", None)
    if full is None:
        full = app._radar_full_middleware = list(app.user_middleware)
    if getattr(app, "_radar_metrics", None) is None:
        app._radar_metrics = _metrics_layer(app.middleware_stack)
    app.user_middleware = ([m for m in full if getattr(m.cls, "__name__", "") == "ContextMiddleware"] if "*" in dropped
                           else [m for m in full if getattr(m.cls, "__name__", "") not in dropped])
    app.middleware_stack = app.build_middleware_stack()
    # A rebuilt stack makes a new metrics middleware, which would register BentoML's
    # Prometheus series a second time (and fail): the new one takes the first one's series.
    first, new = app._radar_metrics, _metrics_layer(app.middleware_stack)
    if first is not None and new is not None:
        new.__dict__.update({k: v for k, v in first.__dict__.items() if k.startswith("metrics")})
        new._is_setup = True


def _metrics_layer(stack):  # type: ignore[no-untyped-def]
    """BentoML's traffic metrics middleware in a built stack (set up by the calls so far)."""
    while stack is not None:
        if type(stack).__name__ == "RunnerTrafficMetricsMiddleware":
            return stack
        stack = getattr(stack, "app", None)
    return None


def _serving_context() -> None:
    """What a ``bentoml serve`` worker sets before it builds the app: the server's logging
    (the access log's lines go where the worker's would) and the service's names."""
    from bentoml._internal.context import server_context
    from bentoml._internal.log import configure_server_logging

    from serving.service import Radar

    configure_server_logging()
    server_context.service_type = "entry_service"
    server_context.service_name = Radar.name
    server_context.bento_name = Radar.name
    server_context.bento_version = "not available"


class _Lifespan:
    """Runs the app's start-up (BentoML makes the service instance there) and shut-down."""

    def __init__(self, app: Callable) -> None:
        self.app = app
        self.inbox: asyncio.Queue = asyncio.Queue()
        self.outbox: asyncio.Queue = asyncio.Queue()
        self.task: asyncio.Task | None = None

    async def start(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        self.task = asyncio.create_task(self.app(scope, self.inbox.get, self.outbox.put))
        await self.inbox.put({"type": "lifespan.startup"})
        message = await self.outbox.get()
        if message["type"] != "lifespan.startup.complete":
            raise RuntimeError(f"the app did not start: {message}")

    async def stop(self) -> None:
        await self.inbox.put({"type": "lifespan.shutdown"})
        await self.outbox.get()
        if self.task is not None:
            await self.task


async def _request(app: Callable, body: bytes, headers: list[tuple[bytes, bytes]], method: str = "POST",
                   path: str = "/score") -> int:
    """One request through the ASGI app (default ``POST /score``); returns the status."""
    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "headers": headers, "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 3000),
             "state": {}}
    sent = False
    status = 0
    answered = asyncio.Event()

    async def receive() -> dict:
        nonlocal sent
        if sent:  # the body was read: the client waits for the answer, then goes
            await answered.wait()
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            answered.set()

    try:
        await asyncio.wait_for(app(scope, receive, send), REQUEST_TIMEOUT)
    except asyncio.TimeoutError:
        return 0  # counted as an error
    return status


async def _round(app: Callable, bodies: list[bytes], key: str, requests: int) -> tuple[float, float, int]:
    """CPU and wall µs per request over ``requests`` requests, and the errors."""
    headers = [(b"host", b"127.0.0.1:3000"), (b"content-type", b"application/json"),
               (b"authorization", f"Bearer {key}".encode())]
    errors = 0
    started_cpu, started_wall = time.thread_time(), time.perf_counter()
    for i in range(requests):
        body = bodies[i % len(bodies)]
        status = await _request(app, body, headers + [(b"content-length", str(len(body)).encode())])
        errors += status != 200
    return ((time.thread_time() - started_cpu) / requests * 1e6,
            (time.perf_counter() - started_wall) / requests * 1e6, errors)


async def _measure_all(bodies: list[bytes], key: str, requests: int, rounds: int, progress) -> list[Layer]:  # type: ignore
    """Every variant in each round, in turn, so that a busy spell of the machine falls on
    all of them alike; each variant's median round."""
    app = _app()
    lifespan = _Lifespan(app)
    await lifespan.start()
    try:
        await _wait_ready(app)
        for _, dropped in VARIANTS:  # warm-up: lazy imports and caches of every stack
            _without(app, dropped)
            await _round(app, bodies, key, WARMUP)
        seen: dict[str, list[tuple[float, float, int]]] = {name: [] for name, _ in VARIANTS}
        for n in range(rounds):
            print(f"round {n + 1} of {rounds}: {len(VARIANTS)} stacks × {requests:,} requests", file=progress, flush=True)
            for name, dropped in VARIANTS:
                _without(app, dropped)
                seen[name].append(await _round(app, bodies, key, requests))
        _without(app, frozenset())
        return [Layer(name, statistics.median(c for c, _, _ in runs), statistics.median(w for _, w, _ in runs),
                      sum(e for _, _, e in runs)) for name, runs in seen.items()]
    finally:
        await lifespan.stop()


async def _wait_ready(app: Callable, timeout: float = 300.0) -> None:
    """Until the service instance has loaded its champions (``/readyz`` says 200)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = await _request(app, b"", [(b"host", b"127.0.0.1:3000")], method="GET", path="/readyz")
        if status == 200:
            return
        await asyncio.sleep(0.5)
    raise TimeoutError("the service did not become ready")


def run(args: argparse.Namespace, command: str) -> str:
    host, when = stamp()
    prepared = prepare(args.customers, args.seed, args.snapshots, args.cache_dir)
    bodies = [json.dumps({"person_id": i, "targets": [ONE_TARGET], "top_k": TOP_K}).encode() for i in prepared.ids]
    with tempfile.TemporaryDirectory(prefix="radar-layers-bench-") as tmp:
        key = _environment(prepared, Path(tmp))
        # The server's log lines (the access log's among them) go to a file, as a served
        # worker's go to its log; progress stays on the terminal.
        progress = os.fdopen(os.dup(2), "w")
        saved_out = os.dup(1)
        with open(Path(tmp) / "server.log", "wb") as log:
            for fd in (1, 2):
                os.dup2(log.fileno(), fd)
            _serving_context()
            try:
                layers = asyncio.run(_measure_all(bodies, key, args.requests, args.rounds, progress))
            finally:
                os.dup2(saved_out, 1)
                os.dup2(progress.fileno(), 2)
    return layers_section(layers, prepared, args, host, when, command)


def layers_section(layers: list[Layer], prepared: Prepared, args: argparse.Namespace, host, when: str,
                   command: str) -> str:  # type: ignore[no-untyped-def]
    whole = layers[0]
    lines = header("Server layers", host, when, command) + [
        f"Size: {args.customers:,}-customer demo world, {prepared.people:,} people in the feature store. "
        f"`POST /score` by `person_id`, {ONE_TARGET}, top-{TOP_K} reasons (precomputed answers), the worker's "
        f"ASGI app built in process as `bentoml serve` builds it and called on one event loop, no network; "
        f"{args.requests:,} requests per stack and round, {args.rounds} rounds taking every stack in turn, each "
        "stack's median round. A layer's cost is the CPU time per "
        "request of the whole stack minus that of the stack without it. The whole stack here traces every "
        "request, as BentoML does by default; Radar serves with tracing off (`serving.trace_requests`), so the "
        "served stack is the one without OpenTelemetry.",
        "",
        "| stack | CPU µs / request | wall µs / request | layer's cost (CPU µs) | share of the whole | errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for layer in layers:
        cost = whole.cpu_us - layer.cpu_us
        share = cost / whole.cpu_us if layer is not whole else 1.0
        lines.append(f"| {layer.name} | {layer.cpu_us:,.0f} | {layer.wall_us:,.0f} | "
                     f"{'' if layer is whole else f'{cost:,.0f}'} | {share:.0%} | {layer.errors} |")
    return "\n".join(lines) + "\n"


def _parser() -> argparse.ArgumentParser:
    parser = bench_parser("benchmarks.layers_bench", __doc__)
    parser.add_argument("--customers", type=int, default=20_000, help="people in the demo world")
    parser.add_argument("--requests", type=int, default=500, help="requests per stack and round")
    parser.add_argument("--rounds", type=int, default=7, help="rounds, each taking every stack in turn")
    parser.add_argument("--snapshots", type=int, default=12, help="training snapshots (settings n_snapshots)")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    section = run(args, command_line("benchmarks.layers_bench", argv))
    publish(args, {"Server layers": section})


if __name__ == "__main__":
    main()
