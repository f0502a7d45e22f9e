"""Snapshot planning: label windows never reach past the data or into a later split."""

import pandas as pd
import pytest

from training.snapshots import NotEnoughHistory, plan_snapshots

H = pd.Timedelta(days=90)


def test_plan_for_three_years_of_monthly_data() -> None:
    plan = plan_snapshots(pd.Timestamp("2023-10-01"), pd.Timestamp("2026-10-01"), 90, 12)
    assert plan.test == pd.Timestamp("2026-07-01")
    assert plan.validation == pd.Timestamp("2026-04-01")
    assert plan.train[-1] == pd.Timestamp("2026-01-01")
    assert len(plan.train) == 12
    assert plan.train[0] == pd.Timestamp("2025-02-01")


@pytest.mark.parametrize("horizon", [30, 60, 90, 120])
def test_no_label_window_reaches_past_the_data_or_into_the_next_split(horizon: int) -> None:
    end = pd.Timestamp("2026-09-30 17:00")
    plan = plan_snapshots(pd.Timestamp("2023-10-01"), end, horizon, 12)
    h = pd.Timedelta(days=horizon)
    assert plan.test + h <= end
    assert plan.validation + h <= plan.test
    assert all(as_of + h <= plan.validation for as_of in plan.train)
    assert list(plan.train) == sorted(plan.train)


def test_too_little_history_is_a_clear_error() -> None:
    with pytest.raises(NotEnoughHistory, match="too short"):
        plan_snapshots(pd.Timestamp("2026-03-01"), pd.Timestamp("2026-09-30"), 90, 12)
