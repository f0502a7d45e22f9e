"""Shared fixtures: one small trained world (the server over it is `servers.running_server`).

The world is trained once per test session into a real MLflow SQLite store, with its
features materialised into the online store; tests that change models or files must copy
it (or train their own) rather than modify it.
"""

from __future__ import annotations

import pandas as pd
import pytest

from features.contract import CRMData
from features.ingest import load_crm
from radar.config import Settings
from radar.demo import generate_world
from serving.feature_store import FeatureStore, default_store_path, materialize
from training.datasets import data_span
from training.pipeline import train_all


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

