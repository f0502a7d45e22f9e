"""Radar's LightGBM probability model: boosted trees, early stopping and calibration.

Follows the scikit-learn contract: settings in ``__init__``, ``fit`` returns ``self``,
fitted state ends with ``_``. Baselines implement the same ``fit`` / ``predict_proba`` so
evaluation treats them alike.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss
from sklearn.model_selection import StratifiedKFold

from features.rows import FeatureRows
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
        # The fitted functions applied directly: scikit-learn's input checks cost more than
        # the calibration itself on the one-row requests of the API. Same arithmetic, same
        # numbers as predict / predict_proba.
        raw = np.asarray(raw, dtype=np.float64).reshape(-1)
        if self.isotonic is not None:
            iso = self.isotonic
            return np.asarray(iso.f_(np.clip(raw, iso.X_min_, iso.X_max_)), dtype=np.float64)
        assert self.platt is not None
        return expit(_logit(raw) * self.platt.coef_[0, 0] + self.platt.intercept_[0])


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


class InputLayout:
    """How feature rows become the float matrix a trained booster reads.

    The one input preparation of prediction and explanation alike. It gives what
    ``align_categories`` followed by LightGBM's own pandas conversion gives (numbers as
    floats, a category as its position in the training list, unseen or missing as NaN)
    without building an aligned frame: on a single row the frame work costs far more than
    the trees. Training keeps frames, because LightGBM learns which columns are
    categorical from their dtype.
    """

    #: Up to this many rows, categories are looked up in a dict: pandas' vectorised lookup
    #: has a fixed cost larger than a few dict lookups.
    SMALL_BATCH = 64

    def __init__(self, names: list[str], categories: dict[str, list[str]]) -> None:
        self.names = names
        self.numeric = [c for c in names if c not in categories]
        self.numeric_at = np.array([j for j, c in enumerate(names) if c not in categories], dtype=np.int64)
        #: Matrix column of every numeric feature: reasons read the values they show here.
        self.numeric_index = {c: j for j, c in enumerate(names) if c not in categories}
        self.categorical = [
            (j, c, pd.Index(categories[c], dtype=object), {v: i for i, v in enumerate(categories[c])})
            for j, c in enumerate(names)
            if c in categories
        ]

    def matrix(self, rows: FeatureRows) -> np.ndarray:
        """Shape (rows, features), in ``names`` order; computed once per rows and layout."""
        return rows.memo(("matrix", id(self)), lambda: self._build(rows))

    def _build(self, rows: FeatureRows) -> np.ndarray:
        missing = [c for c in self.names if c not in rows]
        if missing:
            raise KeyError(f"missing feature columns: {missing[:5]}")
        out = np.empty((len(rows), len(self.names)), dtype=np.float64)
        if len(self.numeric_at):
            out[:, self.numeric_at] = rows.block(self.numeric)
        for j, column, categories, lookup in self.categorical:
            values = rows.column(column)
            if len(values) <= self.SMALL_BATCH:
                codes = np.array([lookup.get(v, -1) for v in values.tolist()], dtype=np.int64)
            else:
                # Equality on objects, as align_categories compares: "5" is not 5. The values
                # as an object Index: a bare array is first inferred as a string column and
                # converted back, which costs several times the lookup itself.
                codes = categories.get_indexer(pd.Index(values, dtype=object))
            out[:, j] = np.where(codes < 0, np.nan, codes)
        return out


_LAYOUTS: weakref.WeakKeyDictionary[Any, InputLayout] = weakref.WeakKeyDictionary()


def input_layout(model: Any) -> InputLayout:
    """The layout of a fitted model (anything with ``feature_names_`` and ``categories_``),
    built once per model and kept beside it rather than in it, so bundles pickle as before."""
    layout = _LAYOUTS.get(model)
    if layout is None:
        layout = InputLayout(list(model.feature_names_), model.categories_)
        _LAYOUTS[model] = layout
    return layout


def as_rows(X: pd.DataFrame | FeatureRows) -> FeatureRows:
    return X if isinstance(X, FeatureRows) else FeatureRows.from_frame(X)


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

    #: Predicts from FeatureRows as well as frames (see InputLayout).
    reads_feature_rows = True

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

    def matrix(self, X: pd.DataFrame | FeatureRows) -> np.ndarray:
        """The booster's input for rows of features (see InputLayout)."""
        self._check_fitted()
        return input_layout(self).matrix(as_rows(X))

    def predict_raw(self, X: pd.DataFrame | FeatureRows) -> np.ndarray:
        """Uncalibrated probability from the trees."""
        matrix = self.matrix(X)  # first: says clearly when the model is not fitted
        return self.booster_.predict(matrix, num_iteration=self.booster_.best_iteration or None)

    def predict_proba(self, X: pd.DataFrame | FeatureRows) -> np.ndarray:
        """Calibrated probability of the positive class."""
        raw = self.predict_raw(X)
        return np.clip(self.calibrator_(raw), 0.0, 1.0)

    def contributions(self, X: pd.DataFrame | FeatureRows, num_threads: int = 0) -> np.ndarray:
        """Per-feature TreeSHAP contributions in log-odds (last column: the expected value);
        ``num_threads`` 0 lets LightGBM use every core."""
        matrix = self.matrix(X)
        return self.booster_.predict(
            matrix, pred_contrib=True, num_iteration=self.booster_.best_iteration or None,
            num_threads=num_threads,
        )

    def size(self) -> dict[str, int]:
        """Trees and leaves: what explanation time grows with."""
        self._check_fitted()
        dump = self.booster_.dump_model(num_iteration=self.booster_.best_iteration or None)
        trees = dump["tree_info"]
        return {"trees": len(trees), "leaves": int(sum(t["num_leaves"] for t in trees))}
