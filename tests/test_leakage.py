"""The leakage guard on synthetic columns whose relation to the label is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.leakage import LeakageSettings, balanced_rate, check_leakage

N = 4000


@pytest.fixture(scope="module")
def planted() -> tuple[pd.DataFrame, np.ndarray]:
    """A label driven by two honest columns, plus leaks and decoys."""
    rng = np.random.default_rng(7)
    signal = rng.normal(size=N)
    channel = rng.choice(["web", "event", "referral", "ads"], size=N)
    logit = 1.2 * signal + np.select([channel == "referral", channel == "ads"], [1.0, -0.8], 0.0) - 0.4
    y = (rng.random(N) < 1 / (1 + np.exp(-logit))).astype(int)
    flipped = rng.random(N) < 0.03
    copy = np.where(y ^ flipped, "won", "lost")
    # Filled for 60 % of positives only: its missingness is the answer.
    closed_on = np.where((y == 1) & (rng.random(N) < 0.6), rng.uniform(1, 90, N), np.nan)
    # A disposition: half the rows say "surely yes" or "surely no", the rest say nothing.
    status = np.where(rng.random(N) < 0.5, np.where(y == 1, "closed", "not interested"), "open")
    frame = pd.DataFrame(
        {
            "signal": signal,
            "channel": pd.Categorical(channel),
            "label_copy": pd.Categorical(copy),
            "closed_on": closed_on,
            "status": pd.Categorical(status),
            # Unique per row: in-sample level rates would give AUC 1.0, out-of-fold ones 0.5.
            "free_text": pd.Categorical([f"note {i}" for i in range(N)]),
            "noise": rng.normal(size=N),
        }
    )
    return frame, y


def test_planted_leaks_are_flagged_and_honest_columns_kept(planted):
    frame, y = planted
    report = check_leakage(frame, y)
    assert set(report.excluded) == {"label_copy", "closed_on", "status"}
    for honest in ("signal", "channel", "free_text", "noise"):
        assert not report.check(honest).flagged, report.check(honest).reason


def test_reasons_name_the_evidence(planted):
    frame, y = planted
    report = check_leakage(frame, y)
    copy = report.check("label_copy")
    assert copy.auc > 0.95 and "single-column AUC" in copy.reason
    assert "filled in almost only for positives" in report.check("closed_on").reason
    assert "outcome-like values" in report.check("status").reason
    assert report.check("free_text").auc < 0.6


def test_force_include_keeps_a_flagged_column_but_still_reports_it(planted):
    frame, y = planted
    report = check_leakage(frame, y, force_include=["label_copy"])
    assert "label_copy" not in report.excluded
    assert "label_copy" in report.flagged and report.forced == ["label_copy"]
    assert any("label_copy" in w and "forced" in w for w in report.warnings())


def test_unknown_force_include_is_an_error(planted):
    frame, y = planted
    with pytest.raises(KeyError, match="not_a_column"):
        check_leakage(frame, y, force_include=["not_a_column"])


def test_one_strong_level_is_not_a_leak():
    """A channel converting 95 % (a referral programme) is signal, not an outcome field."""
    rng = np.random.default_rng(3)
    source = rng.choice(["referral", "web", "ads"], size=N, p=[0.1, 0.6, 0.3])
    rate = np.select([source == "referral", source == "web"], [0.95, 0.35], 0.25)
    y = (rng.random(N) < rate).astype(int)
    report = check_leakage(pd.DataFrame({"source": pd.Categorical(source)}), y)
    assert report.flagged == []


def test_rare_positive_class_is_judged_on_balanced_rates():
    """At a 3 % base rate a level converting 1 % is ordinary, not "almost only negatives"."""
    rng = np.random.default_rng(5)
    region = rng.choice(["north", "south"], size=N)
    y = (rng.random(N) < np.where(region == "north", 0.05, 0.01)).astype(int)
    report = check_leakage(pd.DataFrame({"region": pd.Categorical(region)}), y)
    assert report.flagged == []
    assert balanced_rate(0.01, 0.03) > 0.2


def test_threshold_is_a_parameter(planted):
    frame, y = planted
    strict = check_leakage(frame[["signal"]], y, LeakageSettings(max_auc=0.6))
    assert strict.excluded == ["signal"]


def test_report_renders_as_text_and_rich(planted):
    from rich.console import Console

    frame, y = planted
    report = check_leakage(frame, y)
    text = report.to_text()
    assert "label_copy" in text and "excluded" in text
    console = Console(record=True, width=200)
    console.print(report)
    assert "closed_on" in console.export_text()
    assert list(report.to_frame().columns[:2]) == ["column", "auc"]


def test_needs_both_classes():
    with pytest.raises(ValueError, match="both classes"):
        check_leakage(pd.DataFrame({"a": [1.0, 2.0]}), [1, 1])
