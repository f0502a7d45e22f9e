"""Predicting and explaining rows: one act, in one place.

Every answer Radar gives about a person (``POST /score``, ``radar score``, the lists and
the web page's views, the Spark engine's rows) comes from :func:`predict_and_explain`:
the rows are covered with the model's columns once, turned into the booster's input
matrix once (``training.models.InputLayout``, kept with the rows), and that one matrix is
what the prediction (``TargetBundle.outputs``) and the contributions behind the reasons
(``training.treeshap`` through :func:`serving.reasons.top_reasons`) both read. Reasons
come back column by column (:class:`serving.reasons.ReasonTable`), ready for a score table
or a JSON answer without a Python loop per row writing sentences.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from features.rows import FeatureRows
from radar.config import ExplainConfig
from serving.reasons import ReasonTable, top_reasons
from training.bundle import TargetBundle


@dataclass(frozen=True)
class Explained:
    """A model's outputs for some rows (``TargetBundle.outputs``: ``probability`` and the
    target's others) and, when asked for, each row's top reasons."""

    rows: FeatureRows
    outputs: dict[str, np.ndarray]
    reasons: ReasonTable | None


def predict_and_explain(
    bundle: TargetBundle,
    rows: FeatureRows,
    top_k: int | None = None,
    *,
    num_threads: int = 0,
    config: ExplainConfig | None = None,
    outputs: dict[str, np.ndarray] | None = None,
) -> Explained:
    """``bundle``'s outputs for ``rows`` and, with ``top_k``, the ``top_k`` reasons of each.

    ``outputs`` given (the Spark engine computes them with the registered model) are kept as
    they are. ``num_threads`` 0 explains on every core (a batch); a serving worker runs one
    thread anyway (``OMP_NUM_THREADS``, ``NUMBA_NUM_THREADS``), and a few rows are explained
    on one thread whatever is asked. A model whose reasons cannot be computed
    (``serving.reasons.why_no_reasons``) gets rows without reasons.
    """
    # Columns the request never had (a lead sent without ``industry``) are unknown to the
    # model and to its reasons alike.
    rows = rows.covering(bundle.feature_names)
    outputs = bundle.outputs(rows) if outputs is None else outputs
    reasons = None
    if top_k:
        reasons = top_reasons(bundle, rows, top_k, num_threads=num_threads, config=config)
    return Explained(rows, outputs, reasons)


def prepare(bundle: TargetBundle, config: ExplainConfig | None = None) -> str | None:
    """Read ``bundle``'s model into TreeSHAP tables and check them against pred_contrib now
    (``training.treeshap.Explainer``) rather than on the first request; returns how it will
    be explained ("tables", "pred_contrib"), or None for a model without a booster."""
    from serving.reasons import explainer_of

    explainer = explainer_of(bundle.model, config or ExplainConfig())
    return None if explainer is None else explainer.method



def prepare_all(champions: dict[str, Any], config: ExplainConfig | None = None) -> None:
    """:func:`prepare` every champion (a ``serving.scoring.Champion`` per target), as a
    server or a materialising run does once it has loaded them."""
    for champion in champions.values():
        prepare(champion.bundle, config)
