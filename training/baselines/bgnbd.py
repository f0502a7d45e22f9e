"""BG/NBD ("Buy Till You Die") baselines for repeat purchase and churn, via pymc-marketing.

BG/NBD (Fader, Hardie & Lee 2005): while alive a customer buys as a Poisson process with
rate λ ~ Gamma(r, α); after each purchase they drop out for good with probability
p ~ Beta(a, b). Per customer it needs only x (repeat purchases), t_x (time of the last
purchase since the first) and T (time since the first purchase), which Radar's features
give directly:

    x = max(n_paid_orders - 1, 0)
    t_x = days_since_first_paid_order - days_since_last_paid_order
    T = days_since_first_paid_order

Time is in days. The likelihood and the fit (MAP) are pymc-marketing's ``BetaGeoModel``.

People who never paid are outside BG/NBD's population (the model starts at a first
purchase), so they get the training positive rate of the training rows without a paid
order: a one-number baseline for them, honest about the model's reach.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from training.baselines._common import (
    apply_calibrator,
    as_float,
    binary_labels,
    check_fitted,
    fit_calibrator,
    require_columns,
)

#: The two churn scores considered; the one that ranks validation better is kept.
CHURN_SCORES: tuple[str, ...] = ("no_purchase", "not_alive")


@contextmanager
def _quiet_pymc() -> Iterator[None]:
    """Silence PyMC/PyTensor chatter (progress, sampler notices, deprecation warnings)
    for the duration of a fit: a baseline must not flood the training log."""
    loggers = [logging.getLogger(name) for name in ("pymc", "pytensor", "pymc_marketing")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _new_bgnbd() -> Any:
    """An unfitted pymc-marketing BG/NBD with Radar's priors (see ``_fit_bgnbd``)."""
    from pymc_extras.prior import Prior
    from pymc_marketing.clv import BetaGeoModel

    return BetaGeoModel(model_config={"alpha": Prior("HalfFlat"), "r": Prior("HalfFlat")})


def _rebuild_bgnbd(idata: Any) -> Any:
    """A fitted BG/NBD from its InferenceData: the graph is rebuilt on the fit data and
    the MAP point re-attached. (pymc-marketing 0.19's ``load_from_idata`` builds the graph
    on a throw-away instance, so it cannot be used for this.)"""
    model = _new_bgnbd()
    with _quiet_pymc():
        model.build_model(data=idata.fit_data.to_dataframe().reset_index())
    model.idata = idata
    return model


def rfm_inputs(X: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """BG/NBD's (x, t_x, T) per row from Radar's order features, and the buyer mask.

    Returns a frame with ``customer_id`` (row position; snapshot frames repeat persons),
    ``frequency``, ``recency`` and ``T`` for the buyers only."""
    n_orders = np.nan_to_num(as_float(X, "n_paid_orders"), nan=0.0)
    first = as_float(X, "days_since_first_paid_order")
    last = as_float(X, "days_since_last_paid_order")
    buyer = (n_orders >= 1) & np.isfinite(first) & np.isfinite(last)
    T = np.maximum(first[buyer], 0.0)
    # Clipping guards against rounding making t_x a hair outside [0, T].
    recency = np.clip(first[buyer] - last[buyer], 0.0, T)
    rfm = pd.DataFrame(
        {
            "customer_id": np.flatnonzero(buyer),
            "frequency": np.maximum(n_orders[buyer] - 1.0, 0.0),
            "recency": recency,
            "T": T,
        }
    )
    return rfm, buyer


class BGNBDBaseline:
    """P(at least one paid order in the next ``horizon_days``) from BG/NBD.

    P(no purchase in (T, T+t] | x, t_x, T) is Hardie & Fader's conditional zero-purchase
    probability (BG/NBD derivation notes, 2019, eq. 34), taken from pymc-marketing's
    ``expected_probability_no_purchase`` for x > 0. For x = 0 that method (0.19) omits the
    δ(x>0) indicator on the "died after the last purchase" term and gives wrong values, so
    there the closed form is used: with no repeat purchase the customer is surely alive
    (death only follows a purchase) and λ | data ~ Gamma(r, α + T), hence
    P(none in t) = ((α + T) / (α + T + t))^r.

    The raw score is calibrated on validation exactly like the LightGBM models.
    """

    name = "bgnbd"
    columns: tuple[str, ...] = ("n_paid_orders", "days_since_first_paid_order", "days_since_last_paid_order")

    def __init__(
        self, horizon_days: int = 90, max_fit_rows: int = 20_000, calibration: str = "auto", seed: int = 42
    ) -> None:
        self.horizon_days = horizon_days
        self.max_fit_rows = max_fit_rows
        self.calibration = calibration
        self.seed = seed

    # ------------------------------------------------------------------ fit

    def fit(
        self, X_train: pd.DataFrame, y_train: np.ndarray, X_val: pd.DataFrame, y_val: np.ndarray
    ) -> "BGNBDBaseline":
        require_columns(X_train, self.columns, type(self).__name__)
        y = binary_labels(y_train)
        rfm, buyer = rfm_inputs(X_train)
        if len(rfm) < 10:
            raise ValueError(f"BG/NBD needs customers with a paid order to fit; the training rows have {len(rfm)}")
        self.model_ = self._fit_bgnbd(rfm)
        self.params_ = {k: float(np.asarray(self.model_.fit_result[k]).squeeze()) for k in ("a", "b", "alpha", "r")}
        self.non_buyer_rate_ = float(y[~buyer].mean()) if (~buyer).any() else float(y.mean())
        self.score_ = self._choose_score(X_val, binary_labels(y_val))
        self.calibrator_ = fit_calibrator(self.calibration, self.predict_raw(X_val), binary_labels(y_val), self.seed)
        return self

    def _fit_bgnbd(self, rfm: pd.DataFrame) -> Any:
        """MAP fit of pymc-marketing's BG/NBD on at most ``max_fit_rows`` buyers.

        α and r get flat priors: pymc-marketing's default prior on α (Weibull with scale 10)
        assumes coarser time units than days and would pull α down; four parameters from
        thousands of customers need no prior for the purchase process. a and b keep the
        package's default (nested Beta) prior."""
        if len(rfm) > self.max_fit_rows:
            keep = np.random.default_rng(self.seed).choice(len(rfm), self.max_fit_rows, replace=False)
            rfm = rfm.iloc[np.sort(keep)]
        rfm = rfm.assign(customer_id=np.arange(len(rfm)))
        model = _new_bgnbd()
        with _quiet_pymc():
            model.fit(data=rfm, method="map", progressbar=False)
        return model

    def _choose_score(self, X_val: pd.DataFrame, y_val: np.ndarray) -> str:
        return "purchase"

    # A fitted pymc-marketing model holds a compiled PyMC graph that does not pickle; its
    # InferenceData does, and pymc-marketing rebuilds the model from it on load.
    def __getstate__(self) -> dict[str, object]:
        state = self.__dict__.copy()
        model = state.pop("model_", None)
        if model is not None:
            state["model_idata_"] = model.idata
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        idata = state.pop("model_idata_", None)
        self.__dict__.update(state)
        if idata is not None:
            self.model_ = _rebuild_bgnbd(idata)

    # -------------------------------------------------------------- predict

    def prob_no_purchase(self, X: pd.DataFrame) -> np.ndarray:
        """P(no paid order in the next ``horizon_days``) per buyer row; NaN for non-buyers."""
        check_fitted(self, "params_")
        require_columns(X, self.columns, type(self).__name__)
        rfm, buyer = rfm_inputs(X)
        out = np.full(len(X), np.nan)
        if not len(rfm):
            return out
        p = self.params_
        closed_form = ((p["alpha"] + rfm["T"]) / (p["alpha"] + rfm["T"] + self.horizon_days)) ** p["r"]
        result = closed_form.to_numpy(dtype=np.float64, copy=True)  # copy-on-write gives read-only views
        repeat = rfm["frequency"].to_numpy() > 0
        if repeat.any():
            with _quiet_pymc():
                library = self.model_.expected_probability_no_purchase(t=self.horizon_days, data=rfm[repeat])
            result[repeat] = np.asarray(library).reshape(-1)
        out[buyer] = np.clip(result, 0.0, 1.0)
        return out

    def prob_alive(self, X: pd.DataFrame) -> np.ndarray:
        """BG/NBD's P(alive) now (Fader, Hardie & Lee 2008) per buyer row; NaN for non-buyers."""
        check_fitted(self, "params_")
        require_columns(X, self.columns, type(self).__name__)
        rfm, buyer = rfm_inputs(X)
        out = np.full(len(X), np.nan)
        if len(rfm):
            with _quiet_pymc():
                out[buyer] = np.asarray(self.model_.expected_probability_alive(data=rfm)).reshape(-1)
        return out

    def _score(self, X: pd.DataFrame, score: str) -> np.ndarray:
        if score == "purchase":
            raw = 1.0 - self.prob_no_purchase(X)
        elif score == "no_purchase":
            raw = self.prob_no_purchase(X)
        elif score == "not_alive":
            raw = 1.0 - self.prob_alive(X)
        else:
            raise ValueError(f"unknown BG/NBD score {score!r}")
        return np.where(np.isnan(raw), self.non_buyer_rate_, raw)

    def predict_raw(self, X: pd.DataFrame) -> np.ndarray:
        """The uncalibrated BG/NBD probability (non-buyers: their training rate)."""
        check_fitted(self, "score_")
        return self._score(X, self.score_)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        check_fitted(self, "calibrator_")
        return apply_calibrator(self.calibrator_, self.predict_raw(X))


class BGNBDChurnBaseline(BGNBDBaseline):
    """Churn by indifference from BG/NBD: either P(no purchase in the horizon) or
    1 - P(alive), whichever ranks the validation rows better (AUC), then calibrated.

    Both are read as "goes quiet". P(alive) is 1 for every customer without a repeat
    purchase (death only follows a purchase), which blunts its ranking; the zero-purchase
    probability has no such blind spot but also counts slow-yet-loyal buyers as quiet.
    Validation decides; ``score_`` says which won.
    """

    def _choose_score(self, X_val: pd.DataFrame, y_val: np.ndarray) -> str:
        if y_val.min() == y_val.max():
            return CHURN_SCORES[0]
        aucs = {score: roc_auc_score(y_val, self._score(X_val, score)) for score in CHURN_SCORES}
        self.validation_auc_ = aucs
        return max(CHURN_SCORES, key=lambda s: aucs[s])
