"""The Spark engine equals the single-machine path: features and scores, library and CLI.

One local SparkSession for the module (2 cores, 4 buckets, 4 shuffle partitions); a small
demo world for features, the session's trained world for scores.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from features.contract import CRMData
from features.ingest import load_crm
from features.pipeline import OPEN_DEAL_ID, build_features
from radar.config import Settings, SparkConfig
from radar.demo import generate_world
from training.datasets import TARGETS, data_span

pytest.importorskip("pyspark")

from features.spark import _bucket_map, build_features_spark, spark_features, spark_session  # noqa: E402
from serving.scoring import load_champions, score_people  # noqa: E402
from serving.spark_scoring import score_people_spark  # noqa: E402

# PySpark 4 warns about pandas 3 on every conversion; the tests below compare every value.
pytestmark = [
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]

SPARK = SparkConfig(
    master="local[2]",
    buckets=4,
    conf={"spark.sql.shuffle.partitions": "4", "spark.ui.enabled": "false", "spark.driver.memory": "1g"},
)


@pytest.fixture(scope="module")
def spark():
    session = spark_session(SPARK)
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Settings, CRMData, pd.Timestamp]:
    folder = tmp_path_factory.mktemp("spark-world") / "crm"
    generate_world(n_customers=600, seed=23, out_dir=folder)
    settings = Settings(work_dir=tmp_path_factory.mktemp("spark-work"), spark=SPARK)
    data = load_crm(folder, settings=settings).data
    # Mid-history, so that later events, deals and leads exist and must be left out.
    as_of = data_span(data)[1].normalize() - pd.Timedelta(days=45)
    return folder, settings, _with_cross_person_stage_event(data, as_of), as_of


def _with_cross_person_stage_event(data: CRMData, as_of: pd.Timestamp) -> CRMData:
    """A deal_stage event logged under another person than the deal's (as CRMs do when a
    colleague moves the deal), in another bucket than the deal's owner: the owner's
    ``open_deal_n_stage_changes`` counts it, so a bucket without it would differ."""
    features = build_features(data, as_of)
    events = data.interactions
    staged = events[(events["type"] == "deal_stage") & (events["timestamp"] < as_of)]
    staged = staged[staged["deal_id"].isin(set(features[OPEN_DEAL_ID].dropna().astype(str)))]
    # A deal with several stage events; moving its first one leaves its current stage alone.
    deal = staged["deal_id"].value_counts().index[0]
    first = staged[staged["deal_id"] == deal].sort_values("timestamp").index[0]
    owner = events.loc[first, "person_id"]
    buckets = _bucket_map({"interactions": events, "deals": data.deals}, SPARK.buckets)
    stranger = buckets.index[buckets != buckets[owner]][0]
    interactions = events.copy()
    interactions.loc[first, "person_id"] = stranger
    moved = CRMData(leads=data.leads, interactions=interactions, orders=data.orders, deals=data.deals)
    without = CRMData(leads=data.leads, interactions=events.drop(first), orders=data.orders, deals=data.deals)
    changes = "open_deal_n_stage_changes"
    assert build_features(moved, as_of).loc[owner, changes] == features.loc[owner, changes]
    assert build_features(without, as_of).loc[owner, changes] == features.loc[owner, changes] - 1
    return moved


def test_spark_features_equal_build_features(spark, world) -> None:
    _, settings, data, as_of = world
    expected = build_features(data, as_of, settings.features)
    got = build_features_spark(data, as_of, settings, spark=spark)
    # Index, column order, dtypes (float64 features, categories with their category sets)
    # and every value, NaN where NaN.
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert got["lead_source"].cat.categories.equals(expected["lead_source"].cat.categories)
    assert len(got) > 300


def test_persons_tied_by_a_deal_share_a_bucket(world) -> None:
    _, _, data, _ = world
    tables = {"interactions": data.interactions, "deals": data.deals}
    buckets = _bucket_map(tables, SPARK.buckets)
    staged = data.interactions.dropna(subset=["deal_id"]).merge(
        data.deals[["deal_id", "person_id"]], on="deal_id", suffixes=("", "_owner")
    )
    assert (staged["person_id"] != staged["person_id_owner"]).sum() == 1
    assert (buckets[staged["person_id"]].to_numpy() == buckets[staged["person_id_owner"]].to_numpy()).all()
    # The hash is stable: another call, another order of rows, the same buckets.
    shuffled = {name: table.sample(frac=1.0, random_state=1) for name, table in tables.items()}
    assert _bucket_map(shuffled, SPARK.buckets).sort_index().equals(buckets.sort_index())


def test_bad_bucket_counts_are_refused(spark, world) -> None:
    _, settings, data, as_of = world
    with pytest.raises(ValueError, match="buckets must be at least 1"):
        spark_features(spark, data, as_of, settings.features, buckets=0)
    with pytest.raises(ValueError):
        SparkConfig(buckets=0)


def test_spark_config_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RADAR_SPARK__MASTER", "spark://head:7077")
    monkeypatch.setenv("RADAR_SPARK__BUCKETS", "256")
    monkeypatch.setenv("RADAR_SPARK__CONF", '{"spark.executor.memory": "4g"}')
    settings = Settings()
    assert settings.spark.master == "spark://head:7077"
    assert settings.spark.buckets == 256
    assert settings.spark.conf == {"spark.executor.memory": "4g"}


def test_spark_scores_equal_score_people(spark, trained) -> None:
    settings, data, as_of = trained
    settings = settings.model_copy(update={"spark": SPARK})
    champions = load_champions(settings)
    assert set(champions) == set(TARGETS)
    expected = score_people(data, as_of, champions, settings, top_k=3)
    got = score_people_spark(data, as_of, champions, settings, spark=spark, top_k=3)
    assert set(got["target"]) == set(TARGETS)
    # Model outputs computed over a Spark partition rather than the whole frame may differ
    # in the last bit (BLAS and numpy's vectorised exp/log round by batch layout: one
    # probability in 3,717 did, by one ulp). Floats are compared to 1e-12 relative; every
    # other column (scores, grades, percentiles, reasons, ids) must be identical.
    pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-12, atol=0.0)
    for column in got.columns:
        if not pd.api.types.is_float_dtype(got[column]):
            assert got[column].equals(expected[column]), column


def test_cli_engine_spark(spark, world, trained, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from radar.cli import app

    folder, settings, _, as_of = world
    trained_settings = trained[0]
    monkeypatch.setenv("RADAR_WORK_DIR", str(tmp_path))
    monkeypatch.setenv("RADAR_MLFLOW_TRACKING_URI", trained_settings.tracking_uri)
    monkeypatch.setenv("RADAR_SPARK__BUCKETS", "3")
    runner = CliRunner()
    day = as_of.date().isoformat()

    out = tmp_path / "features.parquet"
    result = runner.invoke(app, ["features", str(folder), "--as-of", day, "--out", str(out), "--engine", "spark"])
    assert result.exit_code == 0, result.output
    data = load_crm(folder, settings=settings).data
    pd.testing.assert_frame_equal(pd.read_parquet(out), build_features(data, as_of, settings.features))

    files = {}
    for engine in ("pandas", "spark"):
        files[engine] = tmp_path / f"scores-{engine}.parquet"
        result = runner.invoke(
            app, ["score", str(folder), "--as-of", day, "--out", str(files[engine]), "--top-k", "0", "--engine", engine]
        )
        assert result.exit_code == 0, result.output
    scores = pd.read_parquet(files["spark"])
    assert len(scores) > 0 and scores["target"].nunique() == len(TARGETS)
    pd.testing.assert_frame_equal(scores, pd.read_parquet(files["pandas"]))

    result = runner.invoke(app, ["score", str(folder), "--engine", "dask"])
    assert result.exit_code == 2
    assert "--engine must be one of pandas, spark" in result.output
