"""time_to_close is a deal's prediction: every open deal is a row, with its own features.

A B2B account holds many open deals at once; a sales team wants each of them scored. The
opportunities export here is shaped like a sample CRM's: a year of deals over a few dozen
accounts, an owner per deal, won/lost/open outcomes and no stage history.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.contract import CRMData
from features.pipeline import build_deal_features, build_features, feature_columns
from radar.cli import app
from radar.config import Settings
from training.datasets import rows_at

AS_OF = pd.Timestamp("2025-03-01")


def _deals() -> CRMData:
    deals = pd.DataFrame({
        "deal_id": ["D1", "D2", "D3", "D4", "D5"],
        "person_id": ["A", "A", "A", "A", "B"],
        "created_at": pd.to_datetime(["2025-01-01", "2025-02-01", "2025-01-05", "2025-03-05", "2025-02-10"]),
        "closed_at": pd.to_datetime([None, "2025-04-01", "2025-02-01", None, None]),
        "outcome": ["open", "won", "lost", "open", "open"],
        "amount": [100.0, 250.0, 50.0, 999.0, 10.0],
        "owner": ["ann", "bob", "ann", "zed", None],
    }).astype({"person_id": object, "deal_id": object, "outcome": object, "owner": object})
    stages = pd.DataFrame({
        "person_id": ["A", "A", "A"],
        "timestamp": pd.to_datetime(["2025-01-10", "2025-02-20", "2025-03-02"]),
        "type": ["deal_stage"] * 3,
        "deal_id": ["D1", "D1", "D2"],
        "stage": ["discovery", "proposal", "negotiation"],
    }).astype(object).astype({"timestamp": "datetime64[ns]"})
    return CRMData(deals=deals, interactions=stages)


def test_every_open_deal_is_a_row_with_its_own_point_in_time_features() -> None:
    data = _deals()
    rows = build_deal_features(data, AS_OF)
    # D3 closed before as_of, D4 opens after it: neither is open at as_of.
    assert rows["deal_id"].tolist() == ["D1", "D2", "D5"]
    assert rows.index.tolist() == ["A", "A", "B"]
    d1, d2, d5 = (rows.iloc[i] for i in range(3))
    assert d1["deal_stage"] == 2 and d1["deal_n_stage_changes"] == 2  # proposal, from its history
    assert d1["deal_days_since_stage_change"] == 9 and d1["deal_age_days"] == 59
    # D2's stage event is after as_of, and it closes after as_of too: still open, no stage known.
    assert np.isnan(d2["deal_stage"]) and d2["deal_n_stage_changes"] == 0 and d2["deal_amount"] == 250
    assert d1["deal_owner"] == "ann" and d2["deal_owner"] == "bob" and pd.isna(d5["deal_owner"])
    # The owner of a deal created after as_of is not a category yet.
    assert "zed" not in rows["deal_owner"].cat.categories
    # Beside each deal, its person's features (not the ones about the person's leading deal).
    person = build_features(data, AS_OF)
    assert d1["n_open_deals"] == person.loc["A", "n_open_deals"] == 2
    assert not any(c.startswith("open_deal_") for c in rows.columns)
    assert "deal_id" not in feature_columns(rows)


def test_deal_rows_do_not_change_when_the_future_does() -> None:
    data = _deals()
    before = build_deal_features(data, AS_OF)
    later = data.deals.copy()
    later.loc[later["deal_id"] == "D1", ["closed_at", "outcome", "owner"]] = [pd.Timestamp("2025-03-10"), "won", "new"]
    future = pd.concat([data.interactions, data.interactions.assign(timestamp=pd.Timestamp("2025-03-03"))])
    after = build_deal_features(CRMData(deals=later, interactions=future), AS_OF)
    pd.testing.assert_frame_equal(before.drop(columns="deal_owner"), after.drop(columns="deal_owner"))
    assert before["deal_owner"].astype(object).iloc[1:].equals(after["deal_owner"].astype(object).iloc[1:])


def test_training_rows_are_one_per_open_deal_with_its_outcome() -> None:
    data = _deals()
    features = build_features(data, AS_OF)
    rows = rows_at("time_to_close", data, features, AS_OF, Settings(), pd.Timestamp("2025-06-01"))
    assert len(rows) == 3 and list(rows.X.index) == ["A", "A", "B"]
    assert rows.event.tolist() == ["censored", "won", "censored"]
    assert rows.duration.tolist() == [90.0, 31.0, 90.0]  # follow-up: the 90-day horizon


def opportunities(accounts: int = 40, per_account: int = 60, seed: int = 3) -> pd.DataFrame:
    """A year of deals, many per account: bigger deals and some owners close faster."""
    rng = np.random.default_rng(seed)
    n = accounts * per_account
    created = pd.Timestamp("2025-01-02") + pd.to_timedelta(rng.uniform(0, 345, n), unit="D")
    owner = rng.choice([f"rep_{i}" for i in range(8)], n)
    amount = np.round(rng.lognormal(7, 1, n), 2)
    fast = np.isin(owner, ["rep_0", "rep_1", "rep_2"])
    days = rng.exponential(np.where(fast, 15, 60))
    won = rng.random(n) < np.where(fast, 0.7, 0.45)
    closed = created + pd.to_timedelta(days, unit="D")
    export_day = pd.Timestamp("2025-12-20")
    still_open = closed >= export_day
    return pd.DataFrame({
        "deal_id": [f"OPP{i:05d}" for i in range(n)],
        "customer_id": [f"ACC{i % accounts:03d}" for i in range(n)],
        "created_at": created.strftime("%Y-%m-%d"),
        "closed_at": pd.Series(closed.strftime("%Y-%m-%d")).where(~still_open),
        "outcome": np.where(still_open, "open", np.where(won, "won", "lost")),
        "amount": amount,
        "owner": owner,
    })


@pytest.mark.timeout(600)
def test_an_opportunities_export_of_a_year_trains_time_to_close_and_scores_every_open_deal(tmp_path: Path,
                                                                                           monkeypatch) -> None:
    folder = tmp_path / "crm"
    folder.mkdir()
    deals = opportunities()
    deals.to_csv(folder / "deals.csv", index=False)
    monkeypatch.setenv("RADAR_WORK_DIR", str(tmp_path / "work"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    runner = CliRunner()
    trained = runner.invoke(app, ["train", str(folder), "--horizon", "60"])
    assert trained.exit_code == 0, trained.output
    assert "time_to_close" in trained.output
    scored = runner.invoke(app, ["score", str(folder), "--out", str(tmp_path / "scores.csv")])
    assert scored.exit_code == 0, scored.output
    scores = pd.read_csv(tmp_path / "scores.csv", dtype=str)
    deal_scores = scores[scores["target"] == "time_to_close"]
    open_deals = deals.loc[deals["outcome"] == "open", "deal_id"]
    assert len(open_deals) > 2 * deals["customer_id"].nunique()  # many open deals per account
    assert sorted(deal_scores["deal_id"]) == sorted(open_deals)
    # Each row carries the account's own id, the key the CRM upserts on.
    account_of = deals.set_index("deal_id")["customer_id"]
    assert (deal_scores["customer_id"].to_numpy() == account_of.loc[deal_scores["deal_id"]].to_numpy()).all()
