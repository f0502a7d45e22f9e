"""The page's GET endpoints as plain functions: /lists gives exactly build_lists' rows for the
same filters (minus contact columns), /kpis gives compute_kpis' tables, and a server started
without RADAR_DATA_DIR says what to set.

``ui_world`` trains once per test session (the browser test reuses it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.ingest import load_crm, write_validated
from radar.config import Settings
from radar.demo import generate_world
from serving import ui_api
from serving.app import ApiError
from serving.feature_store import FeatureStore, default_store_path, materialize
from serving.scoring import load_champions
from training.datasets import data_span
from training.pipeline import train_all


@dataclass
class UiWorld:
    settings: Settings
    validated: Path


def ui_world(tmp_path_factory: pytest.TempPathFactory) -> UiWorld:
    """A trained demo world with its validated folder and materialised features, built once
    per session: the marker file is written last, so a half-built world is never reused."""
    base = tmp_path_factory.getbasetemp() / "ui-world"
    settings = Settings(work_dir=base / "radar", mlflow_tracking_uri=f"sqlite:///{base / 'radar' / 'mlflow.db'}")
    world = UiWorld(settings, base / "validated")
    if (base / "ready").is_file():
        return world
    generate_world(n_customers=1500, seed=11, out_dir=base / "crm")
    train_all(base / "crm", settings)
    result = load_crm(base / "crm", settings=settings)
    write_validated(result, world.validated)
    as_of = data_span(result.data)[1].normalize()
    materialize(result.data, as_of, settings, FeatureStore(default_store_path(settings)))
    (base / "ready").write_text("ok")
    return world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> UiWorld:
    return ui_world(tmp_path_factory)


@pytest.fixture(scope="module")
def views(world: UiWorld) -> ui_api.UiViews:
    settings = world.settings.model_copy(update={"data_dir": world.validated})
    return ui_api.load_views(settings, load_champions(settings))


def _build_lists(views: ui_api.UiViews, **filters: str) -> dict[str, pd.DataFrame]:
    from serving.lists import ListFilters, build_lists

    return build_lists(views.data, views.as_of, views.champions, views.settings, filters=ListFilters(**filters))


@pytest.mark.parametrize("filters", [{}, {"grade": "A"}, {"grade": "B", "channel": "organic_search"}])
def test_lists_answer_build_lists_rows_for_the_same_filters(views: ui_api.UiViews, filters: dict) -> None:
    expected = _build_lists(views, **filters)
    for name, table in expected.items():
        answer = json.loads(json.dumps(ui_api.list_answer(views, name, dict(filters))))
        assert answer["filters"] == filters
        assert answer["columns"] == [c for c in table.columns if c not in ("email", "phone")]
        assert len(answer["rows"]) == len(table), name
        for column in answer["columns"]:
            got = [row[column] for row in answer["rows"]]
            _assert_column_equal(got, table[column], f"{name}.{column}")


def test_a_grade_filter_keeps_only_that_grade_and_changes_the_rows(views: ui_api.UiViews) -> None:
    every = ui_api.list_answer(views, "leads_to_call", {})["rows"]
    graded = ui_api.list_answer(views, "leads_to_call", {"grade": "A"})["rows"]
    assert 0 < len(graded) < len(every)
    assert {r["grade"] for r in graded} == {"A"}
    assert [r["rank"] for r in graded] == list(range(1, len(graded) + 1))


def test_without_a_name_every_list_is_counted(views: ui_api.UiViews) -> None:
    answer = ui_api.list_answer(views, None, {})
    expected = _build_lists(views)
    assert [(item["name"], item["rows"]) for item in answer["lists"]] == [(n, len(t)) for n, t in expected.items()]
    assert answer["as_of"] == views.as_of.date().isoformat()


def test_query_filters_ignore_blanks_and_unknown_names() -> None:
    assert ui_api.parse_filters({"grade": " A ", "owner": "", "channel": None, "email": "x"}) == {"grade": "A"}


def test_an_unknown_list_is_a_404_naming_the_lists(views: ui_api.UiViews) -> None:
    with pytest.raises(ApiError) as caught:
        ui_api.list_answer(views, "nonsense", {})
    assert caught.value.status == 404 and "leads_to_call" in caught.value.detail


def test_no_contact_column_reaches_the_page() -> None:
    table = pd.DataFrame({"person_id": ["p"], "email": ["a@b.c"], "phone_hash": ["x"], "grade": ["A"]})
    assert list(ui_api.public_columns(table).columns) == ["person_id", "grade"]


def test_kpis_answer_the_report_tables(views: ui_api.UiViews) -> None:
    from serving.kpis import compute_kpis

    kpis = compute_kpis(views.data, views.settings, as_of=views.as_of)
    answer = json.loads(json.dumps(ui_api.kpi_answer(views)))
    tables = {t["name"]: t for t in answer["tables"]}
    by_channel = kpis.by_channel.reset_index()
    assert len(tables["by_channel"]["rows"]) == len(by_channel)
    got = [row["leads"] for row in tables["by_channel"]["rows"]]
    _assert_column_equal(got, by_channel["leads"], "by_channel.leads")
    assert {r["name"]: r["value"] for r in tables["overall"]["rows"]} == pytest.approx(
        {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in kpis.overall.items()}, nan_ok=True)


def test_kpis_are_computed_once_per_loaded_folder(world: UiWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    from serving import kpis as kpi_module

    views = ui_api.load_views(world.settings.model_copy(update={"data_dir": world.validated}), {})
    calls = []
    real = kpi_module.compute_kpis
    monkeypatch.setattr(kpi_module, "compute_kpis", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = json.dumps(ui_api.kpi_answer(views))
    assert json.dumps(ui_api.kpi_answer(views)) == first and len(calls) == 1


def test_without_a_data_folder_lists_say_what_to_set(world: UiWorld) -> None:
    empty = ui_api.load_views(world.settings.model_copy(update={"data_dir": None}), {})
    with pytest.raises(ApiError) as caught:
        ui_api.list_answer(empty, "leads_to_call", {})
    assert caught.value.status == 503 and ui_api.DATA_DIR_ENV in caught.value.error
    nowhere = world.settings.model_copy(update={"data_dir": world.validated.parent / "nowhere"})
    broken = ui_api.load_views(nowhere, {})
    assert broken.data is None and ui_api.DATA_DIR_ENV in broken.problem


def _assert_column_equal(got: list, want: pd.Series, where: str) -> None:
    """JSON values against the frame's: missing is null, numbers equal, times ISO text."""
    for a, b in zip(got, want.tolist(), strict=True):
        if b is None or b is pd.NA or b is pd.NaT or (isinstance(b, float) and np.isnan(b)):
            assert a is None, where
        elif isinstance(b, (float, np.floating)):
            assert a == pytest.approx(float(b), rel=1e-12), where
        elif isinstance(b, pd.Timestamp):
            assert a == b.isoformat(), where
        else:
            assert a == (b.item() if isinstance(b, np.generic) else b), where
