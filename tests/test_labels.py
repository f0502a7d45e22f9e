"""Labels on tiny hand-made CRMs, with outcomes worked out by hand."""

import pandas as pd

from features.contract import CRMData
from training.labels import (
    label_churn,
    label_lead_quality,
    label_purchase_probability,
    label_time_to_close,
)

AS_OF = pd.Timestamp("2025-06-01")
H = 90


def ts(day: str) -> pd.Timestamp:
    return pd.Timestamp(day)


def orders(*rows: tuple[str, str, str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "person_id": [r[0] for r in rows],
            "timestamp": [ts(r[1]) for r in rows],
            "amount": [10.0] * len(rows),
            "status": [r[2] for r in rows],
        }
    )


def interactions(*rows: tuple[str, str, str, float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "person_id": [r[0] for r in rows],
            "timestamp": [ts(r[1]) for r in rows],
            "type": [r[2] for r in rows],
            "value": [r[3] for r in rows],
        }
    )


def test_purchase_label_counts_paid_orders_in_the_window_only() -> None:
    data = CRMData(
        orders=orders(
            ("a", "2025-06-01", "paid"),  # exactly at as_of: inside the label window
            ("b", "2025-08-29", "paid"),  # as_of + 89 days: inside
            ("c", "2025-08-30", "paid"),  # as_of + 90 days: outside
            ("d", "2025-07-01", "failed"),  # not paid
            ("e", "2025-05-31", "paid"),  # before as_of
        )
    )
    persons = pd.Index(["a", "b", "c", "d", "e", "f"])
    labels = label_purchase_probability(data, persons, AS_OF, H)
    assert labels.to_dict() == {"a": 1, "b": 1, "c": 0, "d": 0, "e": 0, "f": 0}


def test_lead_quality_scores_open_leads_and_labels_conversion_within_h_of_creation() -> None:
    leads = pd.DataFrame(
        {
            "person_id": ["new", "old", "cust", "future", "late"],
            "created_at": [ts("2025-05-20"), ts("2025-01-01"), ts("2025-05-01"), ts("2025-06-02"), ts("2025-04-01")],
        }
    )
    data = CRMData(
        leads=leads,
        orders=orders(
            ("new", "2025-07-01", "paid"),  # within 90 days of 2025-05-20
            ("cust", "2025-05-10", "paid"),  # already a customer at as_of
            ("late", "2025-07-15", "paid"),  # 105 days after creation: too late
        ),
    )
    frame = label_lead_quality(data, AS_OF, H)
    assert sorted(frame.index) == ["late", "new"]
    assert frame.loc["new", "label"] == 1
    assert frame.loc["late", "label"] == 0


def test_won_deal_counts_as_conversion_for_leads() -> None:
    data = CRMData(
        leads=pd.DataFrame({"person_id": ["x"], "created_at": [ts("2025-05-01")]}),
        deals=pd.DataFrame(
            {
                "person_id": ["x"],
                "deal_id": ["D1"],
                "created_at": [ts("2025-05-10")],
                "closed_at": [ts("2025-06-15")],
                "outcome": ["won"],
            }
        ),
    )
    assert label_lead_quality(data, AS_OF, H).loc["x", "label"] == 1


def test_churn_splits_quiet_customers_by_service_trigger() -> None:
    data = CRMData(
        orders=orders(
            ("stays", "2025-05-01", "paid"),
            ("stays", "2025-07-01", "paid"),
            ("drifts", "2025-05-01", "paid"),
            ("angry", "2025-05-01", "paid"),
            ("failed", "2025-05-01", "paid"),
            ("failed", "2025-06-10", "failed"),
            ("gone", "2024-12-01", "paid"),  # no activity in the last 90 days: not eligible
            ("browser", "2025-05-01", "paid"),
        ),
        interactions=interactions(
            ("angry", "2025-05-20", "complaint", float("nan")),
            ("browser", "2025-07-10", "web_visit", float("nan")),  # engaged: not quiet
            ("drifts", "2025-06-20", "campaign_touch", float("nan")),  # our touch, not theirs
        ),
    )
    frame = label_churn(data, AS_OF, H, active_customer_days=365, nps_detractor_max=6)
    assert sorted(frame.index) == ["angry", "browser", "drifts", "failed", "stays"]
    assert frame["churn_by_indifference"].to_dict() == {
        "angry": 0, "browser": 0, "drifts": 1, "failed": 0, "stays": 0,
    }
    assert frame["service_churn"].to_dict() == {
        "angry": 1, "browser": 0, "drifts": 0, "failed": 1, "stays": 0,
    }
    assert (frame["label"] == frame["churn_by_indifference"]).all()


def test_detractor_nps_is_a_service_trigger() -> None:
    data = CRMData(
        orders=orders(("p", "2025-05-01", "paid"), ("q", "2025-05-01", "paid")),
        interactions=interactions(("p", "2025-05-15", "nps", 3.0), ("q", "2025-05-15", "nps", 9.0)),
    )
    frame = label_churn(data, AS_OF, H, active_customer_days=365, nps_detractor_max=6)
    assert frame.loc["p", "service_churn"] == 1
    assert frame.loc["q", "churn_by_indifference"] == 1


def test_time_to_close_handles_censoring_and_lost_as_competing() -> None:
    deals = pd.DataFrame(
        {
            "person_id": ["a", "b", "c", "d", "e"],
            "deal_id": ["won", "lost", "open", "closed_before", "late_win"],
            "created_at": [ts("2025-05-01")] * 4 + [ts("2025-05-15")],
            "closed_at": [ts("2025-06-11"), ts("2025-07-01"), pd.NaT, ts("2025-05-20"), ts("2025-10-01")],
            "outcome": ["won", "lost", "open", "won", "won"],
        }
    )
    frame = label_time_to_close(CRMData(deals=deals), AS_OF, H, data_end=ts("2026-01-01"))
    assert sorted(frame.index) == ["late_win", "lost", "open", "won"]
    assert frame.loc["won", "event"] == "won" and frame.loc["won", "duration_days"] == 10
    assert frame.loc["lost", "event"] == "lost" and frame.loc["lost", "duration_days"] == 30
    assert frame.loc["open", "event"] == "censored" and frame.loc["open", "duration_days"] == 90
    # Won after the follow-up ends: censored at the horizon, not a win.
    assert frame.loc["late_win", "event"] == "censored" and frame.loc["late_win", "duration_days"] == 90


def test_time_to_close_follow_up_stops_at_data_end() -> None:
    deals = pd.DataFrame(
        {"person_id": ["a"], "deal_id": ["d"], "created_at": [ts("2025-05-01")], "closed_at": [pd.NaT], "outcome": ["open"]}
    )
    frame = label_time_to_close(CRMData(deals=deals), AS_OF, H, data_end=ts("2025-06-21"))
    assert frame.loc["d", "duration_days"] == 20


def test_order_without_status_is_a_purchase_as_in_the_features() -> None:
    data = CRMData(orders=orders(("a", "2025-06-10", "paid"), ("b", "2025-06-10", "failed")))
    data.orders.loc[0, "status"] = None
    labels = label_purchase_probability(data, pd.Index(["a", "b"]), AS_OF, H)
    assert labels.to_dict() == {"a": 1, "b": 0}
