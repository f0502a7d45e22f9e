"""The HTTP benchmark's load generators time requests correctly.

Against a tiny server that answers every request after 2 ms, both load generators
(``wrk`` with Radar's Lua script, and the Python fallback) must report no errors, a median
of at least the server's 2 ms, and latencies that agree with their own request counts
(Little's law: on ``clients`` connections kept busy, the mean latency is clients / rate).
wrk's own histogram failed that check against BentoML's server, which is why the script
times requests itself (docs/benchmarks.md, "How latency is measured").
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.http_bench import Load, _python_load, _wrk
from servers import free_port

SERVER_DELAY_S = 0.002


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            await reader.readexactly(length)
            await asyncio.sleep(SERVER_DELAY_S)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


@pytest.fixture(scope="module")
def slow_server() -> Iterator[str]:
    port = free_port()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = asyncio.run_coroutine_threadsafe(asyncio.start_server(_answer, "127.0.0.1", port), loop).result(10)
    yield f"http://127.0.0.1:{port}/score"
    asyncio.run_coroutine_threadsafe(_close(server), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


async def _close(server: asyncio.Server) -> None:
    """Stop listening and end the connections still open (wrk's and httpx's keep-alives)."""
    server.close()
    handlers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for handler in handlers:
        handler.cancel()
    await asyncio.gather(*handlers, return_exceptions=True)


def _check(requests: int, seconds: float, p50_ms: float, p99_ms: float, errors: int, clients: int) -> None:
    assert errors == 0 and requests > 50
    little_mean_ms = clients * seconds / requests * 1000
    assert p50_ms >= SERVER_DELAY_S * 1000 * 0.95, p50_ms
    assert p50_ms <= 1.5 * little_mean_ms, (p50_ms, little_mean_ms)
    assert p50_ms <= p99_ms


LOAD = dict(bodies=[f'{{"person_id": "p{i}"}}' for i in range(10)], headers={"Content-Type": "application/json"})


@pytest.mark.skipif(shutil.which("wrk") is None and not os.environ.get("CI"),
                    reason="wrk is not installed (scripts/ensure-system-packages installs it)")
@pytest.mark.parametrize("clients", [1, 4])
def test_wrk_script_times_requests_consistently(slow_server: str, tmp_path: Path, clients: int) -> None:
    _check(*_wrk(Load(slow_server, **LOAD), clients, 2.0, 100_000, tmp_path), clients)


@pytest.mark.parametrize("clients", [1, 4])
def test_python_load_times_requests_consistently(slow_server: str, clients: int) -> None:
    _check(*_python_load(Load(slow_server, **LOAD), clients, 2.0, 100_000), clients)
