"""The feature pipeline on Spark: :func:`features.pipeline.build_features`, once per bucket.

There is one feature implementation. Persons are hashed into ``SparkConfig.buckets``
buckets on the driver; every row of the four event tables goes to its person's bucket, and
``groupBy(bucket).applyInPandas`` calls ``build_features`` on each bucket's tables. Every
feature is a function of one person's own rows, with two exceptions, both handled here:

* **text lead attributes** (``lead_source``, ``lead_industry``…) are categories over the
  values seen in *any* lead before ``as_of``. They are computed once, on the driver, by the
  pipeline itself over the leads table (``build_features(..., persons=[])`` returns an
  empty frame carrying every column, dtype and category set), and the collected strings are
  cast to those categories;
* **deal stages** come from ``deal_stage`` interactions pointing at a deal by id, which a
  CRM may log under another person than the deal's. Persons linked that way share a bucket
  (a union-find over the few such links), so the link is never cut.

Rows keep their original order inside a bucket (ties in the pipeline fall back to row
order), and datetimes cross to the executors as int64 nanoseconds (Spark timestamps hold
microseconds), so the result equals the single-machine frame exactly.

PySpark is imported only inside functions: the rest of Radar runs without Java.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from features.contract import CRMData
from features.encoded import PERSON_COLUMN, lead_attribute_columns
from features.pipeline import OPEN_DEAL_ID, build_features
from radar.config import FeatureConfig, Settings, SparkConfig

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

#: The tables features read (``spend`` is per channel, not per person).
FEATURE_TABLES: tuple[str, ...] = ("leads", "interactions", "orders", "deals")
BUCKET = "_radar_bucket"
TABLE = "_radar_table"
ROW = "_radar_row"
#: The columns the pipeline (and the scoring populations) read, besides ``person_id`` and,
#: for leads, the attribute columns (:func:`features.encoded.lead_attribute_columns`).
#: Nothing else crosses to the executors: no e-mails, phones or source ids.
READ_COLUMNS: dict[str, tuple[str, ...]] = {
    "leads": ("created_at", "converted_at", "source"),
    "interactions": ("timestamp", "type", "value", "deal_id", "stage"),
    "orders": ("timestamp", "amount", "status"),
    "deals": ("deal_id", "created_at", "closed_at", "outcome", "amount"),
}
#: Extra per-bucket columns: (the bucket's tables, its feature frame) → a frame on the same
#: index, with the Spark types of its columns (e.g. ``{"eligible": "boolean"}``).
ExtraColumns = Callable[[CRMData, pd.DataFrame], pd.DataFrame]


def spark_session(config: SparkConfig) -> SparkSession:
    """A session on ``config.master`` (an existing session is reused, as Spark does)."""
    from pyspark.sql import SparkSession

    # PySpark 4 warns on every pandas conversion under pandas 3; the conversions Radar uses
    # are checked value for value by tests/test_spark.py.
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
    warnings.filterwarnings("ignore", message="The copy keyword is deprecated", module="pyspark")
    if config.master.startswith("local"):
        # Local Python workers must run this interpreter (with Radar and its packages), not
        # whatever ``python3`` is first on the PATH. On a cluster, spark.pyspark.python says.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    defaults = {
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.session.timeZone": "UTC",
        # One shuffle partition per bucket: the groupBy shuffle then makes no empty tasks.
        "spark.sql.shuffle.partitions": str(config.buckets),
        "spark.ui.showConsoleProgress": "false",
    }
    builder = SparkSession.builder.master(config.master).appName(config.app_name)
    for key, value in (defaults | config.conf).items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


@dataclass(frozen=True)
class _Layout:
    """How one table crosses to the executors: its columns, their pandas dtypes (restored
    there) and which of them are datetimes sent as int64 nanoseconds."""

    table: str
    columns: tuple[str, ...]
    dtypes: tuple[Any, ...]
    datetimes: frozenset[str]

    def wire_name(self, column: str) -> str:
        return f"{self.table}__{column}"


def feature_template(data: CRMData, as_of: pd.Timestamp, config: FeatureConfig | None = None) -> pd.DataFrame:
    """The empty feature frame of ``data`` at ``as_of``: every column with its dtype, and
    text lead attributes with their population-wide categories (computed from leads only)."""
    return build_features(CRMData(leads=data.leads), as_of, config, persons=[])


def spark_features(
    spark: SparkSession,
    data: CRMData,
    as_of: pd.Timestamp,
    config: FeatureConfig | None = None,
    buckets: int = 16,
    extra: ExtraColumns | None = None,
    extra_types: dict[str, str] | None = None,
) -> DataFrame:
    """Features of everyone known before ``as_of`` as a Spark DataFrame: ``person_id``,
    every feature (doubles; category features as strings) and the ``extra`` columns.

    :func:`collect_features` turns it back into exactly ``build_features(data, as_of)``.
    """
    if buckets < 1:
        raise ValueError(f"buckets must be at least 1, got {buckets}")
    if bool(extra) != bool(extra_types):
        raise ValueError("give extra columns together with their Spark types")
    as_of = pd.Timestamp(as_of)
    template = feature_template(data, as_of, config)
    tables = {
        name: _read_columns(name, getattr(data, name))
        for name in FEATURE_TABLES
        if getattr(data, name) is not None
    }
    bucket_of = _bucket_map(tables, buckets)
    layouts, wire = [], None
    for name, table in tables.items():
        layout, frame = _to_wire(name, table, bucket_of)
        layouts.append(layout)
        part = spark.createDataFrame(frame)
        wire = part if wire is None else wire.unionByName(part, allowMissingColumns=True)
    schema = _output_schema(template, extra_types or {})
    run = _BucketRun(tuple(layouts), as_of, config, template.columns.tolist(), extra, tuple(extra_types or {}))
    if wire is None:
        return spark.createDataFrame([], schema)

    def per_bucket(rows: pd.DataFrame) -> pd.DataFrame:  # Spark counts a method's self
        return run.compute(rows)

    return wire.groupBy(BUCKET).applyInPandas(per_bucket, schema=schema)


def build_features_spark(
    data: CRMData, as_of: pd.Timestamp, settings: Settings, spark: SparkSession | None = None
) -> pd.DataFrame:
    """``build_features(data, as_of, settings.features)``, computed on Spark
    (``settings.spark``, or the given session) and collected on the driver."""
    spark = spark or spark_session(settings.spark)
    template = feature_template(data, as_of, settings.features)
    frame = spark_features(spark, data, as_of, settings.features, settings.spark.buckets)
    return collect_features(frame, template)


def collect_features(frame: DataFrame, template: pd.DataFrame) -> pd.DataFrame:
    """The Spark features on the driver, typed and ordered as ``build_features`` returns
    them (extra columns are dropped: select them from ``frame`` before)."""
    collected = frame.select(PERSON_COLUMN, *template.columns).toPandas()
    return restore_types(collected, template)


def restore_types(collected: pd.DataFrame, template: pd.DataFrame) -> pd.DataFrame:
    """A collected frame (``person_id`` column, strings for categories) with the index,
    column order, dtypes and category sets of the pipeline's frame."""
    rows = collected.sort_values(PERSON_COLUMN, kind="stable")
    index = pd.Index(rows[PERSON_COLUMN].to_numpy(dtype=object), name=PERSON_COLUMN).astype(template.index.dtype)
    columns: dict[str, object] = {}
    for column in template.columns:
        dtype, values = template[column].dtype, rows[column]
        if column == OPEN_DEAL_ID:
            # Its categories are the deals named in the frame: the whole frame's, known now.
            columns[column] = pd.Categorical(_none_for_missing(values))
        elif isinstance(dtype, pd.CategoricalDtype):
            columns[column] = pd.Categorical(_none_for_missing(values), categories=dtype.categories)
        else:
            columns[column] = values.to_numpy(dtype=dtype)
    return pd.DataFrame(columns, index=index, columns=template.columns)


def _none_for_missing(values: pd.Series) -> np.ndarray:
    return values.astype(object).where(values.notna(), None).to_numpy()


# --- buckets --------------------------------------------------------------------------


def _read_columns(name: str, table: pd.DataFrame) -> pd.DataFrame:
    if PERSON_COLUMN not in table.columns:
        raise KeyError(f"{name} has no person_id column: unify identities before features")
    wanted = [PERSON_COLUMN, *READ_COLUMNS[name]]
    if name == "leads":
        wanted += lead_attribute_columns(table)
    return table[[c for c in table.columns if c in set(wanted)]]


def _bucket_map(tables: dict[str, pd.DataFrame], buckets: int) -> pd.Series:
    """Bucket of every person (a stable hash of the person, or of the first person of their
    group when deal_stage events tie them to another person's deal)."""
    persons = pd.Index(
        pd.concat([t[PERSON_COLUMN] for t in tables.values()], ignore_index=True).dropna().unique()
    )
    keys = pd.Series(persons.to_numpy(dtype=object), index=persons)
    keys.update(pd.Series(_deal_links(tables), dtype=object))
    hashed = pd.util.hash_array(keys.astype(str).to_numpy(dtype=object))
    return pd.Series((hashed % np.uint64(buckets)).astype(np.int64), index=persons)


def _deal_links(tables: dict[str, pd.DataFrame]) -> dict[object, object]:
    """Person → root person, for persons whose deal_stage events name someone else's deal."""
    interactions, deals = tables.get("interactions"), tables.get("deals")
    if interactions is None or deals is None or "deal_id" not in interactions or "deal_id" not in deals:
        return {}
    staged = interactions.loc[interactions["deal_id"].notna(), [PERSON_COLUMN, "deal_id"]]
    owners = deals[["deal_id", PERSON_COLUMN]].dropna().drop_duplicates("deal_id")
    pairs = staged.merge(owners, on="deal_id", suffixes=("", "_owner")).dropna()
    pairs = pairs[pairs[PERSON_COLUMN] != pairs[f"{PERSON_COLUMN}_owner"]]
    parent: dict[object, object] = {}

    def root(x: object) -> object:
        while parent.get(x, x) != x:
            x = parent[x]
        return x

    for a, b in zip(pairs[PERSON_COLUMN], pairs[f"{PERSON_COLUMN}_owner"]):
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb, key=str)] = min(ra, rb, key=str)
    return {person: root(person) for person in parent}


def _to_wire(name: str, table: pd.DataFrame, bucket_of: pd.Series) -> tuple[_Layout, pd.DataFrame]:
    """A table as Spark takes it: prefixed columns, datetimes as int64 ns (NaT as the
    pipeline's NAT, never null: a null would turn the column into floats), text as str."""
    datetimes = frozenset(c for c in table.columns if pd.api.types.is_datetime64_any_dtype(table[c]))
    layout = _Layout(name, tuple(map(str, table.columns)), tuple(table.dtypes), datetimes)
    wire = {}
    for column in table.columns:
        values = table[column]
        if column in datetimes:
            if isinstance(values.dtype, pd.DatetimeTZDtype):
                values = values.dt.tz_convert("UTC").dt.tz_localize(None)
            wire[layout.wire_name(column)] = values.astype("datetime64[ns]").to_numpy().view(np.int64)
        elif pd.api.types.is_numeric_dtype(values) and not isinstance(values.dtype, pd.CategoricalDtype):
            wire[layout.wire_name(column)] = values.to_numpy()
        else:
            wire[layout.wire_name(column)] = _none_for_missing(values.astype("string"))
    frame = pd.DataFrame(wire)
    frame[ROW] = np.arange(len(table), dtype=np.int64)
    frame[TABLE] = name
    frame[BUCKET] = bucket_of.reindex(table[PERSON_COLUMN].to_numpy()).fillna(0).to_numpy(dtype=np.int64)
    return layout, frame


def _from_wire(rows: pd.DataFrame, layout: _Layout) -> pd.DataFrame:
    """One table of a bucket back in its original dtypes and row order."""
    rows = rows.sort_values(ROW)
    out = {}
    for column, dtype in zip(layout.columns, layout.dtypes):
        values = rows[layout.wire_name(column)]
        if column in layout.datetimes:
            stamps = pd.Series(values.to_numpy(dtype=np.int64).view("datetime64[ns]"))
            if isinstance(dtype, pd.DatetimeTZDtype):
                stamps = stamps.dt.tz_localize("UTC").dt.tz_convert(dtype.tz)
            out[column] = stamps.astype(dtype)
        else:
            out[column] = values.reset_index(drop=True).astype(dtype)
    return pd.DataFrame(out, columns=list(layout.columns))


def _output_schema(template: pd.DataFrame, extra_types: dict[str, str]) -> str:
    fields = [f"`{PERSON_COLUMN}` string"]
    for column in template.columns:
        kind = "string" if isinstance(template[column].dtype, pd.CategoricalDtype) else "double"
        fields.append(f"`{column}` {kind}")
    fields += [f"`{name}` {kind}" for name, kind in extra_types.items()]
    return ", ".join(fields)


@dataclass(frozen=True)
class _BucketRun:
    """What each executor runs on one bucket (pickled to the executors with its settings)."""

    layouts: tuple[_Layout, ...]
    as_of: pd.Timestamp
    config: FeatureConfig | None
    columns: list[str]
    extra: ExtraColumns | None
    extra_names: tuple[str, ...]

    def compute(self, rows: pd.DataFrame) -> pd.DataFrame:
        tables = {
            layout.table: _from_wire(rows[rows[TABLE] == layout.table], layout) for layout in self.layouts
        }
        data = CRMData(**tables)
        features = build_features(data, self.as_of, self.config)
        out: dict[str, np.ndarray] = {PERSON_COLUMN: features.index.to_numpy(dtype=object)}
        for column in self.columns:
            values = features[column]
            if isinstance(values.dtype, pd.CategoricalDtype):
                out[column] = _none_for_missing(values)
            else:
                out[column] = values.to_numpy(dtype=np.float64)
        if self.extra is not None:
            added = self.extra(data, features)
            for name in self.extra_names:
                out[name] = added[name].to_numpy()
        return pd.DataFrame(out)

