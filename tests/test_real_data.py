"""Radar on public data sets nobody here wrote, as a new user runs it: `radar train` then
`radar score`, defaults only, a real MLflow SQLite store per data set.

For each data set: training works and something serves; no classical baseline beats the
served contender's ranking (AUC, or C-index for time_to_close) beyond the gate's noise on
the held-out truth; and the scores carry the file's own ids. Sources, mappings and figures:
``tests/fixtures/real/*/SOURCE.md`` and ``docs/real-data.md``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from radar.cli import app

REAL = Path(__file__).resolve().parent / "fixtures" / "real"
#: The project's shared data folder, beside the checkout (another place: RADAR_TEST_SHARED_DATA).
SHARED = Path(os.environ.get("RADAR_TEST_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
#: Contenders that are Radar's own model rather than a classical baseline.
MODEL = "model"


def data_file(folder: str, name: str) -> Path:
    """A fixture's data file: beside its SOURCE.md, or in the shared data folder.

    The files copied from public repositories are not committed (see
    tests/fixtures/real/README.md); without them the data set's tests are skipped."""
    for candidate in (REAL / folder / name, SHARED / "real" / folder / name):
        if candidate.is_file():
            return candidate
    pytest.skip(f"{folder}/{name} is not here: rebuild it with tests/fixtures/real/prepare.py (see its SOURCE.md)")


@dataclass
class Run:
    """One data set after `radar train` and `radar score`."""

    metrics: dict
    scores: pd.DataFrame
    train_output: str


def train_then_score(work: Path, train_args: list[str], score_args: list[str]) -> Run:
    """`radar train ... --metrics-out` then `radar score ... --out`, in a fresh work dir and
    MLflow store, exactly as typed on the command line."""
    runner = CliRunner()
    env = {
        "RADAR_WORK_DIR": str(work / "radar"),
        "RADAR_MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}",
        "MLFLOW_TRACKING_URI": None,
        "RADAR_CONFIG": str(work / "no-radar.yaml"),
    }
    metrics, scores = work / "metrics.json", work / "scores.csv"
    trained = runner.invoke(app, [*train_args, "--metrics-out", str(metrics)], env=env, catch_exceptions=False)
    assert trained.exit_code == 0, trained.output
    scored = runner.invoke(app, [*score_args, "--out", str(scores)], env=env, catch_exceptions=False)
    assert scored.exit_code == 0, scored.output
    return Run(json.loads(metrics.read_text()), pd.read_csv(scores, dtype=str, keep_default_na=False), trained.output)


def assert_no_baseline_beats_served(metrics: dict[str, dict], served: str, rank: str) -> None:
    """Every classical baseline's ranking minus the served contender's, with the gate's
    interval: none lies wholly above zero (the served one is never worse beyond noise)."""
    baselines = [name for name in metrics if name not in (served, MODEL)]
    assert baselines, f"no baseline was judged beside {served}"
    for name in baselines:
        m = metrics[name]
        assert m[f"{rank}_diff"] == pytest.approx(m[rank] - metrics[served][rank], abs=1e-9)
        assert m[f"{rank}_low"] <= 0, (
            f"{name} ranks better than the served {served} beyond noise: {rank} {m[rank]:.4f} vs "
            f"{metrics[served][rank]:.4f}, difference interval [{m[f'{rank}_low']:+.4f}, {m[f'{rank}_high']:+.4f}]"
        )


# --- Flat tables: one row per lead or customer -------------------------------------------------


FLAT = {
    # name: (file, label, id column)
    "x_education": ("x_education_leads.csv", "Converted", "Prospect ID"),
    "telco_churn": ("telco_churn/telco_churn.csv.gz", "churn", "rownames"),
}


def flat_file(name: str, folder: Path) -> Path:
    """The table a flat data set is trained on. X Education lives in the shared data
    folder; the default run takes every other row of it (the whole table: ``-m slow``)."""
    file = FLAT[name.removesuffix("_half")][0]
    if not file.startswith("x_education"):
        folder_name, data = file.split("/")
        return data_file(folder_name, data)
    path = SHARED / file
    if not path.is_file():
        pytest.skip(f"{path} is not here")
    if not name.endswith("_half"):
        return path
    half = folder / "x_education_half.csv"
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    table.iloc[::2].to_csv(half, index=False)
    return half


@pytest.fixture(
    scope="module",
    # The default run keeps one flat table (half of X Education); the churn table and the
    # whole lead table run with -m slow, so the suite stays within its time.
    params=["x_education_half", pytest.param("telco_churn", marks=pytest.mark.slow),
            pytest.param("x_education", marks=pytest.mark.slow)],
)
def flat_run(request, tmp_path_factory) -> tuple[str, Path, Run]:
    name = request.param
    work = tmp_path_factory.mktemp(name)
    path = flat_file(name, work)
    _, label, id_column = FLAT[name.removesuffix("_half")]
    run = train_then_score(
        work,
        ["train", "--table", str(path), "--label", label, "--id", id_column, "--name", name],
        ["score", "--table", str(path), "--model", name],
    )
    return name, path, run


def test_flat_table_trains_serves_and_no_baseline_ranks_better(flat_run) -> None:
    name, _, run = flat_run
    gate = run.metrics["gate"]
    assert run.metrics["registration"]["alias"] == "champion"
    assert gate["served"] in run.metrics["metrics"]
    assert f"{name}: {gate['served']} serves" in " ".join(run.train_output.split())
    assert_no_baseline_beats_served(run.metrics["metrics"], gate["served"], "auc")
    # These tables carry real signal: whatever serves ranks far better than chance.
    assert run.metrics["metrics"][gate["served"]]["auc"] > 0.8


def test_flat_table_scores_carry_the_files_own_ids(flat_run) -> None:
    name, path, run = flat_run
    id_column = FLAT[name.removesuffix("_half")][2]
    source = pd.read_csv(path, dtype=str, keep_default_na=False, usecols=[id_column])
    assert run.scores.columns[0] == id_column
    assert run.scores[id_column].tolist() == source[id_column].tolist()
    probability = run.scores["probability"].astype(float)
    assert probability.between(0, 1).all() and probability.nunique() > 100


def test_x_education_leaks_are_caught_without_being_named(flat_run) -> None:
    """The staff-entered outcome columns are found by the leakage guard, not by a list."""
    name, _, run = flat_run
    if not name.startswith("x_education"):
        pytest.skip("only the X Education export has staff-entered outcome columns")
    assert {"Tags", "Lead Quality"} <= set(run.metrics["flagged_columns"])
    assert run.metrics["auc_with_flagged_columns"] > run.metrics["metrics"][run.metrics["gate"]["served"]]["auc"]


# --- CRM exports: a folder with a mapping file -----------------------------------------------


def crm_run(name: str, folder: str, data: str, work: Path) -> Run:
    data_file(folder, data)  # skip when the data file is not here
    source = REAL / folder if (REAL / folder / data).is_file() else SHARED / "real" / folder
    mapping = REAL / folder / "mapping.yaml"
    return train_then_score(
        work,
        ["train", str(source), "--mapping", str(mapping)],
        ["score", str(source), "--mapping", str(mapping)],
    )


def served_metrics(run: Run, target: str) -> tuple[str, dict[str, dict]]:
    result = run.metrics["targets"][target]
    assert result["gate"] is not None, result["notes"]
    assert result["registration"].get("alias") == "champion", result["registration"]
    return result["gate"]["served"], result["metrics"]


@pytest.fixture(scope="module")
def cdnow(tmp_path_factory) -> Run:
    return crm_run("cdnow", "cdnow_orders", "orders.csv.gz", tmp_path_factory.mktemp("cdnow"))


def test_cdnow_orders_log_trains_both_order_targets_and_no_baseline_ranks_better(cdnow) -> None:
    for target in ("purchase_probability", "churn_by_indifference"):
        served, metrics = served_metrics(cdnow, target)
        assert {"bgnbd", "rf_rule"} <= set(metrics)
        assert_no_baseline_beats_served(metrics, served, "auc")
    for target in ("lead_quality", "time_to_close"):
        assert cdnow.metrics["targets"][target]["gate"] is None


def test_cdnow_every_customer_gets_a_purchase_score_keyed_by_their_customer_id(cdnow) -> None:
    orders = pd.read_csv(data_file("cdnow_orders", "orders.csv.gz"), dtype=str)
    purchase = cdnow.scores[cdnow.scores["target"] == "purchase_probability"]
    assert purchase["person_id"].is_unique and len(purchase) == orders["customer_id"].nunique()
    assert "customer_id" in cdnow.scores.columns
    assert set(purchase["customer_id"]) == set(orders["customer_id"])


@pytest.fixture(scope="module")
def olist(tmp_path_factory) -> Run:
    return crm_run("olist", "olist_funnel", "leads.csv.gz", tmp_path_factory.mktemp("olist"))


def test_olist_lead_export_with_conversion_dates_trains_lead_quality(olist) -> None:
    served, metrics = served_metrics(olist, "lead_quality")
    rows = olist.metrics["targets"]["lead_quality"]["rows"]
    assert rows["test_positive"] > 50, rows
    assert_no_baseline_beats_served(metrics, served, "auc")


def test_olist_lead_scores_are_keyed_by_the_exports_lead_id(olist) -> None:
    leads = pd.read_csv(data_file("olist_funnel", "leads.csv.gz"), dtype=str, keep_default_na=False)
    scored = olist.scores[olist.scores["target"] == "lead_quality"]
    # Leads younger than the horizon and not yet won on the day after the export's last lead.
    as_of = pd.Timestamp(scored["as_of"].iloc[0])
    created = pd.to_datetime(leads["first_contact_date"], format="%d-%m-%Y")
    won = pd.to_datetime(leads["won_date"].replace("", None), format="%d-%m-%Y %H:%M")
    open_young = (created < as_of) & (created >= as_of - pd.Timedelta(days=90)) & ~(won < as_of)
    assert len(scored) == int(open_young.sum())
    assert "lead_id" in olist.scores.columns
    assert set(scored["lead_id"]) == set(leads.loc[open_young, "mql_id"])


@pytest.fixture(scope="module")
def maven(tmp_path_factory) -> Run:
    return crm_run("maven", "maven_crm", "sales_pipeline.csv.gz", tmp_path_factory.mktemp("maven"))


def maven_open_deals(as_of: str) -> pd.DataFrame:
    """The deals open on the scoring day that Radar can place: an account to key them by,
    engaged before the day, not closed before it."""
    deals = pd.read_csv(data_file("maven_crm", "sales_pipeline.csv.gz"), dtype=str, keep_default_na=False)
    day = pd.Timestamp(as_of)
    engaged = pd.to_datetime(deals["engage_date"].replace("", None))
    closed = pd.to_datetime(deals["close_date"].replace("", None))
    return deals[(deals["account"] != "") & (engaged < day) & ~(closed < day)]


def test_maven_opportunities_train_time_to_close_and_no_baseline_ranks_better(maven) -> None:
    served, metrics = served_metrics(maven, "time_to_close")
    assert {"stage_cif", "cox"} <= set(metrics)
    assert_no_baseline_beats_served(metrics, served, "c_index")


def test_maven_deal_scores_are_keyed_by_opportunity_and_account(maven) -> None:
    scored = maven.scores[maven.scores["target"] == "time_to_close"]
    open_deals = maven_open_deals(scored["as_of"].iloc[0])
    assert len(scored) and set(scored["deal_id"]) <= set(open_deals["opportunity_id"])
    assert "customer_id" in maven.scores.columns
    account = open_deals.set_index("opportunity_id")["account"]
    assert scored["customer_id"].tolist() == account.loc[scored["deal_id"]].tolist()


def test_maven_every_open_deal_is_scored(maven) -> None:
    scored = maven.scores[maven.scores["target"] == "time_to_close"]
    assert set(scored["deal_id"]) == set(maven_open_deals(scored["as_of"].iloc[0])["opportunity_id"])
