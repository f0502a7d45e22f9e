"""The promotion gate on simulated test rows: outcomes drawn from known probabilities, so
which contender is truly better, and by how much, is known. No MLflow, no models."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from radar.config import TrainingConfig
from training.gate import CHAMPION, MODEL, Outcomes, _weighted_auc, calibration_noise, decide, judge
from training.survival import concordance

CONFIG = TrainingConfig()


def world(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's true probability, and outcomes drawn from it."""
    rng = np.random.default_rng(seed)
    truth = 1 / (1 + np.exp(-(-1.5 + 1.5 * rng.normal(size=n))))
    return truth, (rng.random(n) < truth).astype(int)


def blur(p: np.ndarray, amount: float, seed: int) -> np.ndarray:
    """A weaker, still calibrated-ish model: the true logit plus noise, shrunk back."""
    rng = np.random.default_rng(seed)
    logit = np.log(p / (1 - p))
    return 1 / (1 + np.exp(-(logit + amount * rng.normal(size=len(p))) / np.sqrt(1 + amount**2 / 2)))


def coarse(p: np.ndarray, bins: int) -> np.ndarray:
    """A weaker model that is still calibrated: each row gets the mean truth of its bin."""
    edges = np.quantile(p, np.linspace(0, 1, bins + 1)[1:-1])
    group = np.searchsorted(edges, p)
    return (np.bincount(group, p) / np.bincount(group))[group]


def test_weighted_auc_with_unit_weights_is_the_plain_auc() -> None:
    p, y = world(3000, 1)
    p = np.round(p, 2)  # ties are counted half, as roc_auc_score does
    assert _weighted_auc(p, y.astype(float), np.ones((1, len(y))))[0] == pytest.approx(roc_auc_score(y, p), abs=1e-12)


def test_a_challenger_better_only_within_noise_does_not_replace_the_champion() -> None:
    truth, y = world(2000, 2)
    champion = blur(truth, 0.60, 10)
    challenger = blur(truth, 0.55, 11)  # a shade better, far inside the noise of 2,000 rows
    decision = decide(Outcomes("binary", y=y), {MODEL: challenger, CHAMPION: champion}, CONFIG)
    assert not decision.promote
    assert "not better than champion beyond noise" in decision.reasons[-1]
    vs_champion = [d for d in decision.differences if d.b == CHAMPION and d.metric == "brier"][0]
    assert vs_champion.low < 0 < vs_champion.high


def test_a_challenger_better_beyond_noise_replaces_the_champion() -> None:
    truth, y = world(20000, 3)
    decision = decide(Outcomes("binary", y=y), {MODEL: blur(truth, 0.2, 12), CHAMPION: blur(truth, 1.5, 13)}, CONFIG)
    assert decision.promote, decision.reasons
    assert decision.served == MODEL
    vs_champion = [d for d in decision.differences if d.b == CHAMPION and d.metric == "brier"][0]
    assert vs_champion.high < 0


def test_a_challenger_that_ranks_worse_beyond_noise_is_kept_out() -> None:
    truth, y = world(20000, 4)
    champion = blur(truth, 0.3, 14)
    # Better Brier is impossible to fake cheaply, so pass a champion that ranks far better but
    # whose probabilities are squeezed (worse Brier is then the challenger's only route).
    squeezed = 0.5 * champion + 0.5 * y.mean()
    decision = decide(Outcomes("binary", y=y), {MODEL: squeezed, CHAMPION: champion}, CONFIG)
    assert not decision.promote


def test_calibration_is_judged_against_the_noise_of_the_test_rows() -> None:
    truth, y = world(1500, 5)
    # A perfectly calibrated model's ECE on 1,500 rows is often above a fixed 0.02 bound:
    # the noise bound must be above what it shows.
    noise = calibration_noise(truth, 0.95, seed=1)
    assert noise > 0.02
    honest = decide(Outcomes("binary", y=y), {MODEL: truth, "base_rate": np.full(len(y), y.mean())}, CONFIG)
    assert honest.calibration.honest and honest.served == MODEL
    assert honest.calibration.ece <= honest.calibration.noise


def test_a_miscalibrated_model_gives_way_to_the_best_baseline() -> None:
    truth, y = world(5000, 6)
    overconfident = np.clip(truth * 1.8, 0, 1)
    predictions = {MODEL: overconfident, "weak": blur(truth, 1.0, 15), "base_rate": np.full(len(y), y.mean())}
    decision = decide(Outcomes("binary", y=y), predictions, CONFIG)
    assert not decision.calibration.honest
    assert decision.served == "weak"
    assert decision.promote and "no champion" in decision.reasons[-1]


def test_a_model_beyond_calibration_noise_still_serves_when_its_proper_score_is_far_better() -> None:
    truth, y = world(20000, 11)
    shifted = np.clip(truth + 0.03, 0, 1)  # off by three points, ranking intact
    decision = decide(Outcomes("binary", y=y), {MODEL: shifted, "weak": coarse(truth, 2)}, CONFIG)
    assert not decision.calibration.honest
    assert decision.served == MODEL and "model beats weak beyond noise" in decision.summary


def test_a_baseline_replaces_an_honest_model_only_by_beating_it_beyond_noise() -> None:
    truth, y = world(2000, 7)
    close = {MODEL: blur(truth, 0.5, 16), "rule": blur(truth, 0.48, 17)}
    assert decide(Outcomes("binary", y=y), close, CONFIG).served == MODEL
    truth, y = world(20000, 7)
    far = {MODEL: coarse(truth, 2), "rule": truth}
    decision = decide(Outcomes("binary", y=y), far, CONFIG)
    assert decision.served == "rule" and "rule beats model beyond noise" in decision.summary


def test_without_a_model_the_best_baseline_serves() -> None:
    truth, y = world(3000, 8)
    decision = decide(Outcomes("binary", y=y), {"rule": blur(truth, 0.3, 20), "base_rate": np.full(len(y), y.mean())}, CONFIG)
    assert decision.served == "rule" and decision.calibration is None


def test_one_class_test_rows_still_compare_the_proper_score() -> None:
    y = np.zeros(400, dtype=int)
    judgement = judge(Outcomes("binary", y=y), {MODEL: np.full(400, 0.01), CHAMPION: np.full(400, 0.2)}, CONFIG)
    assert np.isnan(judgement.point[MODEL]["auc"])
    better, why = judgement.beats(MODEL, CHAMPION)
    assert better, why


def survival_rows(n: int, seed: int) -> tuple[Outcomes, np.ndarray]:
    rng = np.random.default_rng(seed)
    speed = rng.gamma(2.0, 1.0, n)
    time_to_win = rng.exponential(60 / speed)
    lost = rng.random(n) < 0.3
    duration = np.minimum(time_to_win, 90.0)
    event = np.where(duration >= 90.0, "censored", np.where(lost, "lost", "won"))
    days = (30, 60, 90)
    won = np.column_stack([(1 - np.exp(-d * speed / 60)) * 0.7 for d in days])
    return Outcomes("survival", duration=duration, event=event.astype(str), days=days), won


def test_survival_contenders_are_judged_by_integrated_brier_and_concordance() -> None:
    rows, informed = survival_rows(800, 9)
    flat = np.tile(informed.mean(axis=0), (len(rows), 1))
    decision = decide(rows, {MODEL: informed, CHAMPION: flat}, CONFIG)
    assert decision.promote, decision.reasons
    judgement = judge(rows, {MODEL: informed}, CONFIG)
    assert judgement.point[MODEL]["c_index"] == pytest.approx(concordance(rows.duration, rows.event, informed[:, -1]))
    metrics = {d.metric for d in decision.differences}
    assert metrics == {"integrated_brier", "c_index"}


def test_the_decision_serialises_with_its_intervals() -> None:
    truth, y = world(1000, 10)
    decision = decide(Outcomes("binary", y=y), {MODEL: truth, "rule": blur(truth, 1.0, 21)}, CONFIG)
    payload = decision.to_dict()
    assert payload["served"] == MODEL and payload["calibration"]["noise"] > 0
    assert {"a", "b", "metric", "estimate", "low", "high"} <= set(payload["differences"][0])


def test_on_rare_outcomes_a_baseline_that_cannot_rank_does_not_serve_by_a_hair_of_brier() -> None:
    """A constant's Brier can edge out a real ranking's within noise when outcomes are rare
    (Olist's funnel: 4 conversions in 1,085 test leads). The ranking baseline serves."""
    rng = np.random.default_rng(3)
    truth = 1 / (1 + np.exp(-(-6.0 + 1.5 * rng.normal(size=4000))))
    y = (rng.random(len(truth)) < truth).astype(int)
    ranking, constant = np.clip(truth * 2.5, 0, 1), np.full(len(y), y.mean())
    assert np.mean((constant - y) ** 2) < np.mean((ranking - y) ** 2)
    decision = decide(Outcomes("binary", y=y), {"channel_rate": constant, "logistic": ranking}, CONFIG)
    assert decision.served == "logistic"
    assert any("channel_rate ranks worse than logistic beyond noise" in r for r in decision.reasons)


def test_a_baseline_with_a_better_proper_score_beyond_noise_still_serves_over_a_better_ranker() -> None:
    truth, y = world(3000, 8)
    calibrated = coarse(truth, 4)
    overconfident = np.clip(truth * 1.8, 0, 1)
    judged = judge(Outcomes("binary", y=y), {"coarse": calibrated, "sharp": overconfident}, CONFIG)
    assert judged.difference("coarse", "sharp", "brier").high < 0
    decision = decide(Outcomes("binary", y=y), {"coarse": calibrated, "sharp": overconfident}, CONFIG)
    assert decision.served == "coarse"
