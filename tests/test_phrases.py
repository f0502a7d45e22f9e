"""Phrases for a whole column at once (features.catalog.describe_many) are, value for value,
the phrases describe_feature writes: every catalog entry, with the values that sit on the
edges of rounding (halves, tenths, 0.95 and 1.05, -0.0, huge and missing values)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.catalog import describe_feature, describe_many
from features.contract import DEAL_STAGES
from features.pipeline import feature_columns
from tests.test_features import small_crm

EDGES = [np.nan, 0.0, -0.0, 1.0, -1.0, 2.0, 0.05, 0.15, 0.25, 0.35, 0.45, 0.5, -0.5, -0.4, -0.6, 0.94, 0.95, 0.9499999,
         0.9500001, 1.04, 1.05, 1.0500001, 1.0499999, 1.5, 2.5, 3.5, 2.45, 2.55, 2.449999999, 139.5, 140.5, 140.2, 1234.56,
         1249.95, 1e11, 1e11 + 0.05, 1e12, 1e15 + 0.5, 2.0**53, 3.0, 4.0, 7.25, 0.99999999999, 1e-320]


def _values(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([
        np.array(EDGES),
        np.round(rng.uniform(-5, 400, 300), 2),  # ties of one decimal (x.x5) among them
        rng.uniform(0, 3, 200),
        rng.integers(0, 12, 200).astype(float),
        np.arange(-20, 21) * 0.05,
        rng.lognormal(6, 2, 100),
    ])


def _columns() -> list[str]:
    columns = list(feature_columns(small_crm()))
    # Every kind of name the catalog knows, whether or not the small world makes it.
    return columns + ["lead_company_size", "lead_source", "lead_email_kind", "lead_phone_kind", "lead_has_name",
                      "open_deal_stage", "journey_stage", "made_up_column"]


@pytest.mark.parametrize("column", _columns())
def test_numbers_read_as_describe_feature_reads_them(column: str) -> None:
    values = _values(len(column))
    gaps = np.resize(_values(7)[::-1], len(values))
    context = {"purchase_gap_mean_days": gaps}
    many = describe_many(column, values, context)
    one = [describe_feature(column, v, {"purchase_gap_mean_days": g}) for v, g in zip(values, gaps)]
    assert list(many) == one


@pytest.mark.parametrize("column", ["lead_source", "lead_email_kind", "lead_phone_kind", "lead_industry",
                                    "lead_country", "made_up_column"])
def test_categories_read_as_describe_feature_reads_them(column: str) -> None:
    values = np.array(["referral", "webmail", None, np.nan, "company", "referral", pd.NA, "mobile", "", "5",
                       "disposable", "invalid", "other"], dtype=object)
    assert list(describe_many(column, values)) == [describe_feature(column, v) for v in values]
    # Not only text: numbers that are equal but read differently (1, 1.0, True) stay apart.
    odd = np.array([1, 1.0, True, "1", None, 2], dtype=object)
    assert list(describe_many(column, odd)) == [describe_feature(column, v) for v in odd]


def test_the_last_purchase_reads_the_usual_gap_of_its_own_row() -> None:
    days = np.array([140.0, 140.0, 140.0, np.nan, 139.6])
    gaps = np.array([35.0, np.nan, 34.6, 20.0, 35.4])
    said = describe_many("days_since_last_paid_order", days, {"purchase_gap_mean_days": gaps})
    assert list(said) == ["no purchase for 140 days; usually buys every 35", "no purchase for 140 days",
                          "no purchase for 140 days; usually buys every 35", "has never bought",
                          "no purchase for 140 days; usually buys every 35"]
    # Without the gap in the rows at all, as when a model does not read it.
    assert describe_many("days_since_last_paid_order", days[:1])[0] == "no purchase for 140 days"


def test_stages_and_empty_columns() -> None:
    stages = np.array([0.0, 1.0, 3.0, 3.7, 4.0, -1.0, np.nan])
    assert list(describe_many("open_deal_stage", stages)) == [describe_feature("open_deal_stage", v) for v in stages]
    assert DEAL_STAGES[1] in describe_many("open_deal_stage", stages)[1]
    assert describe_many("n_leads", np.zeros(0)).shape == (0,)
