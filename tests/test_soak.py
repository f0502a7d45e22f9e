"""Soak, smoke size: 30 s of constant-rate load on the real server, memory watched.

The same runner as ``python -m benchmarks.soak --minutes 10 --rate 300`` (the full run,
figures in docs/reliability.md) on the shared trained world, at a rate this shared machine
keeps up with during a test run: no failed request, resident memory of the server's
processes growing less than 10 %, the achieved rate close to the target.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd
import psutil
import pytest

from benchmarks.soak import MAX_RSS_GROWTH, RATE_TOLERANCE, Soak, read_stats, soak_live
from features.contract import CRMData
from radar.config import Settings
from serving.feature_store import FeatureStore, default_store_path
from servers import running_server

KEY = "rdr_soak-smoke-key"
RATE = 20.0
SECONDS = 30.0


def server_pid(url: str) -> int:
    """The `bentoml serve` process this test started for ``url`` (a child of this process)."""
    port = str(urlsplit(url).port)
    for child in psutil.Process().children():
        command = child.cmdline()
        if "serving.service:Radar" in command and port in command:
            return child.pid
    raise AssertionError(f"no server process on port {port}")


@pytest.fixture(scope="module")
def soaked(trained: tuple[Settings, CRMData, pd.Timestamp], tmp_path_factory: pytest.TempPathFactory) -> tuple[Soak, Path]:
    settings, data, _ = trained
    candidates = list(dict.fromkeys(str(p) for p in data.leads["person_id"].dropna()))[:3000]
    ids = [str(i) for i in FeatureStore(default_store_path(settings)).read(candidates, None).features.index]
    assert len(ids) >= 100
    work = tmp_path_factory.mktemp("soak")
    with running_server(settings, KEY, "soak-server.log", RADAR_SERVING__RATE_LIMIT_PER_SECOND="0") as (url, _):
        soak = soak_live(url, server_pid(url), KEY, ids, RATE, SECONDS, warmup=5, work=work)
    return soak, work


def test_no_errors_and_memory_steady(soaked: tuple[Soak, Path]) -> None:
    soak, _ = soaked
    assert soak.requests > 0 and soak.failures == 0, soak.routes
    assert soak.processes >= 2  # `bentoml serve` and at least one worker
    assert soak.rss_start > 50 * 1024 * 1024
    assert soak.rss_growth < MAX_RSS_GROWTH, (soak.rss_start, soak.rss_end)


def test_rate_is_held_at_the_target(soaked: tuple[Soak, Path]) -> None:
    soak, _ = soaked
    assert soak.target_rate == RATE
    assert soak.rate >= RATE * (1 - RATE_TOLERANCE), soak.rate
    # Bounded: a constant arrival rate, not as fast as the server can go.
    assert soak.rate <= RATE * 1.1, soak.rate
    assert soak.requests >= RATE * SECONDS * 0.9


def test_every_route_of_the_mix_is_exercised(soaked: tuple[Soak, Path]) -> None:
    soak, work = soaked
    assert set(soak.routes) == {"POST /score", "POST /score_batch", "GET /models"}
    assert soak.routes["POST /score"][0] > soak.routes["POST /score_batch"][0] > 0
    assert 0 < soak.p50_ms <= soak.p99_ms
    # The warm-up was a separate, uncounted run.
    assert read_stats(work / "warmup")["Aggregated"][0] > 0
    assert soak.passed
