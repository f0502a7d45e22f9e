"""A lead export of twelve months with its own outcome column, and nothing else: the most
common first input of a lead-scoring product. It must train with defaults."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from radar.config import Settings
from training.labels import conversion_times, label_lead_quality
from training.pipeline import train_all


def lead_export(n: int, seed: int, dated: bool = True) -> pd.DataFrame:
    """Leads over 2025, converting more often from referrals and large companies."""
    rng = np.random.default_rng(seed)
    created = pd.Timestamp("2025-01-03") + pd.to_timedelta(rng.uniform(0, 360, n), unit="D")
    source = rng.choice(["referral", "paid_search", "social_ads", "events"], n, p=[0.2, 0.4, 0.3, 0.1])
    size = rng.choice(["1-10", "11-50", "51-200", "201+"], n)
    logit = -2.0 + 1.6 * (source == "referral") + 0.8 * (size == "201+") - 0.6 * (source == "social_ads")
    converts = rng.random(n) < 1 / (1 + np.exp(-logit))
    days = rng.exponential(20, n)
    converted_at = pd.Series(created + pd.to_timedelta(days, unit="D")).where(converts)
    # The export is taken on 2025-12-31: later conversions are not in it yet.
    converted_at = converted_at.where(converted_at < pd.Timestamp("2025-12-31"))
    frame = pd.DataFrame({
        "lead_id": [f"L{i:05d}" for i in range(n)],
        "created_at": created.strftime("%Y-%m-%d %H:%M"),
        "source": source,
        "company_size": size,
    })
    if dated:
        frame["converted_at"] = converted_at.dt.strftime("%Y-%m-%d %H:%M")
    else:
        frame["status"] = np.where(converted_at.notna(), "won", "open")
    return frame


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("leads-only")
    lead_export(6000, 1).to_csv(folder / "leads.csv", index=False)
    return folder


def test_twelve_months_of_leads_with_a_conversion_date_train_lead_quality_at_90_days(export_dir, tmp_path) -> None:
    settings = Settings(work_dir=tmp_path / "work")
    assert settings.training.horizon_days == 90
    report = train_all(export_dir, settings, targets=("lead_quality",), register=False)
    result = report.results["lead_quality"]
    assert report.plan.by_person and len(report.plan.train) >= 3
    assert result.bundle is not None and result.decision.served == "model", result.notes
    assert result.rows["train_positive"] >= settings.training.min_positives
    model, base = result.comparison.loc["model"], result.comparison.loc["channel_rate"]
    assert model["auc"] > 0.7 and model["auc"] >= base["auc"] + base["auc_low"]
    # The same person never sits in training and in validation.
    rows_people = report.plan.held_out(result.test_features.index)
    assert 0.1 < rows_people.mean() < 0.3


def test_a_lead_status_word_counts_as_a_conversion_when_no_date_says_when(tmp_path) -> None:
    from features.ingest import load_crm

    folder = tmp_path / "status"
    folder.mkdir()
    lead_export(800, 2, dated=False).to_csv(folder / "leads.csv", index=False)
    data = load_crm(folder).data
    assert conversion_times(data).empty
    labels = label_lead_quality(data, pd.Timestamp("2025-10-01"), 90)
    won = set(data.leads.loc[data.leads["status"].astype(object) == "won", "person_id"])
    assert len(labels) and labels["label"].sum() > 0
    assert set(labels.index[labels["label"] == 1]) <= won
