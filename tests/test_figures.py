"""Figures rounded for the people reading lists and score files (serving.figures)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from serving.export import write_scores
from serving.figures import figure_kind, significant, tidy_figures


def _scores() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "person_id": ["P1", "P2", "P3"],
            "probability": [0.5096850136513595, 0.007298450575230026, np.nan],
            "score": [51, 1, 0],
            "percentile": [90.71234, 11.0, np.nan],
            "expected_value": [597.6149, 18.199999999999999, 0.1 + 0.2],
            "p_won_30d": [0.123456789, 0.0, 1.0],
            "median_days_to_win": [29.48812521495711, np.nan, 3.04],
            "lead_age_days": [20.209837962962963, 0.04, 400.0],
            "n_recent_failed_payments": [1.0, np.nan, 3.0],
            "reasons_text": ["a", "b", "c"],
        }
    )


def test_each_kind_of_figure_is_rounded_its_own_way() -> None:
    tidy = tidy_figures(_scores())
    assert tidy["probability"].tolist()[:2] == [0.5097, 0.007298] and np.isnan(tidy["probability"][2])
    assert tidy["p_won_30d"].tolist() == [0.1235, 0.0, 1.0]
    assert tidy["lead_age_days"].tolist() == [20.2, 0.0, 400.0]
    assert tidy["median_days_to_win"].tolist()[0] == 29.5
    assert tidy["expected_value"].tolist() == [597.61, 18.2, 0.3]
    assert tidy["percentile"].tolist()[0] == 90.7
    assert tidy["n_recent_failed_payments"].tolist() == [1, pd.NA, 3]
    assert tidy["score"].tolist() == [51, 1, 0] and tidy["reasons_text"].tolist() == ["a", "b", "c"]
    assert [figure_kind(c) for c in ("probability", "p_won_90d", "days_since_last_paid_order", "n_leads", "deal_amount")] == [
        "probability", "probability", "days", "count", "money"
    ]


def test_significant_digits_give_the_short_float() -> None:
    assert significant(np.array([0.1234567, 1234.5678, 0.0, -0.000123456]), 4).tolist() == [0.1235, 1235.0, 0.0, -0.0001235]


def test_score_files_for_people_are_rounded_and_parquet_keeps_full_precision(tmp_path: Path) -> None:
    scores = _scores()
    text = write_scores(scores, tmp_path / "scores.csv").read_text(encoding="utf-8")
    assert "0.5097," in text and "20.2," in text and "20.2098" not in text and "0.30000000000000004" not in text
    excel = pd.read_excel(write_scores(scores, tmp_path / "scores.xlsx"))
    assert excel["lead_age_days"].tolist() == [20.2, 0.0, 400.0]
    exact = pd.read_parquet(write_scores(scores, tmp_path / "scores.parquet"))
    assert exact["lead_age_days"].tolist() == scores["lead_age_days"].tolist()
