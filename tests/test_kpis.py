"""KPIs on a tiny hand-made CRM, every figure worked out by hand in the comments.

The world: H = 30 days, as_of 2026-04-01, two channels (ads, referral), leads in January and
February 2026 (both months mature: Feb's end + 30 days = 2026-03-31 < as_of).

| person | channel | lead       | what happens                                                   |
|--------|---------|------------|----------------------------------------------------------------|
| p1     | ads     | 2026-01-05 | pays 100 on 01-15 (converts, cycle 10 days); NPS 10            |
| p2     | ads     | 2026-01-10 | nothing but NPS 9                                              |
| p3     | ads     | 2026-02-01 | pays 200 on 03-15: 42 days, beyond H, so not a conversion      |
| p4     | referral| 2026-01-20 | deal won 02-09 (converts, cycle 20), pays 300 on 02-12; NPS 6 on 02-20; visits 03-10 |
| p5     | referral| 2026-02-10 | failed 999 on 02-13, pays 50 on 02-14 (cycle 4), 150 on 03-20; NPS 8 |
| p6     | referral| 2026-02-20 | NPS 3                                                          |

Spend: ads 120 + 80 in January, 100 in February; referral 90 in January, 60 in February.
"""

import math

import pandas as pd
import pytest

from features.contract import CRMData
from radar.config import Settings
from serving.kpis import compute_kpis, lifetime_years

AS_OF = pd.Timestamp("2026-04-01")
T = pd.Timestamp


@pytest.fixture(scope="module")
def crm() -> CRMData:
    leads = pd.DataFrame(
        {
            "lead_id": ["L1", "L2", "L3", "L4", "L5", "L6"],
            "person_id": ["p1", "p2", "p3", "p4", "p5", "p6"],
            "created_at": [T(d) for d in ("2026-01-05", "2026-01-10", "2026-02-01", "2026-01-20", "2026-02-10", "2026-02-20")],
            "source": ["ads", "ads", "ads", "referral", "referral", "referral"],
        }
    )
    orders = pd.DataFrame(
        {
            "order_id": ["O1", "O3", "O4", "O5x", "O5", "O5b"],
            "person_id": ["p1", "p3", "p4", "p5", "p5", "p5"],
            "timestamp": [T(d) for d in ("2026-01-15", "2026-03-15", "2026-02-12", "2026-02-13", "2026-02-14", "2026-03-20")],
            "amount": [100.0, 200.0, 300.0, 999.0, 50.0, 150.0],
            "status": ["paid", "paid", "paid", "failed", "paid", "paid"],
        }
    )
    deals = pd.DataFrame(
        {
            "deal_id": ["D4"],
            "person_id": ["p4"],
            "created_at": [T("2026-01-25")],
            "closed_at": [T("2026-02-09")],
            "outcome": ["won"],
            "amount": [300.0],
        }
    )
    nps = [("p1", "2026-01-20", 10), ("p2", "2026-01-25", 9), ("p4", "2026-02-20", 6), ("p5", "2026-02-25", 8), ("p6", "2026-02-28", 3)]
    interactions = pd.DataFrame(
        {
            "person_id": [p for p, _, _ in nps] + ["p4"],
            "timestamp": [T(d) for _, d, _ in nps] + [T("2026-03-10")],
            "type": ["nps"] * len(nps) + ["web_visit"],
            "value": [float(v) for _, _, v in nps] + [float("nan")],
        }
    )
    spend = pd.DataFrame(
        {
            "date": [T(d) for d in ("2026-01-03", "2026-01-17", "2026-02-05", "2026-01-09", "2026-02-09")],
            "channel": ["ads", "ads", "ads", "referral", "referral"],
            "amount": [120.0, 80.0, 100.0, 90.0, 60.0],
        }
    )
    return CRMData(leads=leads, interactions=interactions, orders=orders, deals=deals, spend=spend)


@pytest.fixture(scope="module")
def kpis(crm):
    return compute_kpis(crm, Settings(training={"horizon_days": 30}), as_of=AS_OF)


def test_by_channel_and_month(kpis) -> None:
    rows = kpis.by_channel_month
    jan, feb = T("2026-01-01"), T("2026-02-01")
    # ads January: spend 120 + 80 = 200, leads p1 and p2, p1 converts after 10 days.
    ads_jan = rows.loc[("ads", jan)]
    assert ads_jan["spend"] == 200.0 and ads_jan["leads"] == 2
    assert ads_jan["cost_per_lead"] == 100.0  # 200 / 2
    assert ads_jan["conversions"] == 1 and ads_jan["conversion_rate"] == 0.5
    assert ads_jan["cac"] == 200.0  # 200 / 1
    assert ads_jan["median_cycle_days"] == 10.0
    assert ads_jan["avg_ticket"] == 100.0  # p1's January order
    # ads February: p3's purchase comes after 42 days > H: no conversion, so no CAC.
    ads_feb = rows.loc[("ads", feb)]
    assert ads_feb["conversion_rate"] == 0.0 and math.isnan(ads_feb["cac"])
    # referral February: spend 60, leads p5 and p6, p5 converts after 4 days.
    ref_feb = rows.loc[("referral", feb)]
    assert ref_feb["cost_per_lead"] == 30.0 and ref_feb["conversion_rate"] == 0.5 and ref_feb["cac"] == 60.0
    # Paid orders in February: p4's 300 and p5's 50 (the failed 999 does not count) -> 175.
    assert ref_feb["avg_ticket"] == 175.0
    assert rows.loc[("referral", jan), "median_cycle_days"] == 20.0  # deal won 20 days after the lead
    assert bool(rows.loc[("ads", jan), "mature"]) and not bool(rows.loc[("ads", T("2026-03-01")), "mature"])


def test_by_channel(kpis) -> None:
    ads, ref = kpis.by_channel.loc["ads"], kpis.by_channel.loc["referral"]
    # ads: spend 300, 3 leads, 1 conversion; referral: spend 150, 3 leads, 2 conversions.
    assert (ads["spend"], ads["leads"], ads["conversions"]) == (300.0, 3, 1)
    assert ads["cost_per_lead"] == 100.0 and ads["cac"] == 300.0
    assert ads["conversion_rate"] == pytest.approx(1 / 3)
    assert (ref["spend"], ref["leads"], ref["conversions"]) == (150.0, 3, 2)
    assert ref["cost_per_lead"] == 50.0 and ref["cac"] == 75.0
    assert ref["conversion_rate"] == pytest.approx(2 / 3)
    # Average ticket: ads (100 + 200) / 2 = 150; referral (300 + 50 + 150) / 3.
    assert ads["avg_ticket"] == 150.0 and ref["avg_ticket"] == pytest.approx(500 / 3)
    # NPS: ads 10 and 9 are two promoters of two = +100; referral 6 and 3 are detractors,
    # 8 is passive: (0 - 2) / 3.
    assert ads["nps"] == 100.0 and ref["nps"] == pytest.approx(-200 / 3)
    # Median cycle: ads 10; referral median of 20 and 4 = 12.
    assert ads["median_cycle_days"] == 10.0 and ref["median_cycle_days"] == 12.0


def test_churn_split(kpis) -> None:
    # Month starts whose 30-day window has passed and that follow the first record: Feb 1, Mar 1.
    # Feb 1: p1 (paid 01-15) is active, then quiet with no trigger -> indifference.
    # Mar 1: p4 (paid 02-12) and p5 (paid 02-14) are active; p4 visits 03-10, p5 pays 03-20:
    # neither churns.
    churn = kpis.churn
    assert list(churn.index) == [T("2026-02-01"), T("2026-03-01")]
    assert churn.loc[T("2026-02-01")].tolist() == [1, 1, 0]
    assert churn.loc[T("2026-03-01")].tolist() == [2, 0, 0]


def test_ltv_and_flag(kpis) -> None:
    years_per_period = 30 / 365
    inputs = kpis.ltv_inputs
    # ads: revenue over the last year 100 + 200 from p1 and p3 = 150 per customer; 1 churned
    # of 1 active -> lifetime 1 period of 30 days; LTV = 150 * 30/365; CAC 300 -> flagged.
    assert inputs.loc["ads", "ltv"] == pytest.approx(150 * years_per_period)
    ads = kpis.by_channel.loc["ads"]
    assert ads["ltv_cac"] == pytest.approx(150 * years_per_period / 300) and bool(ads["ltv_cac_low"])
    # referral: (300 + 50 + 150) / 2 customers = 250 a year, nobody churned of 2 -> the
    # 5-year cap: LTV 1250, CAC 75 -> 16.7, not flagged.
    ref = kpis.by_channel.loc["referral"]
    assert ref["ltv"] == 1250.0 and ref["ltv_cac"] == pytest.approx(1250 / 75) and not bool(ref["ltv_cac_low"])
    # The month rows use the channel's LTV over the month's CAC: referral Feb 1250 / 60.
    assert kpis.by_channel_month.loc[("referral", T("2026-02-01")), "ltv_cac"] == pytest.approx(1250 / 60)


def test_overall(kpis) -> None:
    o = kpis.overall
    # spend 450, 6 leads, 3 conversions; CPL 75, conversion 50 %, CAC 150; tickets 800 / 5.
    assert (o["spend"], o["leads"], o["conversions"]) == (450.0, 6.0, 3.0)
    assert (o["cost_per_lead"], o["conversion_rate"], o["cac"], o["avg_ticket"]) == (75.0, 0.5, 150.0, 160.0)
    # NPS: 2 promoters, 2 detractors of 5 answers = 0; median cycle of 10, 20, 4 = 10.
    assert o["nps"] == 0.0 and o["median_cycle_days"] == 10.0
    # LTV: 800 / 4 customers = 200 a year; 1 churned of 3 active -> 3 periods of 30 days.
    assert o["ltv"] == pytest.approx(200 * 3 * 30 / 365)
    assert o["ltv_cac"] == pytest.approx(200 * 90 / 365 / 150) and o["ltv_cac_low"] == 1.0


def test_funnel(kpis) -> None:
    # Everyone known has a need and searches; the four customers (p1, p3, p4, p5) are at
    # "use", hence past evaluation and decision too; p2 and p6 did nothing that evaluates.
    assert kpis.funnel["people"].tolist() == [6, 6, 4, 4, 4]


def test_lifetime_is_capped() -> None:
    rates = pd.Series([0.5, 0.0, 0.001, float("nan")])
    years = lifetime_years(rates, 73)  # 73 days = 0.2 years
    assert years.iloc[0] == pytest.approx(0.4) and years.iloc[1] == 5.0 and years.iloc[2] == 5.0
    assert math.isnan(years.iloc[3])


def test_as_of_cuts_later_records(crm) -> None:
    # At 2026-02-01 only January exists: ads Jan p1 converted (01-15), p4's deal is not won yet.
    early = compute_kpis(crm, Settings(training={"horizon_days": 30}), as_of=T("2026-02-01"))
    ref_jan = early.by_channel_month.loc[("referral", T("2026-01-01"))]
    assert ref_jan["conversions"] == 0 and not bool(ref_jan["mature"])
    assert early.by_channel_month.loc[("ads", T("2026-01-01")), "conversions"] == 1
