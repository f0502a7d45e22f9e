"""Figures as the people who read lists and score files want them: rounded sensibly.

Models and features work in full float precision; a salesperson reading a list or a CRM
importing a score file does not need ``lead_age_days = 20.209837962962963``. One rule per
kind of column, chosen by its name (:func:`figure_kind`):

| kind | columns | shown as |
|---|---|---|
| probability | ``probability``, ``p_won_<d>d`` | 4 significant digits (0.5097, 0.007298): small chances keep their size |
| days | names with the word ``days`` (``lead_age_days``, ``days_since_…``, ``median_days_to_win``) | 1 decimal (20.2) |
| count | ``n_…`` | whole numbers (nullable integers) |
| percentile | ``percentile`` | 1 decimal |
| other numbers | amounts, values (``expected_value``, ``deal_amount``, ``customer_value``…) | 2 decimals (money) |

Integer columns (``rank``, ``score``) and text are left alone; missing stays missing.
"""

from __future__ import annotations

import re
from typing import Literal

import numpy as np
import pandas as pd

Kind = Literal["probability", "days", "count", "percentile", "money"]
PROBABILITY_DIGITS = 4
DAYS_DECIMALS = 1
MONEY_DECIMALS = 2
_PROBABILITY = re.compile(r"probability|p_won_\d+d")
_DAYS = re.compile(r"(.+_)?days(_.+)?")


def figure_kind(column: str) -> Kind:
    """How a numeric column of a list or score file is rounded (see the module doc)."""
    if _PROBABILITY.fullmatch(column):
        return "probability"
    if _DAYS.fullmatch(column):
        return "days"
    if column.startswith("n_"):
        return "count"
    if column == "percentile":
        return "percentile"
    return "money"


def significant(values: np.ndarray, digits: int) -> np.ndarray:
    """``values`` to ``digits`` significant digits (0 and NaN unchanged).

    Rounded through decimal text, as ``f"{x:.4g}"`` does, so 0.1234567 becomes exactly the
    float 0.1235 rather than 0.12350000000000001 from scaling by a power of ten.
    """
    out = np.asarray(values, dtype=float).copy()
    finite = np.isfinite(out) & (out != 0)
    out[finite] = [float(f"{x:.{digits}g}") for x in out[finite]]
    return out


def tidy_figures(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with every float column rounded by its kind."""
    out = frame.copy()
    for column in out.columns:
        values = out[column]
        if not pd.api.types.is_float_dtype(values.dtype):
            continue
        kind = figure_kind(str(column))
        if kind == "probability":
            out[column] = pd.Series(significant(values.to_numpy(dtype=float), PROBABILITY_DIGITS), index=out.index)
        elif kind == "days":
            out[column] = values.round(DAYS_DECIMALS)
        elif kind == "count":
            out[column] = values.round(0).astype("Int64")
        elif kind == "percentile":
            out[column] = values.round(1)
        else:
            out[column] = values.round(MONEY_DECIMALS)
    return out
