"""Evaluation plots logged with every training run: ROC, reliability, gain, SHAP summary."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from sklearn.metrics import roc_curve


def _figure(width: float, height: float) -> tuple[Figure, Axes]:
    """A figure outside pyplot: it needs no display backend (training runs headless in CI
    and schedulers) and leaves the caller's backend, e.g. a notebook's, alone."""
    fig = Figure(figsize=(width, height))
    return fig, fig.subplots()


def roc_plot(y: np.ndarray, scores: dict[str, np.ndarray], title: str) -> Figure:
    """ROC curves of the model and its baselines on the test snapshot."""
    fig, ax = _figure(5, 5)
    for name, prob in scores.items():
        fpr, tpr, _ = roc_curve(y, prob)
        ax.plot(fpr, tpr, label=name)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title)
    ax.legend(loc="lower right")
    return fig


def reliability_plot(y: np.ndarray, prob: np.ndarray, title: str, n_bins: int = 10) -> Figure:
    """Predicted against observed rate in equal-count bins: on the diagonal is calibrated."""
    order = np.argsort(prob, kind="stable")
    bins = [b for b in np.array_split(order, n_bins) if len(b)]
    predicted = [prob[b].mean() for b in bins]
    observed = [np.asarray(y)[b].mean() for b in bins]
    fig, ax = _figure(5, 5)
    top = max(max(predicted), max(observed), 1e-3) * 1.05
    ax.plot([0, top], [0, top], color="grey", linestyle=":")
    ax.plot(predicted, observed, marker="o")
    ax.set(xlabel="predicted probability", ylabel="observed rate", title=title, xlim=(0, top), ylim=(0, top))
    return fig


def gain_plot(y: np.ndarray, scores: dict[str, np.ndarray], title: str) -> Figure:
    """Cumulative gain: share of all positives found when working down the ranked list."""
    fig, ax = _figure(5, 5)
    y = np.asarray(y, dtype=float)
    total = max(y.sum(), 1.0)
    for name, prob in scores.items():
        ranked = y[np.argsort(-prob, kind="stable")]
        share_contacted = np.arange(1, len(y) + 1) / len(y)
        ax.plot(share_contacted, np.cumsum(ranked) / total, label=name)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="random")
    ax.set(xlabel="share of list worked", ylabel="share of positives found", title=title)
    ax.legend(loc="lower right")
    return fig


def shap_summary_plot(contributions: np.ndarray, X: pd.DataFrame, title: str, top: int = 15) -> Figure:
    """SHAP beeswarm of the top features; values are LightGBM's pred_contrib (TreeSHAP).

    Categorical columns are shown by their category code, since the colour scale needs
    numbers."""
    import shap

    numeric = X.apply(lambda c: c.cat.codes.where(c.notna()) if isinstance(c.dtype, pd.CategoricalDtype) else c)
    shap.summary_plot(contributions[:, :-1], numeric.astype(float), max_display=top, show=False)
    fig = plt.gcf()
    fig.suptitle(title)
    return fig


def close_all(figures: dict[str, Figure]) -> None:
    """Free figure memory once logged (the SHAP plot is drawn through pyplot, which keeps
    its figures until closed)."""
    for fig in figures.values():
        plt.close(fig)
