"""The real server for tests and benchmarks: `bentoml serve` in a subprocess on a free
loopback port, started, waited for, and stopped."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from radar.config import Settings

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: Starts tried when the server lost its port: between ``free_port`` and BentoML's bind
#: another process (a second test worker's server) may take it, or one of BentoML's own.
PORT_ATTEMPTS = 3


@contextmanager
def running_server(settings: Settings, key: str, log_name: str, **extra_env: str) -> Iterator[tuple[str, list[int]]]:
    """`bentoml serve serving.service:Radar` on a free loopback port, ready, then stopped.

    Yields the base URL and the /readyz statuses seen while it started."""
    env = os.environ | {
        "RADAR_WORK_DIR": str(settings.work_dir),
        "RADAR_MLFLOW_TRACKING_URI": settings.tracking_uri,
        "RADAR_API_KEYS": key,
        "BENTOML_HOME": str(Path(settings.work_dir) / "bentoml"),
        # One worker: tests check answers, not throughput, and each worker loads every model
        # (the benchmarks run the default, one per core).
        "RADAR_SERVING__WORKERS": "1",
        **extra_env,
    }
    log_path = Path(settings.work_dir) / log_name
    for attempt in range(1, PORT_ATTEMPTS + 1):
        port = free_port()
        command = [str(Path(sys.executable).parent / "bentoml"), "serve", "serving.service:Radar", "--host",
                   "127.0.0.1", "--port", str(port)]
        with open(log_path, "wb") as log:
            process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            statuses = wait_ready(url, process)
        except AssertionError:
            _stop(process)
            if attempt < PORT_ATTEMPTS and b"Address already in use" in log_path.read_bytes():
                continue
            raise
        try:
            yield url, statuses
        finally:
            _stop(process)
        return


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait(timeout=30)


def wait_ready(url: str, process: subprocess.Popen, timeout: float = 90) -> list[int]:
    """Poll /readyz until 200; returns the statuses seen (503 while models load)."""
    seen: list[int] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "server exited"
        try:
            status = httpx.get(f"{url}/readyz", timeout=2).status_code
        except httpx.TransportError:
            time.sleep(0.05)
            continue
        if not seen or seen[-1] != status:
            seen.append(status)
        if status == 200:
            return seen
        time.sleep(0.05)
    raise AssertionError(f"server not ready after {timeout} s: {seen}")


