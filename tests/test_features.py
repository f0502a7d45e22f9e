"""The feature families on tiny hand-made CRMs, against values worked out by hand.

All tests cut at AS_OF = 2024-06-01 00:00; ``ago(d)`` is d days before it.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from features.catalog import describe_feature, describe_pattern
from features.contract import CRMData
from features.pipeline import AS_OF_COLUMN, OPEN_DEAL_ID, build_features, build_snapshots, feature_columns
from radar.config import FeatureConfig

AS_OF = pd.Timestamp("2024-06-01")


def ago(days: float) -> pd.Timestamp:
    return AS_OF - pd.Timedelta(days=days)


def times(*values: pd.Timestamp | None) -> pd.Series:
    return pd.Series(pd.to_datetime(list(values))).astype("datetime64[ns]")


def orders(rows: list[tuple[str, float, float, str | None]]) -> pd.DataFrame:
    """Rows of (person, days ago, amount, status)."""
    return pd.DataFrame(
        {
            "person_id": [r[0] for r in rows],
            "timestamp": times(*(ago(r[1]) for r in rows)),
            "amount": [float(r[2]) for r in rows],
            "status": [r[3] for r in rows],
        }
    )


def interactions(rows: list[tuple]) -> pd.DataFrame:
    """Rows of (person, days ago, type[, value[, deal_id, stage]])."""
    full = [(*r, *([None] * (6 - len(r)))) for r in rows]
    return pd.DataFrame(
        {
            "person_id": [r[0] for r in full],
            "timestamp": times(*(ago(r[1]) for r in full)),
            "type": [r[2] for r in full],
            "value": [np.nan if r[3] is None else float(r[3]) for r in full],
            "deal_id": [r[4] for r in full],
            "stage": [r[5] for r in full],
        }
    )


def leads(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    for column in ("created_at", "converted_at"):
        if column in frame.columns:
            frame[column] = times(*frame[column])
    return frame


def deals(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    for column in ("created_at", "closed_at"):
        frame[column] = times(*frame[column])
    frame["amount"] = frame["amount"].astype("float64")
    return frame


def one(frame: pd.DataFrame, person: str = "a") -> pd.Series:
    return frame.loc[person]


# ---------------------------------------------------------------- orders


def test_monetary_counts_paid_orders_only_and_nothing_at_or_after_as_of() -> None:
    data = CRMData(
        orders=orders(
            [
                ("a", 100, 10, "paid"),
                ("a", 40, 30, "paid"),
                ("a", 20, 20, "refunded"),
                ("a", 10, 50, "failed"),
                ("a", 0, 1000, "paid"),  # exactly at as_of: not yet known
                ("a", -3, 999, "paid"),  # after as_of
            ]
        )
    )
    row = one(build_features(data, AS_OF))
    assert row["n_paid_orders"] == 2
    assert row["paid_amount_total"] == 40
    assert row["paid_amount_mean"] == 20
    assert row["paid_amount_max"] == 30
    assert row["days_since_first_paid_order"] == 100
    assert row["days_since_last_paid_order"] == 40
    assert row["n_paid_orders_30d"] == 0
    assert row["n_paid_orders_90d"] == 1
    assert row["paid_amount_365d"] == 40


def test_payment_problems_and_unrecovered_failed_amount() -> None:
    data = CRMData(
        orders=orders(
            [
                ("a", 100, 10, "paid"),
                ("a", 60, 70, "failed"),  # followed by the paid order 40 days ago: recovered
                ("a", 40, 30, "paid"),
                ("a", 20, 20, "refunded"),
                ("a", 10, 50, "failed"),  # nothing paid since: at stake
                ("a", 5, 25, "failed"),  # at stake
                ("b", 400, 8, "failed"),  # never paid at all: at stake
            ]
        )
    )
    frame = build_features(data, AS_OF)
    a, b = one(frame, "a"), one(frame, "b")
    assert a["n_failed_payments"] == 3
    assert a["n_failed_payments_7d"] == 1
    assert a["n_failed_payments_30d"] == 2
    assert a["n_failed_payments_90d"] == 3
    assert a["n_refunds"] == 1 and a["n_refunds_30d"] == 1 and a["n_refunds_7d"] == 0
    assert a["refund_amount_total"] == 20
    assert a["failed_amount_unrecovered"] == 75
    assert b["failed_amount_unrecovered"] == 8
    assert b["n_failed_payments_365d"] == 0 and b["n_failed_payments"] == 1


def test_orders_without_status_are_purchases() -> None:
    data = CRMData(orders=orders([("a", 3, 12, None)]).drop(columns="status"))
    assert one(build_features(data, AS_OF))["n_paid_orders"] == 1


def test_purchase_gaps_and_overdue_ratio() -> None:
    data = CRMData(
        orders=orders(
            [("a", 10, 1, "paid"), ("a", 100, 1, "paid"), ("a", 70, 1, "paid"), ("a", 50, 1, "failed"),
             ("b", 5, 1, "paid")]
        )
    )
    frame = build_features(data, AS_OF)
    a, b = one(frame, "a"), one(frame, "b")
    # Paid orders 100, 70 and 10 days ago: gaps of 30 and 60 days (the failed one is no purchase).
    assert a["purchase_gap_mean_days"] == 45
    assert a["purchase_gap_std_days"] == pytest.approx(math.sqrt((15**2 + 15**2) / 1))
    assert a["days_since_last_paid_order_vs_usual_gap"] == pytest.approx(10 / 45)
    # One purchase: no gap yet, which is not a gap of 0.
    assert np.isnan(b["purchase_gap_mean_days"]) and np.isnan(b["purchase_gap_std_days"])
    assert np.isnan(b["days_since_last_paid_order_vs_usual_gap"])


def test_two_purchases_give_a_mean_gap_but_no_spread() -> None:
    frame = build_features(CRMData(orders=orders([("a", 50, 1, "paid"), ("a", 20, 1, "paid")])), AS_OF)
    assert one(frame)["purchase_gap_mean_days"] == 30
    assert np.isnan(one(frame)["purchase_gap_std_days"])


def test_paid_order_trend_compares_daily_rates() -> None:
    # Recent window [as_of-30d, as_of): 2 orders; base [as_of-90d, as_of-30d): 1 order.
    rows = [("a", 1, 1, "paid"), ("a", 30, 1, "paid"), ("a", 31, 1, "paid"), ("a", 90.5, 1, "paid")]
    row = one(build_features(CRMData(orders=orders(rows)), AS_OF))
    eps = 1 / 90
    assert row["paid_order_trend_30d_vs_60d"] == pytest.approx((2 / 30 + eps) / (1 / 60 + eps))


# ---------------------------------------------------------------- interactions


def test_window_d_covers_as_of_minus_d_days_up_to_but_excluding_as_of() -> None:
    one_ns = pd.Timedelta(1, "ns")
    events = interactions(
        [
            ("a", 30, "email_open"),  # exactly as_of - 30 days: inside the 30-day window
            ("a", 0, "email_open"),  # exactly at as_of: not known yet
        ]
    )
    edge = pd.DataFrame(
        {
            "person_id": ["a", "a"],
            "timestamp": times(ago(30) - one_ns, AS_OF - one_ns),
            "type": ["email_open", "email_open"],
        }
    )
    data = CRMData(interactions=pd.concat([events, edge], ignore_index=True))
    row = one(build_features(data, AS_OF))
    assert row["n_email_open_7d"] == 1  # only the one a nanosecond before as_of
    assert row["n_email_open_30d"] == 2  # + the one at exactly as_of - 30 days
    assert row["n_email_open_90d"] == 3  # + the one a nanosecond before that


def test_counts_per_type_and_window() -> None:
    data = CRMData(
        interactions=interactions(
            [
                ("a", 2, "web_visit"), ("a", 8, "web_visit"), ("a", 200, "web_visit"),
                ("a", 400, "web_visit"), ("a", 20, "complaint"), ("a", 100, "support_ticket"),
                ("b", 1, "call"),
            ]
        )
    )
    frame = build_features(data, AS_OF)
    a = one(frame)
    assert [a[f"n_web_visit_{d}d"] for d in (7, 30, 90, 365)] == [1, 2, 2, 3]
    assert [a[f"n_complaint_{d}d"] for d in (7, 30, 90, 365)] == [0, 1, 1, 1]
    assert [a[f"n_support_ticket_{d}d"] for d in (30, 90, 365)] == [0, 0, 1]
    assert one(frame, "b")["n_call_7d"] == 1 and a["n_call_7d"] == 0


def test_engagement_excludes_service_and_outbound_touches() -> None:
    data = CRMData(
        interactions=interactions(
            [
                ("a", 5, "email_open"), ("a", 10, "email_click"), ("a", 29, "meeting"),
                ("a", 45, "web_visit"), ("a", 89, "chat_message"),
                ("a", 1, "support_ticket"), ("a", 1, "complaint"), ("a", 1, "campaign_touch"),
                ("a", 1, "nps", 9),
            ]
        )
    )
    row = one(build_features(data, AS_OF))
    assert row["n_engagement_30d"] == 3
    assert row["n_engagement_90d"] == 5
    assert row["days_since_last_engagement"] == 5
    eps = 1 / 90
    assert row["engagement_trend_30d_vs_60d"] == pytest.approx((3 / 30 + eps) / (2 / 60 + eps))


def test_trend_is_one_without_any_activity_and_always_finite() -> None:
    data = CRMData(interactions=interactions([("a", 400, "web_visit"), ("b", 1, "web_visit")]))
    frame = build_features(data, AS_OF)
    assert one(frame, "a")["engagement_trend_30d_vs_60d"] == 1.0
    assert one(frame, "b")["engagement_trend_30d_vs_60d"] == pytest.approx((1 / 30 + 1 / 90) / (1 / 90))
    assert np.isfinite(frame.filter(like="trend").to_numpy()).all()


def test_nps_latest_value_and_detractors() -> None:
    data = CRMData(
        interactions=interactions(
            [("a", 50, "nps", 9), ("a", 5, "nps", 3), ("a", 30, "nps", 6), ("a", 0, "nps", 10),
             ("b", 2, "web_visit")]
        )
    )
    frame = build_features(data, AS_OF)
    a, b = one(frame), one(frame, "b")
    assert a["nps_last_value"] == 3
    assert a["days_since_last_nps"] == 5
    assert a["n_nps_detractor"] == 2  # 3 and 6 (≤ 6); the 10 at as_of is not known yet
    assert np.isnan(b["nps_last_value"]) and np.isnan(b["days_since_last_nps"])
    stricter = build_features(data, AS_OF, FeatureConfig(nps_detractor_max=4))
    assert one(stricter)["n_nps_detractor"] == 1


def test_days_since_last_service_issue_spans_tables() -> None:
    data = CRMData(
        interactions=interactions([("a", 40, "complaint"), ("a", 3, "nps", 9), ("b", 60, "nps", 2)]),
        orders=orders([("a", 12, 5, "refunded"), ("b", 90, 5, "failed"), ("c", 3, 5, "paid")]),
    )
    frame = build_features(data, AS_OF)
    assert one(frame, "a")["days_since_last_service_issue"] == 12  # the 9 is a happy answer
    assert one(frame, "b")["days_since_last_service_issue"] == 60
    assert np.isnan(one(frame, "c")["days_since_last_service_issue"])


# ---------------------------------------------------------------- leads and the person


def test_lead_attributes_come_from_the_earliest_lead() -> None:
    data = CRMData(
        leads=leads(
            [
                {"lead_id": "L1", "person_id": "a", "created_at": ago(10), "source": "ads",
                 "country": "UK", "company_size": 50, "status": "won"},
                {"lead_id": "L2", "person_id": "a", "created_at": ago(100), "source": "fair",
                 "country": None, "company_size": 10, "status": "lost"},
                {"lead_id": "L3", "person_id": "b", "created_at": ago(20), "source": "web",
                 "country": "FR", "company_size": None, "status": None},
                {"lead_id": "L4", "person_id": "c", "created_at": ago(-5), "source": "tv",
                 "country": "DE", "company_size": 7, "status": None},
            ]
        )
    )
    frame = build_features(data, AS_OF)
    assert list(frame.index) == ["a", "b"]  # c's lead is after as_of
    a = one(frame)
    assert a["n_leads"] == 2 and a["lead_age_days"] == 100
    assert a["lead_source"] == "fair"
    assert a["lead_company_size"] == 10
    # The earliest lead has no country: the next lead in creation order fills it in.
    assert a["lead_country"] == "UK"
    assert isinstance(frame["lead_country"].dtype, pd.CategoricalDtype)
    assert list(frame["lead_country"].cat.categories) == ["FR", "UK"]  # DE is not seen yet
    assert frame["lead_company_size"].dtype == np.float64
    assert "lead_status" not in frame.columns  # an outcome, never a feature


def test_customer_status_tenure_and_journey_stage() -> None:
    data = CRMData(
        leads=leads(
            [
                {"lead_id": "L1", "person_id": "lead_only", "created_at": ago(30), "converted_at": None},
                {"lead_id": "L2", "person_id": "converted", "created_at": ago(60), "converted_at": ago(10)},
                {"lead_id": "L3", "person_id": "converts_later", "created_at": ago(60), "converted_at": AS_OF},
            ]
        ),
        interactions=interactions(
            [("clicker", 3, "email_click"), ("clicker", 50, "web_visit"), ("carter", 9, "cart_add"),
             ("opener", 2, "email_open"), ("payer", 400, "web_visit")]
        ),
        orders=orders([("payer", 20, 10, "paid"), ("failer", 20, 10, "failed")]),
        deals=deals(
            [{"deal_id": "D1", "person_id": "dealer", "created_at": ago(15), "closed_at": None,
              "outcome": "open", "amount": 1, "stage": "proposal"}]
        ),
    )
    frame = build_features(data, AS_OF)
    stage = frame["journey_stage"].to_dict()
    assert stage == {
        "carter": 3, "clicker": 2, "converted": 4, "converts_later": 1, "dealer": 3,
        "failer": 1, "lead_only": 1, "opener": 1, "payer": 4,
    }
    customers = frame.index[frame["is_customer"] == 1].tolist()
    assert customers == ["converted", "payer"]
    assert frame.loc["payer", "tenure_days"] == 400
    assert frame.loc["clicker", "tenure_days"] == 50


# ---------------------------------------------------------------- deals


def test_open_deals_stage_history_and_closed_outcomes() -> None:
    deal_rows = [
        # created, closed, outcome, amount, stage column (today's: must be ignored)
        ("D1", "a", ago(60), None, "open", 100, "negotiation"),
        ("D2", "a", ago(5), None, None, 40, "negotiation"),
        ("D3", "a", ago(90), ago(20), "won", 500, None),
        ("D4", "a", ago(80), ago(30), "lost", 70, None),
        ("D5", "a", ago(70), AS_OF, "won", 60, "negotiation"),  # closes at as_of: still open
        ("D6", "a", ago(-1), None, "open", 9, None),  # created after as_of
        ("D7", "b", ago(300), ago(200), "won", 1, None),
    ]
    data = CRMData(
        deals=deals(
            [
                {"deal_id": d, "person_id": p, "created_at": c, "closed_at": x, "outcome": o,
                 "amount": amt, "stage": s}
                for d, p, c, x, o, amt, s in deal_rows
            ]
        ),
        interactions=interactions(
            [
                ("a", 55, "deal_stage", None, "D1", "qualification"),
                ("a", 10, "deal_stage", None, "D1", "proposal"),
                ("a", 0, "deal_stage", None, "D1", "negotiation"),  # at as_of: unknown yet
                ("a", 65, "deal_stage", None, "D5", "discovery"),
            ]
        ),
    )
    frame = build_features(data, AS_OF)
    a = one(frame)
    assert a["n_open_deals"] == 3  # D1, D2, D5
    assert a["oldest_open_deal_age_days"] == 70 and a["newest_open_deal_age_days"] == 5
    assert a["open_deals_amount_total"] == 200
    # The leading open deal is the one furthest along: D1 at proposal (ordinal 2).
    assert a["open_deal_stage"] == 2
    assert a["open_deal_amount"] == 100
    assert a["open_deal_age_days"] == 60
    assert a["open_deal_n_stage_changes"] == 2
    assert a["open_deal_days_since_stage_change"] == 10
    assert a[OPEN_DEAL_ID] == "D1"
    assert list(frame[OPEN_DEAL_ID].cat.categories) == ["D1"]  # D6 (created later) is no category
    assert a["n_deals_won"] == 1 and a["n_deals_lost"] == 1 and a["won_deals_amount"] == 500
    b = one(frame, "b")
    assert b["n_open_deals"] == 0 and np.isnan(b["open_deal_stage"]) and b["is_customer"] == 1


# ---------------------------------------------------------------- the contract of the function


def small_crm() -> CRMData:
    return CRMData(
        leads=leads([{"lead_id": "L1", "person_id": "a", "created_at": ago(30), "source": "ads",
                      "industry": "retail", "converted_at": None}]),
        interactions=interactions([("a", 3, "email_open"), ("b", 4, "nps", 2)]),
        orders=orders([("a", 9, 5, "paid"), ("c", 2, 7, "failed")]),
        deals=deals([{"deal_id": "D1", "person_id": "b", "created_at": ago(20), "closed_at": None,
                      "outcome": None, "amount": 3, "stage": None}]),
    )


def test_input_frames_are_not_modified() -> None:
    data = small_crm()
    before = {name: table.copy(deep=True) for name, table in data.tables().items()}
    build_features(data, AS_OF)
    build_snapshots(data, [ago(10), AS_OF])
    for name, table in data.tables().items():
        pd.testing.assert_frame_equal(table, before[name])


@pytest.mark.parametrize("table", ["leads", "interactions", "orders", "deals"])
def test_any_single_table_is_enough(table: str) -> None:
    data = CRMData(**{table: getattr(small_crm(), table)})
    frame = build_features(data, AS_OF)
    assert len(frame) >= 1
    assert list(frame.columns) == [*feature_columns(data), OPEN_DEAL_ID]


def test_no_tables_give_an_empty_frame_with_every_column() -> None:
    frame = build_features(CRMData(), AS_OF)
    assert frame.empty and frame.index.name == "person_id"
    assert list(frame.columns) == [*feature_columns(CRMData()), OPEN_DEAL_ID]


def test_rows_are_persons_known_before_as_of_sorted() -> None:
    frame = build_features(small_crm(), AS_OF)
    assert list(frame.index) == ["a", "b", "c"]
    assert frame.index.name == "person_id"
    assert list(build_features(small_crm(), ago(5)).index) == ["a", "b"]  # c's order is later


def test_given_persons_are_returned_exactly_unknown_ones_empty() -> None:
    frame = build_features(small_crm(), AS_OF, persons=["zz", "a", "a"])
    assert list(frame.index) == ["a", "zz"]
    zz = one(frame, "zz")
    assert zz["n_paid_orders"] == 0 and zz["n_email_open_30d"] == 0
    assert np.isnan(zz["tenure_days"]) and np.isnan(zz["days_since_last_paid_order"])
    assert zz["journey_stage"] == 0 and zz["is_customer"] == 0
    full = build_features(small_crm(), AS_OF)
    pd.testing.assert_series_equal(one(frame, "a"), one(full, "a"))


def test_given_persons_see_the_same_categories_as_everyone() -> None:
    data = small_crm()
    assert build_features(data, AS_OF, persons=["b"])["lead_industry"].cat.categories.tolist() == ["retail"]


def test_columns_are_fixed_by_config_not_by_rows() -> None:
    data = small_crm()
    early, late = build_features(data, ago(25)), build_features(data, AS_OF)
    assert list(early.columns) == list(late.columns) == [*feature_columns(data), OPEN_DEAL_ID]
    assert (early.dtypes == np.float64).sum() == len(early.columns) - 3  # two categories, one id
    custom = build_features(data, AS_OF, FeatureConfig(windows_days=(14,), trend_recent_days=7, trend_base_days=21))
    assert "n_email_open_14d" in custom.columns and "n_email_open_30d" not in custom.columns
    assert "engagement_trend_7d_vs_21d" in custom.columns


def test_snapshots_stack_moments_with_shared_categories() -> None:
    data = small_crm()
    snapshots = build_snapshots(data, [ago(25), AS_OF])
    assert list(snapshots.columns) == [AS_OF_COLUMN, *feature_columns(data), OPEN_DEAL_ID]
    assert feature_columns(snapshots) == feature_columns(data)
    assert snapshots.groupby(AS_OF_COLUMN).size().to_dict() == {ago(25): 1, AS_OF: 3}
    late = snapshots[snapshots[AS_OF_COLUMN] == AS_OF].drop(columns=AS_OF_COLUMN)
    pd.testing.assert_frame_equal(late, build_features(data, AS_OF))


def test_every_feature_has_a_description() -> None:
    data = small_crm()
    for column in feature_columns(data):
        assert describe_pattern(column) is not None, column
        for value in (0.0, 1.0, 2.5, np.nan):
            text = describe_feature(column, value)
            assert isinstance(text, str) and text and "{" not in text, (column, text)


def test_descriptions_read_like_a_salesperson_would_say_them() -> None:
    assert describe_feature("n_email_open_30d", 6) == "opened 6 e-mails in the last 30 days"
    assert describe_feature("n_email_open_30d", 1) == "opened 1 e-mail in the last 30 days"
    row = pd.Series({"purchase_gap_mean_days": 35.0})
    assert describe_feature("days_since_last_paid_order", 140, row) == "no purchase for 140 days; usually buys every 35"
    assert describe_feature("days_since_last_paid_order", 140) == "no purchase for 140 days"
    assert describe_feature("days_since_last_paid_order", np.nan) == "has never bought"
    assert describe_feature("engagement_trend_30d_vs_60d", 2.0).startswith("engagement up")
    assert describe_feature("open_deal_stage", 2) == "leading open deal is at the proposal stage"
    assert describe_feature("lead_industry", "retail") == "industry: retail"


def test_text_columns_may_be_object_string_or_category() -> None:
    """Loaders hand text over as object, pandas' string dtype or category: same features."""
    data = small_crm()
    expected = build_features(data, AS_OF)
    for dtype in ("string", "category"):
        converted = CRMData(
            **{
                name: table.astype({c: dtype for c in ("person_id", "type", "status", "source", "industry")
                                    if c in table.columns})
                for name, table in data.tables().items()
            }
        )
        pd.testing.assert_frame_equal(build_features(converted, AS_OF), expected, check_index_type=False)
