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

Column order: first every float feature, by family — person (tenure, customer, journey
stage), leads (count, age, numeric attributes), orders (RFM, windows, trend, purchase gaps,
payment problems), interactions (counts per type and window, engagement, NPS), service
issues, deals — then the category features (``lead_source``, then text lead attributes by
name), then ``open_deal_id`` (an identifier, not a feature). Stacked snapshots start with
``as_of``. :mod:`features.catalog` explains each feature in words.

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
OPEN_DEAL_ID = families.OPEN_DEAL_ID
#: Columns of a feature frame that are not features: the snapshot time and the id of the
#: deal that the ``open_deal_*`` features describe.
NON_FEATURE_COLUMNS: tuple[str, ...] = (AS_OF_COLUMN, OPEN_DEAL_ID)


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

    The index is ``person_id`` (repeated across moments); each moment's rows are exactly
    ``build_features(data, as_of)``'s, except that category columns carry the union of
    the moments' categories. The tables are encoded once and the stack is written into one
    preallocated block, so memory stays near the size of the result.
    """
    return _assemble(encode(data, persons), [pd.Timestamp(d) for d in as_of_dates], config, stacked=True)


def features_at(encoded: EncodedCRM, as_of: pd.Timestamp, config: FeatureConfig | None = None) -> pd.DataFrame:
    """:func:`build_features` on already encoded tables (many moments, one encoding)."""
    return _assemble(encoded, [pd.Timestamp(as_of)], config, stacked=False)


def feature_columns(data_or_frame: CRMData | pd.DataFrame, config: FeatureConfig | None = None) -> list[str]:
    """The model's input columns, in their fixed order.

    For a feature frame (also a stacked snapshot frame), its feature columns. For a CRM,
    the columns :func:`build_features` would produce; they depend only on the config and on
    which attribute columns the leads table has, never on the rows.
    """
    if isinstance(data_or_frame, pd.DataFrame):
        frame = data_or_frame
    else:
        empty = CRMData(**{name: table.iloc[:0] for name, table in data_or_frame.tables().items()})
        frame = build_features(empty, pd.Timestamp(0), config, persons=[])
    return [c for c in frame.columns if c not in NON_FEATURE_COLUMNS]


def _all_columns(encoded: EncodedCRM, m: families.Moment) -> families.Columns:
    """Every family, in the documented column order."""
    lead_cols = families.lead_features(encoded.leads, m)
    order_cols = families.order_features(encoded.orders, m)
    interaction_cols = families.interaction_features(encoded.interactions, m)
    service_cols = families.service_features(encoded.interactions, encoded.orders, m)
    deal_cols = families.deal_features(encoded.deals, encoded.interactions, m)
    person_cols = families.person_features(encoded, m, order_cols | deal_cols)
    return person_cols | lead_cols | order_cols | interaction_cols | service_cols | deal_cols


def _rows_at(encoded: EncodedCRM, as_of: int) -> np.ndarray:
    """Person codes in the frame at ``as_of``: the given persons, or everyone known by then."""
    if encoded.explicit_persons:
        return np.arange(encoded.n)
    return np.flatnonzero((encoded.first_seen != NAT) & (encoded.first_seen < as_of))


def _assemble(
    encoded: EncodedCRM, moments: list[pd.Timestamp], config: FeatureConfig | None, stacked: bool
) -> pd.DataFrame:
    """Compute every moment and write it straight into one float64 block (one column per
    row of the block, which is how pandas stores columns), avoiding per-frame copies and a
    final concat. Float features come first, in family order, then the category features."""
    config = config or FeatureConfig()
    cuts = [timestamp_ns(moment) for moment in moments]
    # With no moment at all, one empty moment still yields the columns and dtypes.
    row_sets = [_rows_at(encoded, cut) for cut in cuts] if cuts else [np.zeros(0, dtype=np.int64)]
    total = sum(len(rows) for rows in row_sets)
    block: np.ndarray | None = None
    float_names: list[str] = []
    texts: dict[str, list[pd.Categorical]] = {}
    start = 0
    for cut, rows in zip(cuts or [0], row_sets):
        columns = _all_columns(encoded, families.Moment(as_of=cut, n=encoded.n, config=config))
        if block is None:
            float_names = [name for name, values in columns.items() if isinstance(values, np.ndarray)]
            texts = {name: [] for name, values in columns.items() if not isinstance(values, np.ndarray)}
            block = np.empty((len(float_names), total))
        for j, name in enumerate(float_names):
            # Popped once copied, so the block and all the columns are never held in full at
            # once (at 1 M persons each is ~1 GB).
            np.take(columns.pop(name), rows, out=block[j, start : start + len(rows)])
        for name, parts in texts.items():
            parts.append(columns[name][rows])
        start += len(rows)
    assert block is not None  # the loop runs at least once
    index = pd.Index(encoded.ids.take(np.concatenate(row_sets)), name=PERSON_COLUMN)
    frame = pd.DataFrame(block.T, index=index, columns=float_names, copy=False)
    for name, parts in texts.items():
        frame[name] = parts[0] if len(parts) == 1 else _stack_categoricals(parts)
    if stacked:
        when = np.repeat(np.array(cuts, dtype="datetime64[ns]"), [len(rows) for rows in row_sets][: len(cuts)])
        frame.insert(0, AS_OF_COLUMN, when)
    return frame


def _stack_categoricals(parts: list[pd.Categorical]) -> pd.Categorical:
    """Categoricals one after another, over the sorted union of their categories.

    (``union_categoricals`` refuses parts whose categories differ in dtype, as an empty
    object-dtype set and a ``str`` set do on pandas 3.)
    """
    union = pd.Index(sorted(set().union(*(set(part.categories) for part in parts))))
    codes = np.concatenate([part.set_categories(union).codes for part in parts])
    return pd.Categorical.from_codes(codes, categories=union)
