"""Writing score tables for CRMs and spreadsheets: CSV, Parquet or Excel by file suffix."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from features.atomic import atomic_path, write_csv, write_parquet
from serving.figures import tidy_figures

SUFFIXES = (".csv", ".parquet", ".xlsx")


def write_scores(scores: pd.DataFrame, destination: Path) -> Path:
    """Write atomically in the format the suffix names (.csv, .parquet or .xlsx).

    CSV and Excel files are read by people and CRM imports: their figures are rounded
    (:func:`serving.figures.tidy_figures`). Parquet, for pipelines, keeps full precision.
    """
    destination = Path(destination)
    suffix = destination.suffix.lower()
    if suffix in (".csv", ".xlsx"):
        scores = tidy_figures(scores)
    if suffix == ".csv":
        return write_csv(scores, destination)
    if suffix == ".parquet":
        return write_parquet(scores, destination)
    if suffix == ".xlsx":
        with atomic_path(destination) as temp:
            # Excel has no time zones and no NaN: write plain values.
            scores.to_excel(temp, index=False, engine="openpyxl")
        return destination
    raise ValueError(f"{destination.name}: unknown score file type {suffix!r}; use one of {', '.join(SUFFIXES)}")
