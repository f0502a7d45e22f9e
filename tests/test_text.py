"""Counts in words: one day, two days, in reasons, command output and the report."""

from __future__ import annotations

import pytest

from features.catalog import describe_feature
from radar.text import count_text, noun, plural


@pytest.mark.parametrize(
    ("count", "word", "plural_form", "expected"),
    [
        (1, "day", None, "1 day"),
        (0, "day", None, "0 days"),
        (2, "day", None, "2 days"),
        (1.0, "row", None, "1 row"),
        (1.5, "day", None, "1.5 days"),
        (1250, "row", None, "1,250 rows"),
        (1, "person", "people", "1 person"),
        (3, "person", "people", "3 people"),
        (2, "batch", "batches", "2 batches"),
    ],
)
def test_plural(count: float, word: str, plural_form: str | None, expected: str) -> None:
    assert plural(count, word, plural_form) == expected


def test_noun_and_count_text() -> None:
    assert noun(1, "row") == "row" and noun(7, "row") == "rows"
    assert count_text(6) == "6" and count_text(2.25) == "2.2" and count_text(float("nan")) == "unknown"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("days_since_last_engagement", 1.2, "last active 1 day ago"),
        ("days_since_last_engagement", 8, "last active 8 days ago"),
        ("days_since_last_engagement", 0.3, "last active today"),
        ("days_since_last_service_issue", 1, "last service problem 1 day ago"),
        ("days_since_last_paid_order", 1, "no purchase for 1 day"),
        ("lead_age_days", 20.2098, "first came in as a lead 20 days ago"),
        ("tenure_days", 1, "known for 1 day"),
        ("open_deal_days_since_stage_change", 1, "leading open deal has not moved for 1 day"),
        ("n_email_open_1d", 2, "opened 2 e-mails in the last day"),
        ("n_email_open_30d", 1, "opened 1 e-mail in the last 30 days"),
        ("n_paid_orders_1d", 0, "no purchases in the last day"),
        ("engagement_trend_1d_vs_60d", 2.0, "engagement up 2.0× in the last day vs the 60 before"),
    ],
)
def test_reason_phrases_use_the_singular_for_one(name: str, value: float, expected: str) -> None:
    assert describe_feature(name, value) == expected
