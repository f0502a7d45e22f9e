"""The promotion gate: which contender serves, and may it replace the champion?

Every contender (the LightGBM model, each baseline and, when there is one, the current
champion re-scored) is judged on the *same* test rows. Fixed thresholds fail on real data
(a 0.02 ECE bound blocks a good model on a few thousand rows; a 0.002 AUC margin is
smaller than the noise of most test snapshots), so every comparison is a paired bootstrap
over the test rows, and calibration is judged against the noise of the test rows itself.

The rule:

1. **Honest calibration.** The model's ECE is compared with what a perfectly calibrated
   model would show on test rows of this size and base rate: outcomes drawn from the
   model's own probabilities, ``gate_confidence`` quantile of their ECE. It is honest when
   its ECE is within that noise, or no worse than the best-calibrated baseline's.
2. **What serves from this run.** The model, when it was trained and is honest; a baseline
   takes its place only by beating it beyond noise (below). A model that is not honest
   must earn its place: it serves only if it beats the baseline with the best proper score
   beyond noise (calibration error is part of that score). Otherwise, or when no model
   was trained, that baseline serves: something honest always serves.
3. **Beating beyond noise.** A beats B when the interval of A's proper score minus B's
   (Brier; integrated Brier for survival) lies below zero, and A's ranking (AUC; C-index)
   is not worse beyond noise (the interval of A − B does not lie wholly below zero).
4. **Against the champion.** The pick replaces the champion only by beating it (rule 3).
   With no champion it is promoted.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from radar.config import TrainingConfig
from training.bundle import TargetKind
from training.metrics import expected_calibration_error
from training.survival import concordance, integrated_brier

#: Names of the contenders the gate treats specially.
MODEL = "model"
CHAMPION = "champion"
#: Metric names per kind of target: ranking (higher is better), proper score (lower is better).
RANK_METRIC: dict[str, str] = {"binary": "auc", "survival": "c_index"}
LOSS_METRIC: dict[str, str] = {"binary": "brier", "survival": "integrated_brier"}
#: Survival metrics refit Kaplan–Meier curves per resample: fewer rounds keep them cheap.
MAX_SURVIVAL_ROUNDS = 200
#: Draws of outcomes from the model's own probabilities, to learn the ECE of pure noise.
CALIBRATION_DRAWS = 200
#: Bootstrap weights are built in blocks of at most this many cells (rounds x rows).
BLOCK_CELLS = 4_000_000


@dataclass(frozen=True)
class Outcomes:
    """The truth of one test snapshot. Binary: ``y``. Survival: ``duration``, ``event``
    (won / lost / censored) and the ``days`` each prediction column gives P(won by)."""

    kind: TargetKind
    y: np.ndarray | None = None
    duration: np.ndarray | None = None
    event: np.ndarray | None = None
    days: tuple[int, ...] = ()

    def __len__(self) -> int:
        return len(self.y if self.kind == "binary" else self.duration)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Difference:
    """``a − b`` on one metric: the estimate on all test rows and its bootstrap interval."""

    a: str
    b: str
    metric: str
    estimate: float
    low: float
    high: float

    def to_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Calibration:
    """The model's ECE beside the ECE of noise alone and of the best baseline."""

    ece: float
    noise: float
    best_baseline: float | None
    honest: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GateDecision:
    """Whether to promote, which contender serves, and every reason and interval."""

    promote: bool
    reasons: list[str] = field(default_factory=list)
    served: str = MODEL
    differences: list[Difference] = field(default_factory=list)
    calibration: Calibration | None = None

    @property
    def summary(self) -> str:
        """One line for a tag: the reasons joined."""
        return "; ".join(self.reasons)

    def to_dict(self) -> dict[str, Any]:
        return {
            "promote": self.promote,
            "served": self.served,
            "reasons": list(self.reasons),
            "differences": [d.to_dict() for d in self.differences],
            "calibration": self.calibration.to_dict() if self.calibration else None,
        }


# --- metrics under bootstrap weights ------------------------------------------------------


def _ranking(score: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A contender's rows in score order, the truth in that order, and where each run of
    tied scores starts: sorted once, reused under every resample."""
    order = np.argsort(score, kind="stable")
    ranked = score[order]
    starts = np.r_[0, np.flatnonzero(np.diff(ranked)) + 1]
    return order, y[order].astype(np.float32), starts


def _auc_under(ranking: tuple[np.ndarray, np.ndarray, np.ndarray], weights: np.ndarray) -> np.ndarray:
    """AUC under each column of ``weights`` (rows x rounds), ties counted half. Rows lead
    the layout so that every sum runs over whole rows, many rounds at once."""
    order, truth, starts = ranking
    w = weights[order]
    pos = np.add.reduceat(w * truth[:, None], starts, axis=0, dtype=np.float64)
    neg = np.add.reduceat(w, starts, axis=0, dtype=np.float64) - pos
    below = np.cumsum(neg, axis=0) - neg
    pairs = pos.sum(axis=0) * neg.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, (pos * (below + 0.5 * neg)).sum(axis=0) / pairs, np.nan)


def _weighted_auc(score: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUC of ``score`` under each row of ``weights`` (rounds x rows), ties counted half."""
    return _auc_under(_ranking(np.asarray(score, dtype=float), np.asarray(y, dtype=float)), np.asarray(weights).T)


def _binary_samples(y: np.ndarray, predictions: Mapping[str, np.ndarray], rounds: int, seed: int) -> dict[str, dict[str, np.ndarray]]:
    """Brier and AUC of every contender under the same Poisson bootstrap weights."""
    y = np.asarray(y, dtype=float)
    probabilities = {name: np.asarray(p, dtype=float) for name, p in predictions.items()}
    squared = {name: ((p - y) ** 2).astype(np.float32) for name, p in probabilities.items()}
    rankings = {name: _ranking(p, y) for name, p in probabilities.items()}
    out: dict[str, dict[str, list[np.ndarray]]] = {name: {"brier": [], "auc": []} for name in predictions}
    for weights in _poisson_blocks(len(y), rounds, seed):
        total = np.maximum(weights.sum(axis=0, dtype=np.float64), 1)
        for name in predictions:
            out[name]["brier"].append((squared[name] @ weights) / total)
            out[name]["auc"].append(_auc_under(rankings[name], weights))
    return {name: {k: np.concatenate(v) for k, v in m.items()} for name, m in out.items()}


def _poisson_blocks(n: int, rounds: int, seed: int) -> Iterator[np.ndarray]:
    """Poisson(1) weights per row, the bootstrap's large-sample form, in bounded blocks of
    rows x rounds."""
    rng = np.random.default_rng(seed)
    block = max(1, BLOCK_CELLS // max(n, 1))
    done = 0
    while done < rounds:
        size = min(block, rounds - done)
        yield rng.poisson(1.0, size=(n, size)).astype(np.float32)
        done += size


def _survival_point(rows: Outcomes, won_within: np.ndarray) -> dict[str, float]:
    cif_at = {float(d): won_within[:, i] for i, d in enumerate(rows.days)}
    return {
        "integrated_brier": integrated_brier(rows.duration, rows.event, cif_at),
        "c_index": concordance(rows.duration, rows.event, won_within[:, -1]),
    }


def _survival_samples(rows: Outcomes, predictions: Mapping[str, np.ndarray], rounds: int, seed: int) -> dict[str, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    n = len(rows)
    out: dict[str, dict[str, list[float]]] = {name: {"integrated_brier": [], "c_index": []} for name in predictions}
    for _ in range(min(rounds, MAX_SURVIVAL_ROUNDS)):
        idx = rng.integers(0, n, n)
        sample = Outcomes("survival", duration=rows.duration[idx], event=rows.event[idx], days=rows.days)
        for name, won in predictions.items():
            for metric, value in _survival_point(sample, np.asarray(won)[idx]).items():
                out[name][metric].append(value)
    return {name: {k: np.asarray(v, dtype=float) for k, v in m.items()} for name, m in out.items()}


# --- judging ------------------------------------------------------------------------------


@dataclass
class Judgement:
    """Every contender's test metrics on all rows and under the same bootstrap resamples."""

    kind: TargetKind
    point: dict[str, dict[str, float]]
    samples: dict[str, dict[str, np.ndarray]]
    confidence: float

    @property
    def loss(self) -> str:
        return LOSS_METRIC[self.kind]

    @property
    def rank(self) -> str:
        return RANK_METRIC[self.kind]

    def difference(self, a: str, b: str, metric: str) -> Difference:
        """``a − b`` on ``metric`` with its paired bootstrap interval."""
        estimate = self.point[a][metric] - self.point[b][metric]
        spread = self.samples[a][metric] - self.samples[b][metric]
        spread = spread[~np.isnan(spread)]
        if len(spread) == 0 or math.isnan(estimate):
            return Difference(a, b, metric, float(estimate), math.nan, math.nan)
        tail = (1 - self.confidence) / 2
        low, high = np.quantile(spread, [tail, 1 - tail])
        return Difference(a, b, metric, float(estimate), float(low), float(high))

    def beats(self, a: str, b: str) -> tuple[bool, str]:
        """Does ``a`` beat ``b`` beyond noise (module doc, rule 3)? With the reason."""
        loss = self.difference(a, b, self.loss)
        rank = self.difference(a, b, self.rank)
        if math.isnan(loss.high):
            return False, f"{self.loss} of {a} and {b} cannot be compared on these rows"
        if loss.high >= 0:
            return False, f"{a} is not better than {b} beyond noise ({_interval(loss)})"
        if not math.isnan(rank.high) and rank.high < 0:
            return False, f"{a} ranks worse than {b} beyond noise ({_interval(rank)})"
        ranking = "" if math.isnan(rank.high) else f"; {_interval(rank)}"
        return True, f"{a} beats {b} beyond noise ({_interval(loss)}{ranking})"


def _interval(d: Difference) -> str:
    return f"{d.metric} {d.estimate:+.4f}, {d.low:+.4f} to {d.high:+.4f}"


def judge(rows: Outcomes, predictions: Mapping[str, np.ndarray], config: TrainingConfig) -> Judgement:
    """Point metrics and paired bootstrap samples of every contender on ``rows``."""
    if rows.kind == "survival":
        point = {name: _survival_point(rows, np.asarray(p)) for name, p in predictions.items()}
        samples = _survival_samples(rows, predictions, config.gate_bootstrap_rounds, config.random_seed)
    else:
        ones = np.ones((1, len(rows)))
        point = {
            name: {k: float(v[0]) for k, v in m.items()}
            for name, m in _binary_samples_exact(rows.y, predictions, ones).items()
        }
        samples = _binary_samples(rows.y, predictions, config.gate_bootstrap_rounds, config.random_seed)
    return Judgement(rows.kind, point, samples, config.gate_confidence)


def _binary_samples_exact(y: np.ndarray, predictions: Mapping[str, np.ndarray], weights: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    y = np.asarray(y, dtype=float)
    return {
        name: {
            "brier": (weights @ (np.asarray(p, dtype=float) - y) ** 2) / weights.sum(axis=1),
            "auc": _weighted_auc(np.asarray(p, dtype=float), y, weights),
        }
        for name, p in predictions.items()
    }


def calibration_noise(probabilities: np.ndarray, confidence: float, seed: int, draws: int = CALIBRATION_DRAWS) -> float:
    """The ``confidence`` quantile of the ECE a perfectly calibrated model shows on rows of
    this size and these probabilities: outcomes drawn from the probabilities themselves.

    The same equal-count bins as ``training.metrics.expected_calibration_error``, built
    once: the probabilities do not change between draws, only the outcomes do."""
    p = np.clip(np.asarray(probabilities, dtype=float), 0.0, 1.0)
    order = np.argsort(p, kind="stable")
    chunks = [c for c in np.array_split(order, 10) if len(c)]
    starts = np.cumsum([0, *(len(c) for c in chunks[:-1])])
    sizes = np.array([len(c) for c in chunks], dtype=float)
    ranked = p[order]
    mean_p = np.add.reduceat(ranked, starts) / sizes
    rng = np.random.default_rng(seed)
    block = max(1, BLOCK_CELLS // max(len(p), 1))
    eces: list[np.ndarray] = []
    for done in range(0, draws, block):
        outcomes = rng.random((min(block, draws - done), len(p))) < ranked
        mean_y = np.add.reduceat(outcomes, starts, axis=1, dtype=np.float64) / sizes
        eces.append((np.abs(mean_p - mean_y) * sizes).sum(axis=1) / len(p))
    return float(np.quantile(np.concatenate(eces), confidence))


def check_calibration(
    y: np.ndarray, predictions: Mapping[str, np.ndarray], contender: str, config: TrainingConfig
) -> Calibration:
    """Is ``contender`` calibrated within noise, or at least as well as the best baseline?"""
    ece = expected_calibration_error(y, predictions[contender])
    noise = calibration_noise(predictions[contender], config.gate_confidence, config.random_seed)
    others = [expected_calibration_error(y, p) for name, p in predictions.items() if name not in (contender, CHAMPION)]
    best = min(others) if others else None
    honest = ece <= noise or (best is not None and ece <= best)
    return Calibration(float(ece), noise, best, bool(honest))


def pick(judgement: Judgement, calibration: Calibration | None, contenders: list[str]) -> tuple[str, list[str]]:
    """The contender that serves from this run (module doc, rule 2), with the reasons."""
    baselines = [c for c in contenders if c not in (MODEL, CHAMPION)]
    best, skipped = _best_baseline(judgement, baselines)
    reasons: list[str] = skipped
    if MODEL not in contenders:
        if best is None:
            raise ValueError("the gate needs at least one contender")
        return best, [*reasons, f"no model was trained; {best}, the baseline with the best {judgement.loss}, serves"]
    honest = calibration is None or calibration.honest
    if calibration is not None:
        reasons.append(
            f"model ECE {calibration.ece:.4f} is {'within' if honest else 'beyond'} what noise and the "
            f"baselines allow (noise {calibration.noise:.4f}"
            + ("" if calibration.best_baseline is None else f", best baseline {calibration.best_baseline:.4f}")
            + ")"
        )
    if not honest and best is not None:
        # Calibration error is part of the proper score: a model that still beats the best
        # baseline on it beyond noise is the more useful probability despite its ECE.
        better, why = judgement.beats(MODEL, best)
        if not better:
            return best, [*reasons, why, f"{best}, the baseline with the best {judgement.loss}, serves"]
        reasons.append(why)
    for name in baselines:
        better, why = judgement.beats(name, MODEL)
        if better:
            return name, [*reasons, why, f"{name} serves"]
    return MODEL, [*reasons, "model serves"]


def _best_baseline(judgement: Judgement, baselines: list[str]) -> tuple[str | None, list[str]]:
    """The baseline with the best proper score among those that no other baseline out-ranks
    beyond noise without a worse proper score beyond noise. On rare outcomes the proper
    scores of a constant and of a real ranking differ by less than their noise, and the
    point estimate alone would serve the one that cannot rank (rule 3 asks both)."""
    def outranked_by(name: str) -> str | None:
        for other in baselines:
            if other == name:
                continue
            rank = judgement.difference(other, name, judgement.rank)
            loss = judgement.difference(other, name, judgement.loss)
            if rank.low > 0 and not loss.low > 0:
                return f"{name} ranks worse than {other} beyond noise ({_interval(judgement.difference(name, other, judgement.rank))}) and is set aside"
        return None

    def loss_of(name: str) -> float:
        return _nan_last(judgement.point[name][judgement.loss])

    verdicts = {name: outranked_by(name) for name in baselines}
    standing = [name for name in baselines if verdicts[name] is None] or baselines
    if not standing:
        return None, []
    best = min(standing, key=loss_of)
    skipped = [why for name, why in verdicts.items() if why and loss_of(name) <= loss_of(best)]
    return best, skipped


def _nan_last(value: float) -> float:
    return math.inf if math.isnan(value) else value


def decide(
    rows: Outcomes,
    predictions: Mapping[str, np.ndarray],
    config: TrainingConfig,
    notes: list[str] | None = None,
) -> GateDecision:
    """Which contender serves and whether it replaces the champion (see the module doc).

    ``predictions`` maps each contender to its test predictions: a probability per row for
    binary targets, P(won within ``rows.days``) per row and day for survival. A
    ``"champion"`` entry is the current champion re-scored on the same rows.
    """
    judgement = judge(rows, predictions, config)
    contenders = [name for name in predictions if name != CHAMPION]
    calibration = None
    if rows.kind == "binary" and MODEL in contenders:
        calibration = check_calibration(rows.y, predictions, MODEL, config)
    served, reasons = pick(judgement, calibration, contenders)
    reasons = [*(notes or []), *reasons]
    differences = [
        judgement.difference(name, served, metric)
        for name in contenders if name != served
        for metric in (judgement.loss, judgement.rank)
    ]
    if CHAMPION not in predictions:
        return GateDecision(True, [*reasons, "no champion to beat"], served, differences, calibration)
    differences += [judgement.difference(served, CHAMPION, m) for m in (judgement.loss, judgement.rank)]
    promote, why = judgement.beats(served, CHAMPION)
    return GateDecision(promote, [*reasons, why], served, differences, calibration)
