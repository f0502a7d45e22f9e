"""Shared fixtures: one small trained world (the server over it is `servers.running_server`).

The world is trained once per test session into a real MLflow SQLite store, with its
features materialised into the online store; tests that change models or files must copy
it (or train their own) rather than modify it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from features.contract import CRMData
from features.ingest import load_crm
from radar.config import Settings
from radar.demo import generate_world
from serving.feature_store import FeatureStore, default_store_path, materialize
from training.datasets import data_span
from training.pipeline import train_all


#: The benchmark smoke tests share ``bench_cache`` (a world and champions trained once): in a
#: parallel run they go to one worker as one unit, or each worker would train its own.
BENCH_CACHE_FILES = ("test_bench_quick.py", "test_batch_bench_smoke.py", "test_benchmarks_smoke.py",
                     "test_layers_bench_smoke.py")
#: The slowest files (or units) first, measured on 2 cores on 2026-12-07: handed out first, they
#: leave the many short files to fill the workers' ends, rather than one long file running
#: alone at the end. A file left out or renamed only runs in its usual place.
SLOWEST_FIRST = (*BENCH_CACHE_FILES, "test_fuzz.py", "test_spark.py", "test_privacy.py", "test_soak.py",
                 "test_notebook.py", "test_failures.py", "test_point_in_time.py", "test_mlproject.py",
                 "test_training_pipeline.py", "test_answers.py", "test_ui_browser.py", "test_real_data.py",
                 "test_ui_api.py", "test_orders_only.py", "test_history.py", "test_monitor.py",
                 "test_service_http.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: at for at, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):  # type: ignore[no-untyped-def]
    """Files as units of work (``--dist loadfile``), the benchmark smoke files as one unit;
    another ``--dist`` given on the command line is xdist's own."""
    from xdist.scheduler import LoadFileScheduling

    if config.getvalue("dist") not in ("load", "loadfile"):
        return None

    class RadarScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return "bench_cache" if Path(path).name in BENCH_CACHE_FILES else path

    return RadarScheduling(config, log)


@pytest.fixture(scope="session")
def world_dir(tmp_path_factory: pytest.TempPathFactory):
    """The raw CRM folder the shared world is trained on (read it, never write to it)."""
    world = tmp_path_factory.mktemp("world") / "crm"
    generate_world(n_customers=3000, seed=11, out_dir=world)
    return world


@pytest.fixture(scope="session")
def trained(world_dir, tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, CRMData, pd.Timestamp]:
    world = world_dir
    work = tmp_path_factory.mktemp("radar")
    settings = Settings(work_dir=work, mlflow_tracking_uri=f"sqlite:///{work / 'mlflow.db'}")
    train_all(world, settings)
    data = load_crm(world, settings=settings).data
    as_of = data_span(data)[1].normalize()
    materialize(data, as_of, settings, FeatureStore(default_store_path(settings)))
    return settings, data, as_of



@pytest.fixture(scope="session")
def crm_history(trained: tuple[Settings, CRMData, pd.Timestamp], world_dir: Path) -> Callable[[str], dict]:
    """A person's rows of the shared world as a request history, what a CRM would send:
    the loaded tables, plus each lead's raw e-mail, phone and name from the world's own
    leads file (loading keeps only their kind and a hash, and the API derives the kind
    itself, so the raw fields are what a CRM sends)."""
    data = trained[1]
    contact = pd.read_csv(world_dir / "leads.csv", dtype=str, usecols=["lead_id", "email", "phone", "name"])
    contact = contact.set_index("lead_id")

    def rows(table: pd.DataFrame | None, person: str, columns: list[str]) -> list[dict]:
        if table is None:
            return []
        mine = table.loc[table["person_id"] == person, [c for c in columns if c in table.columns]]
        records = json.loads(mine.to_json(orient="records", date_format="iso"))
        return [{k: v for k, v in r.items() if v is not None} for r in records]

    def history(person: str) -> dict:
        attributes = ("country", "industry", "company_size", "job_title")
        leads = rows(data.leads, person, ["lead_id", "created_at", "source", "campaign", "status", "converted_at",
                                          *attributes])
        for lead in leads:
            lead["attributes"] = {k: lead.pop(k) for k in attributes if k in lead}
            if lead["lead_id"] in contact.index:
                raw = contact.loc[lead["lead_id"]]
                lead |= {k: raw[k] for k in ("email", "phone") if pd.notna(raw[k])}
                # The file has a name column, so a blank cell is "no name given": sent as "".
                lead["name"] = raw["name"] if pd.notna(raw["name"]) else ""
        return {
            "leads": leads,
            "interactions": rows(data.interactions, person, ["timestamp", "type", "channel", "value", "deal_id", "stage"]),
            "orders": rows(data.orders, person, ["order_id", "timestamp", "amount", "status", "product", "category",
                                                 "channel"]),
            "deals": rows(data.deals, person, ["deal_id", "created_at", "stage", "closed_at", "outcome", "amount",
                                               "owner"]),
        }

    return history


@pytest.fixture(scope="session")
def bench_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache of demo worlds and trained champions for the benchmark smoke tests: the
    same size (2,000 customers, 3 snapshots) is generated and trained once, not per test."""
    return tmp_path_factory.mktemp("bench-cache")


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server for the session (tests/postgres.py): a cluster made with
    initdb in a temporary folder, on a free loopback port, stopped at the end."""
    from postgres import postgres_bin, running_postgres

    if postgres_bin() is None:
        pytest.skip("no PostgreSQL binaries under /usr/lib/postgresql/*/bin: install Debian's postgresql "
                    "package (scripts/ensure-system-packages does, as root)")
    with running_postgres() as server:
        yield server
