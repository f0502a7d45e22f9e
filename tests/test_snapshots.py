"""Snapshot planning: label windows never reach past the data or into a later split."""

import numpy as np
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


def test_too_little_history_is_a_clear_error_that_names_a_horizon_that_fits() -> None:
    with pytest.raises(NotEnoughHistory, match="too short") as raised:
        plan_snapshots(pd.Timestamp("2026-05-01"), pd.Timestamp("2026-09-30"), 90, 12)
    hint = str(raised.value).split("radar train --horizon ")[1]
    fitting = int(hint.split("`")[0])
    plan = plan_snapshots(pd.Timestamp("2026-05-01"), pd.Timestamp("2026-09-30"), fitting, 12)
    assert plan.test + pd.Timedelta(days=fitting) <= pd.Timestamp("2026-09-30")


def test_twelve_months_with_a_90_day_horizon_hold_people_out_instead_of_refusing() -> None:
    start, end = pd.Timestamp("2025-01-15"), pd.Timestamp("2025-12-31")
    plan = plan_snapshots(start, end, 90, 12)
    assert plan.by_person and plan.validation is None
    assert plan.test + H <= end
    assert all(as_of + H <= plan.test for as_of in plan.train)
    assert all(as_of >= start + pd.Timedelta(days=30) for as_of in plan.train)
    assert len(plan.train) >= 3 and plan.moments == [*plan.train, plan.test]
    assert plan.to_dict()["kind"] == "by_person"


def test_held_out_people_are_a_stable_fifth_whatever_the_snapshot() -> None:
    plan = plan_snapshots(pd.Timestamp("2025-01-15"), pd.Timestamp("2025-12-31"), 90, 12)
    people = pd.Index([f"P{i:05d}" for i in range(20000)])
    held = plan.held_out(people)
    assert 0.18 < held.mean() < 0.22
    twice = pd.Index(list(people[:50]) * 2)
    np.testing.assert_array_equal(plan.held_out(twice)[:50], plan.held_out(twice)[50:])


def test_a_time_plan_is_kept_whenever_three_training_snapshots_fit() -> None:
    plan = plan_snapshots(pd.Timestamp("2024-06-01"), pd.Timestamp("2025-12-31"), 90, 12)
    assert not plan.by_person and len(plan.train) >= 3
