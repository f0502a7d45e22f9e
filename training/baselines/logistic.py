"""A logistic regression on lead attributes and early engagement, for lead quality.

The strongest "simple" model a team would try first: one-hot lead attributes plus a few
standardised engagement counts in a linear logit. If the boosted trees cannot beat it,
their complexity is not paying for itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from training.baselines._common import (
    apply_calibrator,
    as_float,
    as_labels,
    binary_labels,
    check_fitted,
    fit_calibrator,
    require_columns,
)

#: Lead attributes one-hot encoded when present; ``lead_source`` is required.
CATEGORICAL_LEAD_COLUMNS: tuple[str, ...] = (
    "lead_source",
    "lead_country",
    "lead_industry",
    "lead_company_size",
    "lead_job_title",
)
#: Early-engagement numbers used when present; ``lead_age_days`` is required.
NUMERIC_LEAD_COLUMNS: tuple[str, ...] = (
    "lead_age_days",
    "n_leads",
    "n_web_visit_30d",
    "n_form_submit_30d",
    "n_email_open_30d",
    "n_email_click_30d",
    "n_call_90d",
    "n_meeting_90d",
    "n_engagement_30d",
    "days_since_last_engagement",
)
REQUIRED_COLUMNS: tuple[str, ...] = ("lead_source", "lead_age_days")


class LogisticBaseline:
    """One-hot categorical lead attributes + standardised numeric engagement (median
    imputed, with missing-indicators) into an L2 logistic regression, then the models'
    calibration step on validation.

    The columns are those of ``categorical_columns`` / ``numeric_columns`` found in the
    training frame (``lead_source`` and ``lead_age_days`` must be there); a listed
    "categorical" column that turns out numeric (e.g. company size as a head count) is
    treated as numeric. Prediction needs the same columns.
    """

    name = "logistic"

    def __init__(
        self,
        categorical_columns: Sequence[str] = CATEGORICAL_LEAD_COLUMNS,
        numeric_columns: Sequence[str] = NUMERIC_LEAD_COLUMNS,
        C: float = 1.0,
        min_category_rows: int = 10,
        calibration: str = "auto",
        horizon_days: int = 90,
        seed: int = 42,
    ) -> None:
        self.categorical_columns = categorical_columns
        self.numeric_columns = numeric_columns
        self.C = C
        self.min_category_rows = min_category_rows
        self.calibration = calibration
        self.horizon_days = horizon_days
        self.seed = seed

    def _split_columns(self, X: pd.DataFrame) -> tuple[list[str], list[str]]:
        require_columns(X, REQUIRED_COLUMNS, type(self).__name__)
        listed_cat = [c for c in self.categorical_columns if c in X.columns]
        numeric = [c for c in self.numeric_columns if c in X.columns]
        text = [c for c in listed_cat if not pd.api.types.is_numeric_dtype(X[c])]
        numeric += [c for c in listed_cat if c not in text]
        return text, numeric

    def _design(self, X: pd.DataFrame) -> pd.DataFrame:
        """The used columns as plain strings / float64, so pandas 2 and 3 dtypes agree."""
        require_columns(X, self.categorical_used_ + self.numeric_used_, type(self).__name__)
        parts = {c: as_labels(X, c) for c in self.categorical_used_}
        parts |= {c: as_float(X, c) for c in self.numeric_used_}
        return pd.DataFrame(parts, index=pd.RangeIndex(len(X)))

    def _pipeline(self) -> Pipeline:
        # min_frequency folds rare levels together so a job title seen twice cannot get
        # its own large coefficient; unseen levels score as the reference.
        onehot = OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=self.min_category_rows)
        # An all-missing column (no stage history in this export) stays, as zeros, unwarned.
        imputer = SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)
        numeric = make_pipeline(imputer, StandardScaler())
        columns = ColumnTransformer(
            [("categorical", onehot, self.categorical_used_), ("numeric", numeric, self.numeric_used_)]
        )
        return make_pipeline(columns, LogisticRegression(C=self.C, max_iter=1000))

    def fit(
        self, X_train: pd.DataFrame, y_train: np.ndarray, X_val: pd.DataFrame, y_val: np.ndarray
    ) -> "LogisticBaseline":
        self.categorical_used_, self.numeric_used_ = self._split_columns(X_train)
        self.pipeline_ = self._pipeline().fit(self._design(X_train), binary_labels(y_train))
        self.calibrator_ = fit_calibrator(self.calibration, self.predict_raw(X_val), binary_labels(y_val), self.seed)
        return self

    def predict_raw(self, X: pd.DataFrame) -> np.ndarray:
        """The logistic regression's probability before calibration."""
        check_fitted(self, "pipeline_")
        return self.pipeline_.predict_proba(self._design(X))[:, 1]

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        check_fitted(self, "calibrator_")
        return apply_calibrator(self.calibrator_, self.predict_raw(X))
