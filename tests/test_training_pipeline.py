"""The whole training flow on a small demo world, with a real MLflow SQLite store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.contract import CRMData
from features.ingest import load_crm
from radar.config import Settings
from radar.demo import generate_world
from serving.scoring import load_champions, score_people
from training.datasets import TARGETS, data_span, snapshot_features, split_rows
from training.pipeline import build_target_rows, train_all
from training.registry import version_info


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("world") / "crm"
    generate_world(n_customers=3000, seed=11, out_dir=out)
    return out


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    work = tmp_path_factory.mktemp("radar")
    return Settings(work_dir=work, mlflow_tracking_uri=f"sqlite:///{work / 'mlflow.db'}")


@pytest.fixture(scope="module")
def data(world: Path, settings: Settings) -> CRMData:
    return load_crm(world, settings=settings).data


def _before(data: CRMData, end: pd.Timestamp) -> CRMData:
    """The CRM as it would have looked if the export had been taken at ``end``."""
    def cut(table: pd.DataFrame | None, column: str) -> pd.DataFrame | None:
        return None if table is None else table[table[column] < end]

    deals = cut(data.deals, "created_at")
    if deals is not None:
        unfinished = deals["closed_at"] >= end
        deals = deals.assign(
            closed_at=deals["closed_at"].mask(unfinished), outcome=deals["outcome"].mask(unfinished, "open")
        )
    return CRMData(
        leads=cut(data.leads, "created_at"),
        interactions=cut(data.interactions, "timestamp"),
        orders=cut(data.orders, "timestamp"),
        deals=deals,
        spend=data.spend,
    )


def test_no_label_window_reaches_past_the_data(data: CRMData, settings: Settings) -> None:
    plan, rows = build_target_rows(data, settings)
    horizon = pd.Timedelta(days=settings.training.horizon_days)
    start, end = data_span(data)
    assert plan.test + horizon <= end
    assert plan.validation + horizon <= plan.test
    assert all(as_of + horizon <= plan.validation for as_of in plan.train)
    # The proof: cut the export at the end of the last label window. Every training,
    # validation and test row keeps exactly the same features and labels, so none of them
    # ever looked past that moment.
    cut = _before(data, plan.test + horizon)
    cut_rows = {t: split_rows(t, cut, snapshot_features(cut, plan, settings), plan, settings) for t in TARGETS}
    for target in TARGETS:
        for split in ("train", "validation", "test"):
            full, short = rows[target][split], cut_rows[target][split]
            assert len(full) > 0, (target, split)
            np.testing.assert_array_equal(full.y, short.y)
            pd.testing.assert_frame_equal(full.X, short.X)
            if full.duration is not None:
                np.testing.assert_allclose(full.duration, short.duration)


def test_train_register_score_and_gate(world: Path, data: CRMData, settings: Settings) -> None:
    first = train_all(world, settings)
    champions = {}
    for target in TARGETS:
        result = first.results[target]
        assert result.bundle is not None, result.notes
        info = version_info(target, alias="champion", tracking_uri=settings.tracking_uri)
        assert info is not None, f"{target} has no champion: {result.registration}"
        champions[target] = info.version
        # Whatever serves (the model, or a baseline standing in) ranks at least as well as
        # every baseline it was compared with.
        table = result.comparison
        key = "c_index" if target == "time_to_close" else "auc"
        serving = "model" if info.model_type == "lightgbm" else info.model_type
        baselines = table[key].drop(index=["model", serving], errors="ignore")
        assert table.loc[serving, key] >= baselines.max() - 1e-9, (target, serving, table[key].to_dict())

    # Retraining on the same data gives a model no better than the champion: it must not
    # replace it, and the reason is recorded.
    second = train_all(world, settings, targets=("purchase_probability",))
    registration = second.results["purchase_probability"].registration
    assert registration["promoted"] is False
    assert any("champion" in reason for reason in registration["reasons"])
    assert version_info("purchase_probability", alias="champion", tracking_uri=settings.tracking_uri).version == (
        champions["purchase_probability"]
    )

    as_of = data_span(data)[1]
    scores = score_people(data, as_of, load_champions(settings), settings)
    assert set(scores["target"]) == set(TARGETS)
    assert scores["probability"].between(0, 1).all()
    assert set(scores["grade"]) <= {"A", "B", "C", "D"}
    assert (scores["score"] == np.round(100 * scores["probability"])).all()
    ttc = scores[scores["target"] == "time_to_close"]
    assert ttc["deal_id"].notna().all() and (ttc["p_won_30d"] <= ttc["p_won_90d"] + 1e-9).all()
