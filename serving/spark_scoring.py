"""Batch scoring on Spark: the same answers as :func:`serving.scoring.score_people`.

What runs where:

* **executors** build features per bucket of persons (:mod:`features.spark`) together with
  each target's eligibility (:func:`serving.scoring.eligible`, per bucket: every population
  is a property of one person's own history); they run each champion's registered MLflow
  model through ``mlflow.pyfunc.spark_udf``; with ``top_k`` they explain each row
  (:func:`serving.reasons.reasons_columns`, with the champion's bundle broadcast once);
* **the driver** computes the two population figures expected values read
  (:class:`serving.scoring.ValueBasis`, from three collected columns), collects the model
  outputs with the few feature columns the answers need, and turns them into scores,
  percentiles, grades and expected values with :func:`serving.scoring.target_answers`,
  the very function the single-machine path calls. The score table is one file, written there.

The champion alias is resolved to a version number once (as ``load_champions`` did), and
the UDF reads ``models:/radar-<target>/<version>``: the model the executors run and the
version the answers carry cannot differ even if the alias moves meanwhile.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from features.contract import CRMData
from features.encoded import PERSON_COLUMN
from features.rows import FeatureRows
from features.pipeline import build_deal_features
from features.spark import collect_features, feature_template, restore_types, spark_features, spark_session
from radar.config import Settings
from serving.scoring import Champion, ValueBasis, eligible, score_columns, score_target, target_answers

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

#: Feature columns the population figures of expected values read.
VALUE_COLUMNS: tuple[str, ...] = ("n_paid_orders", "paid_amount_mean", "paid_amount_365d")
#: Feature columns one row's answer reads besides the model outputs.
ROW_COLUMNS: tuple[str, ...] = ("paid_amount_mean", "paid_amount_365d")
OUTPUTS = "_radar_outputs"


def eligible_column(target: str) -> str:
    return f"eligible__{target}"


@dataclass(frozen=True)
class _Eligibility:
    """Per bucket: whether each person is in each target's population at ``as_of``."""

    targets: tuple[str, ...]
    as_of: pd.Timestamp
    settings: Settings

    def __call__(self, data: CRMData, features: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame(
            {
                eligible_column(t): features.index.isin(eligible(t, data, features, self.as_of, self.settings))
                for t in self.targets
            },
            index=features.index,
        )


def score_people_spark(
    data: CRMData,
    as_of: pd.Timestamp,
    champions: dict[str, Champion],
    settings: Settings,
    spark: SparkSession | None = None,
    top_k: int | None = None,
) -> pd.DataFrame:
    """Every eligible person scored for every champion, long format, on Spark
    (``settings.spark``, or the given session); equal to ``score_people``'s table."""
    if not champions:
        return pd.DataFrame(columns=score_columns(top_k))
    spark = spark or spark_session(settings.spark)
    as_of = pd.Timestamp(as_of)
    template = feature_template(data, as_of, settings.features)
    targets = tuple(champions)
    features = spark_features(
        spark, data, as_of, settings.features, settings.spark.buckets,
        extra=_Eligibility(targets, as_of, settings),
        extra_types={eligible_column(t): "boolean" for t in targets},
    ).persist()
    try:
        basis = ValueBasis.of(features.select(*VALUE_COLUMNS).toPandas())
        parts = [
            _score_target(spark, data, features, target, champion, template, as_of, settings, basis, top_k)
            for target, champion in champions.items()
        ]
    finally:
        features.unpersist()
    parts = [part for part in parts if len(part)]
    if not parts:
        return pd.DataFrame(columns=score_columns(top_k))
    return pd.concat(parts, ignore_index=True)


def _score_target(
    spark: SparkSession,
    data: CRMData,
    features: DataFrame,
    target: str,
    champion: Champion,
    template: pd.DataFrame,
    as_of: pd.Timestamp,
    settings: Settings,
    basis: ValueBasis,
    top_k: int | None,
) -> pd.DataFrame:
    from pyspark.sql import functions as F

    people = features.filter(F.col(eligible_column(target)))
    if target == "time_to_close":
        # One row per open deal, built from the deals table: open deals are few beside the
        # people, so their rows are built and scored on the driver by the one scoring path.
        rows = build_deal_features(data, as_of, settings.features, person_features=collect_features(people, template))
        return score_target(target, champion, rows, as_of, settings, top_k, basis) if len(rows) else (
            pd.DataFrame(columns=score_columns(top_k)))
    predict = model_udf(spark, target, champion.version, settings)
    inputs = F.struct(*[F.col(f"`{name}`") for name in champion.bundle.feature_names])
    collected = (
        people.select(PERSON_COLUMN, *ROW_COLUMNS, predict(inputs).alias(OUTPUTS))
        .select(PERSON_COLUMN, *ROW_COLUMNS, f"{OUTPUTS}.*")
        .toPandas()
    )
    if collected.empty:
        return pd.DataFrame(columns=score_columns(top_k))
    # The single-machine path scores in the feature frame's order: by person.
    collected = collected.sort_values(PERSON_COLUMN, kind="stable")
    collected.index = pd.Index(collected.pop(PERSON_COLUMN).to_numpy(dtype=object), name=PERSON_COLUMN).astype(
        template.index.dtype
    )
    rows = FeatureRows.from_frame(collected[list(ROW_COLUMNS)])
    outputs = {c: collected[c].to_numpy(dtype=np.float64) for c in collected.columns if c not in ROW_COLUMNS}
    # Reasons are explained on the executors (below), not here where only a few columns are.
    here = None if top_k else top_k
    columns = target_answers(target, champion, rows, as_of, settings, basis, here, outputs=outputs)
    if top_k:
        reasons = explain_rows(spark, people, champion, template, top_k).reindex(collected.index)
        columns["reasons"] = reasons["reasons"].tolist()
        columns["reasons_text"] = reasons["reasons_text"].tolist()
    return pd.DataFrame(columns).reindex(columns=score_columns(top_k))


def model_udf(spark: SparkSession, target: str, version: str, settings: Settings) -> Any:
    """``mlflow.pyfunc.spark_udf`` over one registered version, returning a struct of the
    model's outputs (every output of a Radar model is a double). The model is downloaded
    once on the driver and shipped to the executors by MLflow (``env_manager="local"``:
    the executors' own Python, with Radar installed, unpickles the bundle)."""
    import mlflow
    from mlflow.models import get_model_info

    from training.registry import model_name
    from training.tracking import using_store

    uri = f"models:/{model_name(target)}/{version}"
    with using_store(settings.tracking_uri):
        signature = get_model_info(uri).signature
        if signature is None or signature.outputs is None:
            raise ValueError(f"{uri} has no output signature: register it with Radar's log_target")
        result_type = ", ".join(f"`{name}` double" for name in signature.outputs.input_names())
        return mlflow.pyfunc.spark_udf(spark, uri, result_type=result_type, env_manager="local")


def explain_rows(
    spark: SparkSession, people: DataFrame, champion: Champion, template: pd.DataFrame, top_k: int
) -> pd.DataFrame:
    """Top reasons of each row (``reasons`` as lists of dicts, ``reasons_text``), computed
    on the executors partition by partition; indexed by person."""
    shared = spark.sparkContext.broadcast(champion.bundle)
    columns = [PERSON_COLUMN, *template.columns]

    def explain(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from serving.reasons import reasons_columns

        for batch in batches:
            rows = restore_types(batch, template)
            table = reasons_columns(shared.value, rows, top_k)
            yield pd.DataFrame({
                PERSON_COLUMN: rows.index.to_numpy(dtype=object),
                "reasons": [json.dumps(r) for r in table["reasons"]],
                "reasons_text": table["reasons_text"].to_numpy(dtype=object),
            })

    schema = f"`{PERSON_COLUMN}` string, reasons string, reasons_text string"
    try:
        found = people.select(*columns).mapInPandas(explain, schema=schema).toPandas()
    finally:
        shared.unpersist()
    found["reasons"] = [json.loads(r) for r in found["reasons"]]
    found.index = pd.Index(found.pop(PERSON_COLUMN).to_numpy(dtype=object), name=PERSON_COLUMN).astype(
        template.index.dtype
    )
    return found
