"""What every baseline shares: column checks, the fitted check and calibration on validation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from training.models import Calibrator, NotFittedError, choose_calibration

#: Placeholder for a missing category, so "unknown source" is a level of its own.
MISSING_LEVEL = "(missing)"


class MissingColumnsError(KeyError):
    """A baseline was given a frame without the feature columns it needs."""

    def __str__(self) -> str:  # KeyError would print the message with quotes around it
        return str(self.args[0])


def require_columns(X: pd.DataFrame, columns: Sequence[str], who: str) -> None:
    """Raise :class:`MissingColumnsError` naming every required column ``X`` lacks."""
    missing = [c for c in columns if c not in X.columns]
    if missing:
        raise MissingColumnsError(f"{who} needs feature columns {missing} that the frame does not have")


def check_fitted(model: object, attribute: str) -> None:
    if not hasattr(model, attribute):
        raise NotFittedError(f"call fit() on {type(model).__name__} before predicting")


def as_float(X: pd.DataFrame, column: str) -> np.ndarray:
    """A numeric feature as float64 with NaN for missing (nullable dtypes included)."""
    return pd.to_numeric(X[column], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def as_labels(X: pd.DataFrame, column: str) -> np.ndarray:
    """A categorical feature as plain strings, missing values as :data:`MISSING_LEVEL`.

    Going through ``object`` keeps this the same on pandas 2 (object/categorical) and
    pandas 3 (string dtype)."""
    values = X[column].astype(object)
    return values.where(values.notna(), MISSING_LEVEL).astype(str).to_numpy(dtype=object)


def binary_labels(y: object) -> np.ndarray:
    return np.asarray(y, dtype=float).astype(int)


def fit_calibrator(method: str, raw_val: np.ndarray, y_val: np.ndarray, seed: int) -> Calibrator | None:
    """The same calibration step the LightGBM models get (``training.models``), so a
    baseline is compared on ranking *and* calibration on equal terms. ``"none"`` keeps the
    raw scores, which suits baselines that are already observed rates."""
    if method == "none":
        return None
    if method == "auto":
        method = choose_calibration(raw_val, y_val, seed)
    return Calibrator.fit(method, raw_val, y_val)


def apply_calibrator(calibrator: Calibrator | None, raw: np.ndarray) -> np.ndarray:
    if calibrator is None:
        return np.clip(raw, 0.0, 1.0)
    return np.clip(calibrator(raw), 0.0, 1.0)
