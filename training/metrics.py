"""How Radar judges a probability: ranking, calibration and what a salesperson gains.

The same functions judge LightGBM models and baselines, on the same test snapshot.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score


def expected_calibration_error(y_true: np.ndarray, prob: np.ndarray, n_bins: int = 10) -> float:
    """Mean gap between predicted and observed rates over equal-count bins, weighted by size.

    Equal-count (quantile) bins, rather than equal-width ones, because Radar's
    probabilities crowd near zero for most targets and fixed bins would leave the
    informative upper range nearly empty.
    """
    y_true = np.asarray(y_true, dtype=float)
    prob = np.asarray(prob, dtype=float)
    order = np.argsort(prob, kind="stable")
    gaps = [
        len(chunk) * abs(prob[chunk].mean() - y_true[chunk].mean())
        for chunk in np.array_split(order, n_bins)
        if len(chunk)
    ]
    return float(np.sum(gaps) / len(prob))


def top_fraction_stats(y_true: np.ndarray, prob: np.ndarray, fraction: float = 0.10) -> tuple[float, float]:
    """Precision among the top ``fraction`` by probability, and its lift over the base rate."""
    y_true = np.asarray(y_true, dtype=float)
    n_top = max(1, int(round(len(prob) * fraction)))
    top = np.argsort(-np.asarray(prob), kind="stable")[:n_top]
    precision = float(y_true[top].mean())
    base = float(y_true.mean())
    return precision, (precision / base if base > 0 else float("nan"))


def binary_metrics(y_true: np.ndarray, prob: np.ndarray) -> dict[str, float]:
    """AUC, PR-AUC, Brier, ECE and precision/lift at the top 10 %."""
    y_true = np.asarray(y_true, dtype=int)
    prob = np.clip(np.asarray(prob, dtype=float), 0.0, 1.0)
    both_classes = 0 < y_true.sum() < len(y_true)
    precision10, lift10 = top_fraction_stats(y_true, prob)
    return {
        "auc": float(roc_auc_score(y_true, prob)) if both_classes else float("nan"),
        "pr_auc": float(average_precision_score(y_true, prob)) if both_classes else float("nan"),
        "brier": float(brier_score_loss(y_true, prob)),
        "ece": expected_calibration_error(y_true, prob),
        "precision_at_10pct": precision10,
        "lift_at_10pct": lift10,
        "n": float(len(y_true)),
        "positive_rate": float(y_true.mean()),
    }
