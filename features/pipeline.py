"""The point-in-time feature pipeline: one function for training, batch and online scoring.

``build_features(data, as_of)`` returns one row per person (index ``person_id``, sorted)
using only what was known strictly before ``as_of``:

- events with ``timestamp < as_of``; leads and deals with ``created_at < as_of``;
- a deal's outcome only once ``closed_at < as_of``; its stage only from ``deal_stage``
  interactions before ``as_of`` (never the deals table's current ``stage``);
- of the lead outcome columns only ``converted_at < as_of`` ("already a customer").

Windows of ``d`` days cover ``[as_of - d days, as_of)`` (see :mod:`features.windows`).
All numeric features are float64, NaN where there is no data (LightGBM handles it); text
features are pandas ``category`` columns over the values seen before ``as_of``; models keep
the categories they were trained on. The column order is fixed by the code, not the data:
:func:`feature_columns` gives it, and training and serving must both select columns with it.

Families, in column order: person (tenure, customer, journey stage), leads, orders
(RFM, windows, trend, purchase gaps, payment problems), interactions (counts per type and
window, engagement, NPS), service issues, deals. :mod:`features.catalog` explains each
column in words.

Scale: the tables are encoded once into integer arrays (:mod:`features.encoded`), then each
family is a handful of ``np.bincount`` / ``ufunc.at`` passes; no per-person Python code.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from features import families
from features.contract import CRMData
from features.encoded import PERSON_COLUMN, EncodedCRM, encode
from features.windows import NAT, timestamp_ns
from radar.config import FeatureConfig

AS_OF_COLUMN = "as_of"
#: Columns of a snapshot frame that are not features.
NON_FEATURE_COLUMNS: tuple[str, ...] = (AS_OF_COLUMN,)


def build_features(
    data: CRMData,
    as_of: pd.Timestamp,
    config: FeatureConfig | None = None,
    persons: Sequence[object] | None = None,
) -> pd.DataFrame:
    """Features of every person known before ``as_of``, or exactly of ``persons``.

    A person is known when any lead, interaction, order or deal of theirs is before
    ``as_of``. Given ``persons``, one row per distinct given id is returned, known or not
    (unknown ids get the values of an empty history). ``data`` is never modified.
    """
    return features_at(encode(data, persons), as_of, config)


def build_snapshots(
    data: CRMData,
    as_of_dates: Iterable[pd.Timestamp],
    config: FeatureConfig | None = None,
    persons: Sequence[object] | None = None,
) -> pd.DataFrame:
    """Features at several moments stacked, with an ``as_of`` column first.

    The index is ``person_id`` (repeated across moments). The tables are encoded once.
    Categorical columns get the union of the snapshots' categories so they stack cleanly.
    """
    encoded = encode(data, persons)
    frames = []
    for moment in as_of_dates:
        frame = features_at(encoded, moment, config)
        frame.insert(0, AS_OF_COLUMN, pd.Timestamp(moment))
        frames.append(frame)
    if not frames:
        empty = features_at(encoded, pd.Timestamp(0), config).iloc[:0]
        empty.insert(0, AS_OF_COLUMN, pd.Series([], dtype="datetime64[ns]"))
        return empty
    return pd.concat(_shared_categories(frames))


def features_at(encoded: EncodedCRM, as_of: pd.Timestamp, config: FeatureConfig | None = None) -> pd.DataFrame:
    """:func:`build_features` on already encoded tables (many moments, one encoding)."""
    config = config or FeatureConfig()
    moment = families.Moment(as_of=timestamp_ns(as_of), n=encoded.n, config=config)
    columns = _all_columns(encoded, moment)
    if encoded.explicit_persons:
        rows = np.arange(encoded.n)
    else:
        rows = np.flatnonzero((encoded.first_seen != NAT) & (encoded.first_seen < moment.as_of))
    index = pd.Index(encoded.ids[rows], name=PERSON_COLUMN)
    return pd.DataFrame({name: values[rows] for name, values in columns.items()}, index=index)


def feature_columns(data_or_frame: CRMData | pd.DataFrame, config: FeatureConfig | None = None) -> list[str]:
    """The model's input columns, in their fixed order.

    For a feature frame (also a stacked snapshot frame), its feature columns. For a CRM,
    the columns :func:`build_features` would produce; they depend only on the config and on
    which attribute columns the leads table has, never on the rows.
    """
    if isinstance(data_or_frame, pd.DataFrame):
        return [c for c in data_or_frame.columns if c not in NON_FEATURE_COLUMNS]
    empty = CRMData(
        **{name: table.iloc[:0] for name, table in data_or_frame.tables().items()}
    )
    return list(build_features(empty, pd.Timestamp(0), config, persons=[]).columns)


def _all_columns(encoded: EncodedCRM, m: families.Moment) -> families.Columns:
    """Every family, in the documented column order."""
    lead_cols = families.lead_features(encoded.leads, m)
    order_cols = families.order_features(encoded.orders, m)
    interaction_cols = families.interaction_features(encoded.interactions, m)
    service_cols = families.service_features(encoded.interactions, encoded.orders, m)
    deal_cols = families.deal_features(encoded.deals, encoded.interactions, m)
    person_cols = families.person_features(encoded, m, order_cols | deal_cols)
    return person_cols | lead_cols | order_cols | interaction_cols | service_cols | deal_cols


def _shared_categories(frames: list[pd.DataFrame]) -> list[pd.DataFrame]:
    """Give each categorical column the sorted union of its categories in all frames."""
    categorical = [c for c, dtype in frames[0].dtypes.items() if isinstance(dtype, pd.CategoricalDtype)]
    out = frames
    for column in categorical:
        union = sorted(set().union(*(f[column].cat.categories for f in out)))
        out = [f.assign(**{column: f[column].cat.set_categories(union)}) for f in out]
    return out
