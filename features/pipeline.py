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

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import fields, replace

import numpy as np
import pandas as pd

from features import families
from features.contract import CRMData
from features.encoded import PERSON_COLUMN, EncodedCRM, TextAttribute, encode, lead_attribute_columns
from features.windows import NAT, timestamp_ns
from radar.config import FeatureConfig

AS_OF_COLUMN = "as_of"
OPEN_DEAL_ID = families.OPEN_DEAL_ID
#: The deal a row of :func:`build_deal_features` is about.
DEAL_COLUMN = "deal_id"
#: Person features about the person's leading open deal (and its id): a deal row carries
#: its own deal's features instead.
LEADING_DEAL_PREFIX = "open_deal_"
#: Columns of a feature frame that are not features: the snapshot time, the id of the
#: deal that the ``open_deal_*`` features describe, and a deal row's deal.
NON_FEATURE_COLUMNS: tuple[str, ...] = (AS_OF_COLUMN, OPEN_DEAL_ID, DEAL_COLUMN)
#: The columns of each table that the features read (and, for leads, any column that may be
#: an attribute: see :func:`input_columns`). The deals' ``stage`` is left out on purpose: it
#: is today's stage, which would leak the future.
INPUT_COLUMNS: dict[str, tuple[str, ...]] = {
    "leads": (PERSON_COLUMN, "created_at", "converted_at", "source"),
    "interactions": (PERSON_COLUMN, "timestamp", "type", "value", "deal_id", "stage"),
    "orders": (PERSON_COLUMN, "timestamp", "amount", "status"),
    "deals": (PERSON_COLUMN, "deal_id", "created_at", "closed_at", "outcome", "amount"),
}


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


def build_deal_features(
    data: CRMData,
    as_of: pd.Timestamp,
    config: FeatureConfig | None = None,
    persons: Sequence[object] | None = None,
    person_features: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Every deal open at ``as_of`` (of ``persons``, when given), one row each.

    The index is ``person_id``, repeated for a person with several open deals; then the
    ``deal_id``, the deal's own features (:data:`features.families.DEAL_ROW_FEATURES`: its
    stage from stage history, amount, age, stage moves, owner) and its person's features
    from :func:`build_features` (pass them when already built, for the same ``as_of``),
    without the ones about the person's leading open deal. Rows are sorted by person, then
    deal id. The same point-in-time rules hold: nothing at or after ``as_of`` is read.
    """
    as_of = pd.Timestamp(as_of)
    config = config or FeatureConfig()
    if person_features is None:
        person_features = build_features(data, as_of, config, persons)
    person_features = person_features.drop(columns=[AS_OF_COLUMN], errors="ignore")
    stages = data.interactions
    if stages is not None and "type" in stages.columns:
        stages = stages[stages["type"] == "deal_stage"]
    # Only deals and their stage events: encoding every other table again would be waste.
    encoded = encode(CRMData(deals=data.deals, interactions=stages), list(person_features.index))
    moment = families.Moment(as_of=timestamp_ns(as_of), n=encoded.n, config=config)
    rows, own = families.open_deals(encoded.deals, encoded.interactions, moment)
    person_ids = encoded.ids.take(encoded.deals.code[rows])
    deal_ids = encoded.deals.ids.take(encoded.deals.key[rows])
    order = np.lexsort((np.asarray(deal_ids, dtype=str), np.asarray(person_ids, dtype=str)))
    index = pd.Index(person_ids.take(order), name=PERSON_COLUMN)
    frame = pd.DataFrame({DEAL_COLUMN: np.asarray(deal_ids.take(order), dtype=object)}, index=index)
    for name, values in own.items():
        frame[name] = values[order]
    theirs = [c for c in person_features.columns if not c.startswith(LEADING_DEAL_PREFIX)]
    person_part = person_features.loc[index, theirs]
    person_part.index = index
    return pd.concat([frame, person_part], axis=1)


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


#: The families in the documented column order (they are computed in another: see
#: :func:`_family_columns`).
FAMILY_ORDER: tuple[str, ...] = ("person", "leads", "orders", "interactions", "service", "deals")


def input_columns(table: str, stored: Sequence[str]) -> list[str]:
    """Of a table's stored columns, the ones :func:`build_features` can read, in stored order.

    For reading only those: ``read_validated(folder, columns=input_columns)``; at 1 M people
    the contact keys and texts the features never read are ~1.7 GB of the 4.3 GB tables.
    Leads keep every column that may be an attribute (whether it is depends on its dtype,
    which the name does not tell); tables the features do not read (spend) are kept whole.
    """
    wanted = INPUT_COLUMNS.get(table)
    if wanted is None:
        return list(stored)
    keep = set(wanted)
    if table == "leads":
        keep |= set(lead_attribute_columns(pd.DataFrame(columns=list(stored))))
    return [name for name in stored if name in keep]


def _family_columns(encoded: EncodedCRM, m: families.Moment) -> Iterator[tuple[str, str, families.Column]]:
    """Every column as ``(family, name, values)``, computed one at a time so that each can be
    stored and dropped before the next. The person family comes last: it reads a few
    columns of orders and deals (:data:`families.PERSON_INPUTS`), which are kept aside."""
    kept: dict[str, np.ndarray] = {}

    def keeping(columns: families.Columns) -> families.Columns:
        for name, values in columns:
            if name in families.PERSON_INPUTS:
                kept[name] = values
            yield name, values

    # Generators: nothing runs until the loop below asks for the family's first column.
    sources = (
        ("leads", families.lead_features(encoded.leads, m)),
        ("orders", keeping(families.order_features(encoded.orders, m))),
        ("interactions", families.interaction_features(encoded.interactions, m)),
        ("service", families.service_features(encoded.interactions, encoded.orders, m)),
        ("deals", keeping(families.deal_features(encoded.deals, encoded.interactions, m))),
        ("person", families.person_features(encoded, m, kept)),
    )
    for family, columns in sources:
        for name, values in columns:
            yield family, name, values


def _layout(encoded: EncodedCRM, config: FeatureConfig) -> tuple[list[str], list[str]]:
    """The float and the category columns, each in the documented order.

    Found by running the families over no rows: names and kinds depend only on the config
    and on the lead attributes, never on the rows, and knowing them first lets every
    column be written into its place in the result as soon as it is computed.
    """
    names: dict[str, list[tuple[str, bool]]] = {family: [] for family in FAMILY_ORDER}
    for family, name, values in _family_columns(_no_rows(encoded), families.Moment(as_of=0, n=0, config=config)):
        names[family].append((name, isinstance(values, np.ndarray)))
    ordered = [column for family in FAMILY_ORDER for column in names[family]]
    return [name for name, is_float in ordered if is_float], [name for name, is_float in ordered if not is_float]


def _no_rows(encoded: EncodedCRM) -> EncodedCRM:
    """``encoded`` with no persons and no rows (same lead attributes and deal ids)."""

    def cut(record):  # every array field of a record (text codes too), zero rows long
        values = {f.name: getattr(record, f.name) for f in fields(record)}
        return replace(record, **{name: v[:0] if isinstance(v, np.ndarray) else replace(v, codes=v.codes[:0])
                                  for name, v in values.items() if isinstance(v, (np.ndarray, TextAttribute))})

    attributes = {
        name: replace(values, codes=values.codes[:0]) if isinstance(values, TextAttribute) else values[:0]
        for name, values in encoded.leads.attributes.items()
    }
    return replace(
        encoded,
        ids=encoded.ids[:0],
        first_seen=encoded.first_seen[:0],
        leads=replace(cut(encoded.leads), attributes=attributes),
        interactions=cut(encoded.interactions),
        orders=cut(encoded.orders),
        deals=cut(encoded.deals),
    )


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
    final concat. Float features come first, in family order, then the category features.

    Each column is copied into its row of the block as soon as it is computed and then
    dropped, so the build holds the block plus one family's temporaries, never the block
    and all the columns (at 1 M persons each is ~1 GB)."""
    config = config or FeatureConfig()
    cuts = [timestamp_ns(moment) for moment in moments]
    # With no moment at all, one empty moment still yields the columns and dtypes.
    row_sets = [_rows_at(encoded, cut) for cut in cuts] if cuts else [np.zeros(0, dtype=np.int64)]
    total = sum(len(rows) for rows in row_sets)
    float_names, text_names = _layout(encoded, config)
    slot = {name: j for j, name in enumerate(float_names)}
    block = np.empty((len(float_names), total))
    texts: dict[str, list[pd.Categorical]] = {name: [] for name in text_names}
    start = 0
    for cut, rows in zip(cuts or [0], row_sets):
        written = 0
        for _, name, values in _family_columns(encoded, families.Moment(as_of=cut, n=encoded.n, config=config)):
            if name in slot:
                np.take(values, rows, out=block[slot[name], start : start + len(rows)])
                written += 1
            else:
                texts[name].append(values[rows])
            del values
        assert written == len(float_names), "a family changed its columns between moments"
        start += len(rows)
    index = pd.Index(encoded.ids.take(np.concatenate(row_sets)), name=PERSON_COLUMN)
    frame = pd.DataFrame(block.T, index=index, columns=float_names, copy=False)
    for name, parts in texts.items():
        frame[name] = parts[0] if len(parts) == 1 else _stack_categoricals(parts)
    if stacked:
        when = np.repeat(np.array(cuts, dtype="datetime64[ns]"), [len(rows) for rows in row_sets][: len(cuts)])
        frame.insert(0, AS_OF_COLUMN, when)
    return frame


def concat_features(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Feature frames of several snapshots one after another; a category column keeps
    the category dtype over the union of the frames' categories (a plain concat would turn
    columns whose categories differ into objects)."""
    if len(frames) == 1:
        return frames[0]
    out = pd.concat(frames)
    for name in frames[0].columns:
        if isinstance(frames[0][name].dtype, pd.CategoricalDtype) and not isinstance(out[name].dtype, pd.CategoricalDtype):
            out[name] = _stack_categoricals([pd.Categorical(f[name]) for f in frames])
    return out


def _stack_categoricals(parts: list[pd.Categorical]) -> pd.Categorical:
    """Categoricals one after another, over the sorted union of their categories.

    (``union_categoricals`` refuses parts whose categories differ in dtype, as an empty
    object-dtype set and a ``str`` set do on pandas 3.)
    """
    union = pd.Index(sorted(set().union(*(set(part.categories) for part in parts))))
    codes = np.concatenate([part.set_categories(union).codes for part in parts])
    return pd.Categorical.from_codes(codes, categories=union)
