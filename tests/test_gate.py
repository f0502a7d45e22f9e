"""The promotion gate on hand-made metric dicts: no MLflow, no models."""

import math

import pytest

from radar.config import TrainingConfig
from training.gate import decide

CONFIG = TrainingConfig(promotion_margin_auc=0.01, max_calibration_error=0.02)


def binary(auc: float, brier: float = 0.10, ece: float = 0.01) -> dict[str, float]:
    return {"auc": auc, "brier": brier, "ece": ece, "n": 1000.0}


def survival(c: float, ibs: float = 0.10) -> dict[str, float]:
    return {"c_index": c, "integrated_brier": ibs, "n": 500.0}


def test_first_model_beating_its_baselines_is_promoted() -> None:
    decision = decide(binary(0.80), {"rfm": binary(0.70, brier=0.12)}, None, CONFIG, "binary")
    assert decision.promote
    assert "no champion yet" in decision.reasons


def test_beating_the_champion_by_less_than_the_margin_is_not_enough() -> None:
    decision = decide(binary(0.805), {"rfm": binary(0.70)}, binary(0.80), CONFIG, "binary")
    assert not decision.promote
    assert any("does not beat champion" in r for r in decision.reasons)


def test_beating_by_the_margin_is_enough() -> None:
    decision = decide(binary(0.811, brier=0.09), {"rfm": binary(0.70)}, binary(0.80), CONFIG, "binary")
    assert decision.promote, decision.reasons


@pytest.mark.parametrize(
    "baselines",
    [{"rfm": binary(0.795)}, {"rfm": binary(0.60), "bgnbd": binary(0.80)}],
)
def test_every_baseline_must_be_beaten(baselines: dict) -> None:
    decision = decide(binary(0.80), baselines, None, CONFIG, "binary")
    assert not decision.promote
    assert any("baseline" in r and "does not beat" in r for r in decision.reasons)


def test_worse_brier_blocks_even_with_better_auc() -> None:
    decision = decide(binary(0.90, brier=0.15), {"rfm": binary(0.70, brier=0.14)}, None, CONFIG, "binary")
    assert not decision.promote
    assert decision.reasons[0].startswith("brier 0.1500 is worse than baseline rfm")


def test_calibration_error_out_of_bounds_blocks() -> None:
    decision = decide(binary(0.90, ece=0.05), {"rfm": binary(0.70)}, None, CONFIG, "binary")
    assert not decision.promote
    assert "ece 0.0500 exceeds the allowed 0.02" in decision.reasons


def test_survival_uses_c_index_and_integrated_brier_and_ignores_ece() -> None:
    good = decide(survival(0.75, 0.08), {"kaplan_meier": survival(0.5, 0.10)}, survival(0.70, 0.09), CONFIG, "survival")
    assert good.promote, good.reasons
    worse = decide(survival(0.75, 0.11), {"kaplan_meier": survival(0.5, 0.10)}, None, CONFIG, "survival")
    assert not worse.promote
    assert any("integrated_brier" in r for r in worse.reasons)


def test_candidate_without_a_ranking_metric_is_never_promoted() -> None:
    decision = decide(binary(math.nan), {}, None, CONFIG, "binary")
    assert not decision.promote
    assert "candidate has no test auc" in decision.reasons


def test_a_baseline_without_auc_is_noted_not_fatal() -> None:
    decision = decide(binary(0.8), {"rule": {"auc": None, "brier": 0.2}}, None, CONFIG, "binary")
    assert decision.promote
    assert "baseline rule has no test auc; ranking not compared" in decision.reasons


def test_a_baseline_backed_candidate_must_still_beat_the_other_baselines_and_champion() -> None:
    # Small-data fallback: the candidate *is* the bgnbd baseline, so the caller leaves it
    # out of the baselines; it is still held to the rule against the rest.
    decision = decide(binary(0.70), {"rfm": binary(0.72)}, None, CONFIG, "binary")
    assert not decision.promote


def test_failures_come_before_notes_in_the_summary() -> None:
    decision = decide(binary(0.70, ece=0.5), {}, None, CONFIG, "binary")
    assert decision.summary.startswith("ece 0.5000 exceeds")
