"""The live server the reliability runs (``benchmarks.fuzz``, ``benchmarks.soak``) work against.

A demo world is trained and its features materialised once per size and seed (cached by
``benchmarks.http_bench.prepare`` under ``data/generated/``), with the validated CRM folder
beside it so /lists and /kpis answer too; then the real server (``bentoml serve
serving.service:Radar``) runs on 127.0.0.1 and a free port, with a fresh API key and the
rate limit off (these runs measure the server, not its limiter). Figures go into
``docs/reliability.md``, each run replacing only its own section.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

from benchmarks.http_bench import Prepared, Server, prepare, serve
from benchmarks.command import update_doc
from benchmarks.train_bench import demo_world

DOC_PATH = Path("docs/reliability.md")
DOC_TITLE = "# Reliability"


@dataclass
class LiveWorld:
    """A prepared world (champions, feature store, sample ids) and its validated CRM folder."""

    prepared: Prepared
    #: None: no CRM folder (/lists and /kpis answer 503; scoring is unaffected).
    validated: Path | None
    customers: int


def prepare_world(customers: int, seed: int, snapshots: int, cache_dir: Path, crm_folder: bool = True) -> LiveWorld:
    """Champions, online features and (``crm_folder``) the validated folder, built once and reused."""
    from features.ingest import load_crm, write_validated
    from radar.config import Settings

    prepared = prepare(customers, seed, snapshots, cache_dir)
    if not crm_folder:
        return LiveWorld(prepared, None, customers)
    # Inside the prepared folder: rebuilt with it whenever the world is.
    validated = prepared.folder / "validated"
    done = validated / "READY"
    # Written last: a half-written folder is rebuilt, never served.
    if not done.is_file():
        if validated.exists():
            shutil.rmtree(validated)
        world = demo_world(customers, seed, cache_dir)
        settings = Settings(work_dir=prepared.work_dir)
        write_validated(load_crm(world, settings=settings), validated)
        done.write_text("ok", encoding="utf-8")
    return LiveWorld(prepared, validated, customers)


@contextmanager
def live_server(world: LiveWorld, work: Path, **extra_env: str) -> Iterator[tuple[Server, str]]:
    """The real server over ``world`` with a new API key; yields it and the key."""
    from serving.auth import create_key

    keys_file = work / "api_keys.txt"
    key = create_key(keys_file)
    env = {
        "RADAR_WORK_DIR": str(world.prepared.work_dir.resolve()),
        "RADAR_MLFLOW_TRACKING_URI": world.prepared.tracking_uri,
        "RADAR_SERVING__API_KEYS_FILE": str(keys_file),
        "RADAR_SERVING__RATE_LIMIT_PER_SECOND": "0",
        "BENTOML_HOME": str(work / "bentoml"),
        **({"RADAR_DATA_DIR": str(world.validated.resolve())} if world.validated else {}),
        **extra_env,
    }
    with serve("serving.service:Radar", env, work / "radar-server.log") as server:
        yield server, key


def server_rss(pid: int) -> tuple[int, int]:
    """Resident memory (bytes) summed over the server's process tree, and how many processes:
    ``bentoml serve`` itself and every worker it started."""
    root = psutil.Process(pid)
    total, count = 0, 0
    for process in [root, *root.children(recursive=True)]:
        try:
            total += process.memory_info().rss
            count += 1
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue  # a process that ended between the listing and the reading holds no memory
    return total, count


def write_reliability(doc: Path, sections: dict[str, str]) -> None:
    """Replace (or add) the sections in ``doc``, keeping every other one."""
    update_doc(doc, sections, title=DOC_TITLE)


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min)"
