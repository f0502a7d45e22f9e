"""Radar's LightGBM probability model: boosted trees, early stopping and calibration.

Follows the scikit-learn contract: settings in ``__init__``, ``fit`` returns ``self``,
fitted state ends with ``_``. Baselines implement the same ``fit`` / ``predict_proba`` so
evaluation treats them alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss
from sklearn.model_selection import StratifiedKFold

from radar.config import ModelConfig

EPS = 1e-6


class NotFittedError(RuntimeError):
    """A model was used before ``fit``."""


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1 - EPS)
    return np.log(p / (1 - p))


@dataclass
class Calibrator:
    """Maps raw model probabilities to calibrated ones (isotonic or Platt scaling)."""

    method: str
    isotonic: IsotonicRegression | None = None
    platt: LogisticRegression | None = None

    @classmethod
    def fit(cls, method: str, raw: np.ndarray, y: np.ndarray) -> "Calibrator":
        if method == "isotonic":
            iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw, y)
            return cls(method, isotonic=iso)
        if method == "platt":
            platt = LogisticRegression(C=1e6).fit(_logit(raw).reshape(-1, 1), y)
            return cls(method, platt=platt)
        raise ValueError(f"unknown calibration method {method!r}")

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        if self.isotonic is not None:
            return self.isotonic.predict(raw)
        assert self.platt is not None
        return self.platt.predict_proba(_logit(raw).reshape(-1, 1))[:, 1]


def choose_calibration(raw: np.ndarray, y: np.ndarray, seed: int, folds: int = 3) -> str:
    """Pick isotonic or Platt by cross-fitted Brier score on the validation snapshot.

    Both are fitted and judged on different folds of validation, so the choice is not
    made on the rows the calibrator learned from. Isotonic needs enough positives to be
    stable; with few, Platt's two parameters win.
    """
    n_pos = int(y.sum())
    if n_pos < 2 * folds or n_pos > len(y) - 2 * folds:
        return "platt"
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores: dict[str, list[float]] = {"isotonic": [], "platt": []}
    for fit_idx, eval_idx in splitter.split(raw.reshape(-1, 1), y):
        for method in scores:
            calibrated = Calibrator.fit(method, raw[fit_idx], y[fit_idx])(raw[eval_idx])
            scores[method].append(brier_score_loss(y[eval_idx], calibrated))
    return min(scores, key=lambda m: float(np.mean(scores[m])))


def align_categories(frame: pd.DataFrame, categories: dict[str, list[str]]) -> pd.DataFrame:
    """Give categorical columns exactly the categories seen in training (unseen → NaN).

    LightGBM encodes a category by its position in the category list, so training and
    scoring must agree on the list, not just on the values.
    """
    out = frame.copy()
    for column, cats in categories.items():
        if column in out.columns:
            out[column] = pd.Categorical(out[column].astype(object), categories=cats)
    return out


def learn_categories(frame: pd.DataFrame) -> dict[str, list[str]]:
    """The category list of every non-numeric column, in sorted order."""
    categories = {}
    for column in frame.columns:
        series = frame[column]
        if not (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)):
            values = series.astype(object).dropna().unique()
            categories[column] = sorted(str(v) for v in values)
    return categories


def lightgbm_params(config: ModelConfig, objective: str, seed: int, **extra: object) -> dict[str, object]:
    """LightGBM parameters from Radar's model settings."""
    return {
        "objective": objective,
        "learning_rate": config.learning_rate,
        "num_leaves": config.num_leaves,
        "max_depth": config.max_depth,
        "min_child_samples": config.min_child_samples,
        "feature_fraction": config.feature_fraction,
        "bagging_fraction": config.bagging_fraction,
        "bagging_freq": 1,
        "num_threads": config.num_threads,
        "seed": seed,
        "deterministic": True,
        "verbose": -1,
        **extra,
    }


class ProbabilityModel:
    """A calibrated LightGBM classifier for one binary target."""

    def __init__(self, config: ModelConfig | None = None, seed: int = 42, calibration: str = "auto") -> None:
        self.config = config or ModelConfig()
        self.seed = seed
        self.calibration = calibration

    def fit(
        self, X_train: pd.DataFrame, y_train: np.ndarray, X_val: pd.DataFrame, y_val: np.ndarray
    ) -> "ProbabilityModel":
        """Train with early stopping on validation, then calibrate on validation."""
        self.feature_names_ = list(X_train.columns)
        self.categories_ = learn_categories(X_train)
        train = lgb.Dataset(self._prepare(X_train), label=np.asarray(y_train), free_raw_data=False)
        valid = lgb.Dataset(self._prepare(X_val), label=np.asarray(y_val), reference=train)
        self.booster_ = lgb.train(
            lightgbm_params(self.config, "binary", self.seed),
            train,
            num_boost_round=self.config.max_trees,
            valid_sets=[valid],
            callbacks=[lgb.early_stopping(self.config.early_stopping_rounds, verbose=False)],
        )
        raw_val = self.predict_raw(X_val)
        y_val = np.asarray(y_val, dtype=int)
        method = self.calibration
        if method == "auto":
            method = choose_calibration(raw_val, y_val, self.seed)
        self.calibrator_ = Calibrator.fit(method, raw_val, y_val)
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "booster_"):
            raise NotFittedError("call fit() before predicting")

    def _prepare(self, X: pd.DataFrame) -> pd.DataFrame:
        missing = [c for c in self.feature_names_ if c not in X.columns]
        if missing:
            raise KeyError(f"missing feature columns: {missing[:5]}")
        return align_categories(X[self.feature_names_], self.categories_)

    def predict_raw(self, X: pd.DataFrame) -> np.ndarray:
        """Uncalibrated probability from the trees."""
        self._check_fitted()
        return self.booster_.predict(self._prepare(X), num_iteration=self.booster_.best_iteration or None)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Calibrated probability of the positive class."""
        self._check_fitted()
        return np.clip(self.calibrator_(self.predict_raw(X)), 0.0, 1.0)

    def contributions(self, X: pd.DataFrame) -> np.ndarray:
        """Per-feature TreeSHAP contributions in log-odds (last column: the expected value)."""
        self._check_fitted()
        return self.booster_.predict(
            self._prepare(X), pred_contrib=True, num_iteration=self.booster_.best_iteration or None
        )

    def size(self) -> dict[str, int]:
        """Trees and leaves: what explanation time grows with."""
        self._check_fitted()
        dump = self.booster_.dump_model(num_iteration=self.booster_.best_iteration or None)
        trees = dump["tree_info"]
        return {"trees": len(trees), "leaves": int(sum(t["num_leaves"] for t in trees))}
